"""Tests of recbole_text.data.converters on small hand-built files plus the real Scientific and ml-100k data."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from recbole_text.data.atomic import AtomicFileError, iter_rows, read_item_text
from recbole_text.data.converters import convert_amazon2018, convert_ml100k, convert_unisrec, converter_command
from recbole_text.data.converters.__main__ import main
from recbole_text.data.converters.common import write_dataset
from recbole_text.data.converters.unisrec import split_text

SCIENTIFIC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Scientific"


# ---------------------------------------------------------------- helpers

def read_inter(folder: Path) -> pd.DataFrame:
    rows = iter_rows(folder / f"{folder.name}.inter")
    _, header = next(rows)
    return pd.DataFrame([cells for _, cells in rows], columns=[c.split(":")[0] for c in header])


def sequences(inter: pd.DataFrame) -> dict[str, list[str]]:
    return {user: list(group["item_id"]) for user, group in inter.groupby("user_id", sort=False)}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def write_gz_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- Amazon 2018

CORE_USERS = ["u1", "u2", "u3", "u4", "u5"]
CORE_ITEMS = ["i1", "i2", "i3", "i4", "i5"]


def amazon_events() -> list[tuple[str, str, int]]:
    """(user, item, time) in file order; the 5-core answer is u1..u5 x i1..i5 plus u5's repeat of i1."""
    events = []
    for k, user in enumerate(CORE_USERS):  # times out of file order; u1's are all equal (ties keep file order)
        for j, item in enumerate(CORE_ITEMS):
            events.append((user, item, 1000 if k == 0 else 1000 + 10 * ((j * 3 + k) % 5)))
    events.append(("u5", "i1", 2000))  # repeat consumption at another time: kept
    events.append(("u5", "i1", 2000))  # exact duplicate (user, item, time): dropped
    events += [("u6", i, 500) for i in ["i1", "i2", "i3", "i4", "i7"]]  # i7 has 4 users -> goes, then u6 has 4
    events += [(u, "i7", 600) for u in ["u1", "u2", "u3"]]
    events += [("u9", i, 700) for i in ["i1", "i2", "i3", "i8"]]  # u9 has 4 -> goes, then i8 has 4 -> goes
    events += [(u, "i8", 800) for u in ["u1", "u2", "u3", "u4"]]
    events += [(u, "i9", 900) for u in CORE_USERS]  # i9: no metadata
    events += [(u, "i10", 900) for u in CORE_USERS]  # i10: title empty after cleaning
    events += [("u7", i, 100) for i in ["i1", "i2", "i3", "i4", "i4"]]  # 5 rows, but 4 after dedup -> goes
    return events


def amazon_meta_lines() -> list[str]:
    meta = [
        {"asin": "i1", "title": "Caf&eacute; <b>Beaker</b>\n   500&nbsp;ml", "brand": "A &amp; B",
         "category": ["Industrial &amp; Scientific", "", "Lab <i>Glass</i>", "Industrial & Scientific"]},
        {"asin": "i2", "title": 'Ruler 12" "Pro" \u00fcber \\ back\tslash', "brand": "", "category": []},
        {"asin": "i3", "title": "Gloves", "brand": "Acme", "category": ["Safety"]},
        {"asin": "i3", "title": "Gloves (second record, ignored)", "brand": "Other", "category": []},
        {"asin": "i4", "title": "Tape &lt;br/&gt;1 < 2", "category": ["Tapes", "Duct Tape"]},
        {"asin": "i7", "title": "Rare", "brand": "x", "category": []},
        {"asin": "i8", "title": "Cascade", "brand": "y", "category": []},
        {"asin": "i10", "title": "<span> </span>", "brand": "z", "category": []},
    ]
    lines = [json.dumps(m) for m in meta]
    lines.append("{'asin': 'i5', 'title': 'Old style &lt;dict&gt;', 'brand': 'Py', 'category': ['Legacy']}")
    return lines


