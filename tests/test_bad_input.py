"""Bad input ends in one clear error (exit code 2) naming the file and, where it applies, the line."""
from __future__ import annotations

import pytest

from recbole_text.cli import main

from conftest import FAST_ARGS
GOOD_INTER = "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
    f"u{u}\ti{(u + k) % 60 + 1}\t{k}\n" for u in range(60) for k in range(5)
)


def run_on(data_path, name="bad", *extra):
    return main(["--model=SASRec", f"--dataset={name}", f"--data_path={data_path}", *FAST_ARGS, *extra])


def write(folder, filename, content, mode="w"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "inter, where, words",
    [
        ("user_id\titem_id:token\ttimestamp:float\nu1\ti1\t1\n", ":1", "malformed header column 'user_id'"),
        ("user_id:token\titem_id:tokn\ttimestamp:float\nu1\ti1\t1\n", ":1", "unknown field type 'tokn'"),
        ("user_id:token\ttimestamp:float\nu1\t1\n", ":1", "missing column(s) item_id"),
        (GOOD_INTER + "u1\ti1\n", ":302", "expected 3 columns"),
        (GOOD_INTER + "u1\t\t5\n", ":302", "empty 'item_id'"),
    ],
)
def test_malformed_inter_file(tmp_path, in_tmp_cwd, capsys, inter, where, words):
    path = write(tmp_path / "bad", "bad.inter", inter)
    assert run_on(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"{path}{where}" in err and words in err
    assert "Traceback" not in err


def test_non_utf8_item_text(tmp_path, in_tmp_cwd, capsys):
    write(tmp_path / "bad", "bad.inter", GOOD_INTER)
    text = "item_id:token\ttitle:text\ni1\tfine\ni2\tcaf\xe9 latin-1\n".encode("latin-1")
    path = write(tmp_path / "bad", "bad.itemtext", text, mode="wb")
    assert run_on(tmp_path) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: not valid UTF-8" in err


def test_item_text_without_text_columns(tmp_path, in_tmp_cwd, capsys):
    write(tmp_path / "bad", "bad.inter", GOOD_INTER)
    path = write(tmp_path / "bad", "bad.itemtext", "item_id:token\tyear:token\ni1\t1999\n")
    assert run_on(tmp_path) == 2
    assert f"{path}:1: no ':text' column" in capsys.readouterr().err


def test_empty_sequence_in_presplit_file(tmp_path, in_tmp_cwd, capsys):
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    rows = "".join(f"u{u}\ti{u + 1} i{u + 2}\ti{u + 3}\n" for u in range(55))
    for part in ("train", "valid"):
        write(tmp_path / "bad", f"bad.{part}.inter", header + rows)
    path = write(tmp_path / "bad", "bad.test.inter", header + rows + "u9\t\ti4\n")
    assert run_on(tmp_path, "bad", "--benchmark_filename=[train,valid,test]") == 2
    err = capsys.readouterr().err
    assert f"{path}:57: empty 'item_id_list' (an empty sequence)" in err


def test_missing_presplit_part(tmp_path, in_tmp_cwd, capsys):
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\nu1\ti1\ti2\n"
    write(tmp_path / "bad", "bad.train.inter", header)
    assert run_on(tmp_path, "bad", "--benchmark_filename=[train,valid,test]") == 2
    assert str(tmp_path / "bad" / "bad.valid.inter") in capsys.readouterr().err


def test_unknown_item_id_in_unisrec_inter_file(tmp_path, capsys):
    """An item index that item2index does not know: the converter names the .inter file and line and
    leaves no half-written dataset behind."""
    from recbole_text.data.converters.__main__ import main as convert

    src = tmp_path / "X"
    write(src, "X.item2index", "A\t0\nB\t1\nC\t2\n")
    write(src, "X.user2index", "U\t0\n")
    write(src, "X.text", "item_id:token\ttext:token_seq\nA\ta. c. b. \nB\tb. c. b. \nC\tc. c. b. \n")
    write(src, "X.train.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t0\t1\n")
    write(src, "X.valid.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t0 1\t7\n")
    write(src, "X.test.inter", "user_id:token\titem_id_list:token_seq\titem_id:token\n0\t0 1 7\t2\n")
    out = tmp_path / "out"
    assert convert(["unisrec", "--src", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(src / "X.valid.inter") + ":2" in err
    assert not out.exists() or list(out.iterdir()) == []