@pytest.fixture
def amazon_files(tmp_path):
    meta = write_gz_lines(tmp_path / "meta_Test.json.gz", amazon_meta_lines())
    reviews = write_gz_lines(
        tmp_path / "Test_5.json.gz",
        [json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": 5.0}) for u, i, t in amazon_events()],
    )
    ratings = tmp_path / "Test.csv"
    ratings.write_text("".join(f"{i},{u},4.0,{t}\n" for u, i, t in amazon_events()), encoding="utf-8")
    return meta, reviews, ratings


def expected_amazon_sequences() -> dict[str, list[str]]:
    out = {}
    for user in CORE_USERS:
        rows = [(t, n, i) for n, (u, i, t) in enumerate(amazon_events()) if u == user and i in CORE_ITEMS]
        rows = sorted(set(rows) - {(2000, 26, "i1")}, key=lambda r: (r[0], r[1]))  # drop the exact duplicate
        out[user] = [i for _, _, i in rows]
    return out


def test_amazon_reviews_kcore_text_and_order(amazon_files, tmp_path):
    meta, reviews, _ = amazon_files
    folder = convert_amazon2018(meta, reviews, tmp_path / "out", "Test")
    assert folder == tmp_path / "out" / "Test"
    inter = read_inter(folder)
    assert list(inter.columns) == ["user_id", "item_id", "timestamp"]
    assert sorted(inter["user_id"].unique()) == CORE_USERS
    assert sorted(inter["item_id"].unique()) == CORE_ITEMS
    assert len(inter) == 26
    assert sequences(inter) == expected_amazon_sequences()
    times = inter["timestamp"].astype(float)
    assert (times.groupby(inter["user_id"]).diff().dropna() >= 0).all()
    assert sequences(inter)["u5"][-1] == "i1"  # the repeat at t=2000 is the last one

    keys, items = read_item_text(folder / "Test.itemtext")
    assert keys == ["title", "brand", "categories"]
    assert set(items) == set(CORE_ITEMS)  # i7/i8 cut by the k-core, i9 no metadata, i10 empty title
    assert items["i1"] == {"title": "Caf\u00e9 Beaker 500 ml", "brand": "A & B",
                           "categories": "Industrial & Scientific, Lab Glass"}
    assert items["i2"] == {"title": 'Ruler 12" "Pro" \u00fcber \\ back slash'}
    assert items["i3"] == {"title": "Gloves", "brand": "Acme", "categories": "Safety"}
    assert items["i4"] == {"title": "Tape 1 < 2", "categories": "Tapes, Duct Tape"}
    assert items["i5"] == {"title": "Old style", "brand": "Py", "categories": "Legacy"}  # escaped tags go too


def test_amazon_ratings_csv_matches_reviews(amazon_files, tmp_path):
    meta, reviews, ratings = amazon_files
    a = read_inter(convert_amazon2018(meta, reviews, tmp_path / "a", "Test"))
    b = read_inter(convert_amazon2018(meta, ratings, tmp_path / "b", "Test"))
    assert a.equals(b)
    assert sequences(b) == expected_amazon_sequences()


def test_amazon_min_core_changes_result(amazon_files, tmp_path):
    meta, reviews, _ = amazon_files
    inter = read_inter(convert_amazon2018(meta, reviews, tmp_path / "out", "Test", min_core=4))
    assert {"u6", "u7", "u9"} <= set(inter["user_id"])  # 4-core keeps them
    assert "i9" not in set(inter["item_id"]) and "i10" not in set(inter["item_id"])


def test_amazon_malformed_json_line_names_file_and_line(amazon_files, tmp_path):
    _, reviews, _ = amazon_files
    lines = amazon_meta_lines()
    lines.insert(2, '{"asin": "i3", "title": broken')
    meta = write_gz_lines(tmp_path / "meta_Bad.json.gz", lines)
    with pytest.raises(AtomicFileError) as info:
        convert_amazon2018(meta, reviews, tmp_path / "out", "Test")
    assert f"{meta}:3:" in str(info.value) and "malformed JSON" in str(info.value)
    assert leftovers(tmp_path / "out") == []


def test_amazon_malformed_csv_line(amazon_files, tmp_path):
    meta, _, _ = amazon_files
    bad = tmp_path / "Bad.csv"
    bad.write_text("i1,u1,5.0,100\ni2,u1,5.0,not-a-time\n", encoding="utf-8")
    with pytest.raises(AtomicFileError, match=r"Bad\.csv:2:"):
        convert_amazon2018(meta, bad, tmp_path / "out", "Test")


# ---------------------------------------------------------------- all-or-nothing writing

def test_text_round_trip_is_lossless(tmp_path):
    titles = {"a": "tab\there", "b": "new\nline\r\nand \\n literal", "c": 'quote "x" \'y\'', "d": "\u00e9\u6f22\U0001f600"}
    inter = pd.DataFrame({"user_id": ["u"] * 4, "item_id": list(titles), "timestamp": range(4)})
    folder = write_dataset(tmp_path, "RT", inter, ["title"], ((k, {"title": v}) for k, v in titles.items()))
    keys, items = read_item_text(folder / "RT.itemtext")
    assert keys == ["title"] and items == {k: {"title": v} for k, v in titles.items()}


def test_failed_conversion_keeps_existing_folder_and_leaves_no_temp(amazon_files, tmp_path):
    meta, reviews, _ = amazon_files
    out = tmp_path / "out"
    good = convert_amazon2018(meta, reviews, out, "Test")
    before = (good / "Test.inter").read_bytes()
    with pytest.raises(ValueError):
        convert_amazon2018(meta, reviews, out, "Test", min_core=50)  # nothing left -> error
    assert leftovers(out) == ["Test"]
    assert (good / "Test.inter").read_bytes() == before

    def broken_items():
        yield "i1", {"title": "ok"}
        raise RuntimeError("boom")

    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["i1"], "timestamp": [0]})
    with pytest.raises(RuntimeError):
        write_dataset(out, "Test", frame, ["title"], broken_items())  # fails after NAME.inter was written
    assert leftovers(out) == ["Test"]
    assert (good / "Test.inter").read_bytes() == before
    with pytest.raises(RuntimeError):
        write_dataset(out, "Fresh", frame, ["title"], broken_items())
    assert leftovers(out) == ["Test"]


# ---------------------------------------------------------------- UniSRec layout

def unisrec_rows(seq: list[int], descending: bool = True):
    """The (history, target) rows UniSRec writes for one full sequence of item indices."""
    train = [(seq[max(0, i - 50):i], seq[i]) for i in range(1, len(seq) - 2)]
    valid = (seq[max(0, len(seq) - 2 - 50):len(seq) - 2], seq[-2])
    test = (seq[max(0, len(seq) - 1 - 50):len(seq) - 1], seq[-1])
    return (train[::-1] if descending else train), valid, test


TINY = {  # user index -> full sequence of item indices
    0: [i % 37 for i in range(60)] + [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18],  # 74 items, repeats
    1: [3, 1, 4, 1, 5, 9],
    2: [7, 8, 9],  # no train rows
}


def write_unisrec(folder: Path, sequences=TINY, ascending_users=(1,)) -> Path:
    folder.mkdir(parents=True)
    name = folder.name
    files = {s: [] for s in ("train", "valid", "test")}
    for user, seq in sequences.items():
        train, valid, test = unisrec_rows(seq, descending=user not in ascending_users)
        files["train"] += [(user, h, t) for h, t in train]
        files["valid"].append((user, *valid))
        files["test"].append((user, *test))
    for split, rows in files.items():
        text = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
        text += "".join(f"{u}\t{' '.join(map(str, h))}\t{t}\n" for u, h, t in rows)
        (folder / f"{name}.{split}.inter").write_text(text, encoding="utf-8")
    (folder / f"{name}.item2index").write_text("".join(f"A{i:03d}\t{i}\n" for i in range(40)), encoding="utf-8")
    (folder / f"{name}.user2index").write_text("".join(f"U{u}\t{u}\n" for u in sequences), encoding="utf-8")
    texts = [f"Item {i}. Root Cat Sub{i % 3}. Brand{i}. " for i in range(40)]
    texts[1] = "Dr. Foo 2.5 in. Wide. Root Cat Sub. Mr. Heater. "  # '. ' in title and brand
    texts[2] = "No cats here. . Sterling Inc. (STCC). "  # empty categories
    texts[3] = "No brand. Root Cat Tools. . "  # empty brand
    (folder / f"{name}.text").write_text(
        "item_id:token\ttext:token_seq\n" + "".join(f"A{i:03d}\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8"
    )
    return folder


def test_unisrec_reconstruction_exact(tmp_path):
    src = write_unisrec(tmp_path / "Tiny")
    folder = convert_unisrec(src, tmp_path / "out")
    assert folder == tmp_path / "out" / "Tiny"
    inter = read_inter(folder)
    assert sequences(inter) == {f"U{u}": [f"A{i:03d}" for i in seq] for u, seq in TINY.items()}
    for _, group in inter.groupby("user_id"):
        assert list(group["timestamp"]) == [str(k) for k in range(len(group))]
    keys, items = read_item_text(folder / "Tiny.itemtext")
    assert keys == ["title", "categories", "brand"]
    assert items["A001"] == {"title": "Dr. Foo 2.5 in. Wide", "categories": "Root Cat Sub", "brand": "Mr. Heater"}
    assert items["A002"] == {"title": "No cats here", "brand": "Sterling Inc. (STCC)"}
    assert items["A003"] == {"title": "No brand", "categories": "Root Cat Tools"}
    assert items["A010"] == {"title": "Item 10", "categories": "Root Cat Sub1", "brand": "Brand10"}


def test_split_text_from_the_right_without_root():
    assert split_text("A. B. C. D. ") == {"title": "A. B", "categories": "C", "brand": "D"}
    assert split_text("T. . . ") == {"title": "T"}


def replace_line(path: Path, number: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[number - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def test_unisrec_unknown_item_index(tmp_path):
    src = write_unisrec(tmp_path / "Tiny")
    replace_line(src / "Tiny.test.inter", 3, "1\t3 1 4 1 99\t9")
    with pytest.raises(AtomicFileError) as info:
        convert_unisrec(src, tmp_path / "out")
    assert f"{src / 'Tiny.test.inter'}:3:" in str(info.value) and "'99'" in str(info.value)
    assert leftovers(tmp_path / "out") == []


def test_unisrec_empty_history(tmp_path):
    src = write_unisrec(tmp_path / "Tiny")
    replace_line(src / "Tiny.valid.inter", 4, "2\t\t8")
    with pytest.raises(AtomicFileError, match=r"Tiny\.valid\.inter:4: empty sequence"):
        convert_unisrec(src, tmp_path / "out")


def test_unisrec_inconsistent_history(tmp_path):
    src = write_unisrec(tmp_path / "Tiny")
    replace_line(src / "Tiny.valid.inter", 3, "1\t3 1 4 2\t5")
    with pytest.raises(AtomicFileError, match=r"Tiny\.valid\.inter:3: user 'U1'"):
        convert_unisrec(src, tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_unisrec_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_unisrec(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


# ---------------------------------------------------------------- CLI

def test_cli_error_is_one_line_exit_2(tmp_path, capsys):
    code = main(["unisrec", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_builds_dataset(tmp_path, capsys):
    src = write_unisrec(tmp_path / "Tiny")
    assert main(["unisrec", "--src", str(src), "--out", str(tmp_path / "out"), "--name", "Renamed"]) == 0
    assert (tmp_path / "out" / "Renamed" / "Renamed.inter").is_file()
    assert "Renamed: 3 users, " in capsys.readouterr().out


def test_converter_command():
    assert converter_command("Scientific") == (
        "python -m recbole_text.data.converters unisrec --src ../shared/data/Scientific --out dataset/data"
    )
    assert converter_command("ml-100k-text") == "python -m recbole_text.data.converters ml100k --out dataset/data"
    hint = converter_command("Pantry")
    assert "amazon2018" in hint and "unisrec" in hint and "Pantry" in hint


# ---------------------------------------------------------------- real data

@pytest.mark.skipif(not SCIENTIFIC.is_dir(), reason="shared Scientific data not available")
def test_scientific_real_data(tmp_path):
    folder = convert_unisrec(SCIENTIFIC, tmp_path)
    inter = read_inter(folder)
    assert inter["user_id"].nunique() == 8442
    assert inter["item_id"].nunique() == 4385
    assert len(inter) == 59427
    keys, items = read_item_text(folder / "Scientific.itemtext")
    assert keys == ["title", "categories", "brand"] and len(items) == 4385
    assert set(inter["item_id"]) == set(items)
    categories = [attrs.get("categories") for attrs in items.values()]
    assert sum(c is not None and c.startswith("Industrial & Scientific") for c in categories) == 4251
    assert sum(c is None for c in categories) == 134
    assert items["B0000223SI"] == {
        "title": "PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll",
        "categories": "Industrial & Scientific Abrasive & Finishing Products Manual Sanding Products Sanding Rolls",
        "brand": "PORTER-CABLE",
    }
    first = sequences(inter)["ABW8NXS7SV55K"]  # user index 0: items 0..13 in order
    index = dict(line.split("\t") for line in (SCIENTIFIC / "Scientific.item2index").read_text().split("\n") if line)
    raw = {v: k for k, v in index.items()}
    assert first == [raw[str(i)] for i in range(14)]


def test_ml100k(tmp_path):
    folder = convert_ml100k(tmp_path)
    inter = read_inter(folder)
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert (inter["user_id"].nunique(), inter["item_id"].nunique(), len(inter)) == (943, 1682, 100000)
    times = inter["timestamp"].astype(float)
    assert (times.groupby(inter["user_id"]).diff().dropna() >= 0).all()
    keys, items = read_item_text(folder / "ml-100k-text.itemtext")
    assert keys == ["title", "year", "genres"] and len(items) == 1682
    assert items["1"] == {"title": "Toy Story", "year": "1995", "genres": "Animation, Children's, Comedy"}
