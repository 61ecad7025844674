"""Tests of recbole_text.data.atomic: escaping, header/row validation, .itemtext I/O and atomic writes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from recbole_text.data.atomic import (
    FIELD_TYPES,
    AtomicFileError,
    atomic_write,
    check_atomic_file,
    escape_text,
    iter_rows,
    parse_header,
    read_item_text,
    unescape_text,
    write_atomic_file,
    write_item_text,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

TRICKY = [
    "",
    "plain",
    "tab\there",
    "line\nfeed",
    "carriage\rreturn",
    "crlf\r\n",
    "back\\slash",
    "double \\\\ backslash",
    "trailing backslash\\",
    "\\",
    "\\t is not a tab",
    "\\n literal",
    "quotes \" and ' and `",
    "Ünïcødé – 日本語 🎉",
    "\t\n\r\\",
    "mixed\t\\n\n\\\r",
]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_lines(path: Path, *lines: str) -> Path:
    return write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


# ---------------------------------------------------------------- escaping

@pytest.mark.parametrize("value", TRICKY)
def test_escape_round_trip(value):
    escaped = escape_text(value)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert unescape_text(escaped) == value


def test_escape_examples():
    assert escape_text("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert escape_text("end\\") == "end\\\\"
    assert unescape_text("a\\tb") == "a\tb"
    assert unescape_text("a\\\\tb") == "a\\tb"


if given is not None:

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from(list("ab\t\n\r\\\"' é日🎉")) | st.characters(), max_size=40))
    def test_escape_round_trip_property(value):
        escaped = escape_text(value)
        assert not set(escaped) & {"\t", "\n", "\r"}
        assert unescape_text(escaped) == value


# ---------------------------------------------------------------- parse_header

def test_parse_header_ok():
    assert parse_header("f.inter", "user_id:token\titem_id:token\ttimestamp:float\r\n") == [
        ("user_id", "token"),
        ("item_id", "token"),
        ("timestamp", "float"),
    ]


def test_parse_header_column_without_type():
    with pytest.raises(AtomicFileError) as info:
        parse_header("data/x.inter", "user_id:token\titem_id\n")
    message = str(info.value)
    assert message.startswith("data/x.inter:1:")
    assert "'item_id'" in message
    assert info.value.line == 1


def test_parse_header_unknown_type():
    with pytest.raises(AtomicFileError) as info:
        parse_header("x.inter", "user_id:token\trating:float64\n")
    message = str(info.value)
    assert message.startswith("x.inter:1:")
    assert "'float64'" in message
    for known in FIELD_TYPES:
        assert known in message


def test_parse_header_duplicate_column():
    with pytest.raises(AtomicFileError) as info:
        parse_header("x.inter", "item_id:token\ttitle:text\titem_id:token\n")
    assert str(info.value).startswith("x.inter:1:")
    assert "duplicate" in str(info.value) and "'item_id'" in str(info.value)


def test_parse_header_empty():
    with pytest.raises(AtomicFileError, match=r"^x\.inter:1: empty header"):
        parse_header("x.inter", "\n")


# ---------------------------------------------------------------- iter_rows

def test_iter_rows_yields_line_numbers_and_skips_blank_lines(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id:token", "u1\ti1", "", "u2\ti2", "", "u3\ti3")
    assert list(iter_rows(path)) == [
        (1, ["user_id:token", "item_id:token"]),
        (2, ["u1", "i1"]),
        (4, ["u2", "i2"]),
        (6, ["u3", "i3"]),
    ]


def test_iter_rows_handles_crlf(tmp_path):
    path = write_bytes(tmp_path / "a.inter", b"user_id:token\titem_id:token\r\nu1\ti1\r\n\r\nu2\ti2\r\n")
    assert [cells for _, cells in iter_rows(path)][1:] == [["u1", "i1"], ["u2", "i2"]]


def test_iter_rows_wrong_column_count(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id:token", "u1\ti1", "u2\ti2", "", "u3\ti3\textra")
    with pytest.raises(AtomicFileError) as info:
        list(iter_rows(path))
    assert str(info.value).startswith(f"{path}:5:")
    assert info.value.line == 5
    assert "expected 2 columns" in str(info.value) and "found 3" in str(info.value)


def test_iter_rows_too_few_columns(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id:token", "u1")
    with pytest.raises(AtomicFileError, match=r":2: expected 2 columns as in the header, found 1"):
        list(iter_rows(path))


def test_iter_rows_invalid_utf8_reports_its_line(tmp_path):
    path = write_bytes(tmp_path / "a.inter", b"user_id:token\titem_id:token\nu1\ti1\nu2\ti\xff2\nu3\ti3\n")
    rows = iter_rows(path)
    assert next(rows)[0] == 1
    assert next(rows) == (2, ["u1", "i1"])  # lines before the bad one are still read
    with pytest.raises(AtomicFileError) as info:
        next(rows)
    assert str(info.value).startswith(f"{path}:3:")
    assert "UTF-8" in str(info.value)


def test_iter_rows_invalid_utf8_header(tmp_path):
    path = write_bytes(tmp_path / "a.inter", b"user_\xfeid:token\n")
    with pytest.raises(AtomicFileError, match=r":1: header is not valid UTF-8"):
        list(iter_rows(path))


# ---------------------------------------------------------------- check_atomic_file

def test_check_atomic_file_returns_header(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id_list:token_seq", "u1\ti1 i2")
    assert check_atomic_file(path, required=["user_id"], non_empty=["item_id_list"]) == [
        ("user_id", "token"),
        ("item_id_list", "token_seq"),
    ]


def test_check_atomic_file_missing_required_column(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\ttimestamp:float", "u1\t1")
    with pytest.raises(AtomicFileError) as info:
        check_atomic_file(path, required=["user_id", "item_id"])
    message = str(info.value)
    assert message.startswith(f"{path}:1:")
    assert "item_id" in message.split("header has")[0]
    assert "user_id, timestamp" in message  # what the header does have


def test_check_atomic_file_empty_sequence(tmp_path):
    path = write_lines(
        tmp_path / "a.train.inter",
        "user_id:token\titem_id_list:token_seq\titem_id:token",
        "u1\ti1 i2\ti3",
        "u2\ti2\ti4",
        "u3\t \ti5",
        "u4\t\ti6",
    )
    with pytest.raises(AtomicFileError) as info:
        check_atomic_file(path, required=["item_id_list"], non_empty=["item_id_list"])
    assert str(info.value).startswith(f"{path}:4:")
    assert info.value.line == 4
    assert "empty sequence" in str(info.value) and "item_id_list" in str(info.value)


def test_check_atomic_file_empty_allowed_when_not_listed(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id_list:token_seq", "u1\t")
    assert check_atomic_file(path, required=["item_id_list"]) == [("user_id", "token"), ("item_id_list", "token_seq")]


def test_check_atomic_file_reads_whole_file(tmp_path):
    path = write_lines(tmp_path / "a.inter", "user_id:token\titem_id:token", "u1\ti1", "u2\ti2\tx")
    with pytest.raises(AtomicFileError, match=r":3: expected 2 columns"):
        check_atomic_file(path)


# ---------------------------------------------------------------- read_item_text

def test_read_item_text_order_and_empty_cells(tmp_path):
    path = write_lines(
        tmp_path / "d.itemtext",
        "item_id:token\tbrand:text\ttitle:text\tcategories:text",
        "i1\tAcme\tSanding roll, 4 1/2\"\tTools, Abrasives",
        "i2\t\tOnly a title\t",
        "i3\t\t\t",
        "i4\tEsc\tline\\nbreak \\\\ tab\\there\t",
    )
    keys, items = read_item_text(path)
    assert keys == ["brand", "title", "categories"]
    assert list(items) == ["i1", "i2", "i3", "i4"]
    assert list(items["i1"]) == ["brand", "title", "categories"]
    assert items["i1"] == {"brand": "Acme", "title": 'Sanding roll, 4 1/2"', "categories": "Tools, Abrasives"}
    assert items["i2"] == {"title": "Only a title"}
    assert items["i3"] == {}
    assert items["i4"] == {"brand": "Esc", "title": "line\nbreak \\ tab\there"}


def test_read_item_text_item_column_anywhere(tmp_path):
    path = write_lines(tmp_path / "d.itemtext", "title:text\tasin:token", "Hello\tB001")
    keys, items = read_item_text(path, item_field="asin")
    assert keys == ["title"] and items == {"B001": {"title": "Hello"}}


def test_read_item_text_duplicate_item(tmp_path):
    path = write_lines(tmp_path / "d.itemtext", "item_id:token\ttitle:text", "i1\ta", "i2\tb", "", "i1\tc")
    with pytest.raises(AtomicFileError) as info:
        read_item_text(path)
    assert str(info.value).startswith(f"{path}:5:")
    assert "'i1'" in str(info.value) and "twice" in str(info.value)


def test_read_item_text_missing_item_column(tmp_path):
    path = write_lines(tmp_path / "d.itemtext", "asin:token\ttitle:text", "B001\tHello")
    with pytest.raises(AtomicFileError) as info:
        read_item_text(path)
    assert str(info.value).startswith(f"{path}:1:")
    assert "'item_id'" in str(info.value)


def test_read_item_text_empty_item_token(tmp_path):
    path = write_lines(tmp_path / "d.itemtext", "item_id:token\ttitle:text", "i1\ta", "\tb")
    with pytest.raises(AtomicFileError, match=r":3: empty 'item_id'"):
        read_item_text(path)


def test_read_item_text_without_text_column(tmp_path):
    path = write_lines(tmp_path / "d.itemtext", "item_id:token\tprice:float", "i1\t3.5")
    with pytest.raises(AtomicFileError, match=r":1: no ':text' column"):
        read_item_text(path)


# ---------------------------------------------------------------- write_item_text / write_atomic_file

def test_write_then_read_item_text_is_lossless(tmp_path):
    path = tmp_path / "out" / "d.itemtext"
    keys = ["title", "brand", "description"]
    items = [
        (f"i{n}", {"title": value, "brand": f"b{n}", "description": TRICKY[-n - 1]})
        for n, value in enumerate(TRICKY)
        if value  # an empty string means "no attribute" and is dropped by design
    ]
    items.append(("only_brand", {"brand": "x"}))
    items.append(("nothing", {}))
    assert write_item_text(path, keys, items) == len(items)

    read_keys, read_items = read_item_text(path)
    assert read_keys == keys
    expected = {token: {k: v for k, v in attrs.items() if v} for token, attrs in items}
    assert read_items == expected
    assert [list(attrs) for attrs in read_items.values()] == [
        [k for k in keys if attrs.get(k)] for _, attrs in items
    ]
    assert os.listdir(path.parent) == ["d.itemtext"]


if given is not None:

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5))
    def test_write_then_read_item_text_property(tmp_path_factory, titles):
        path = tmp_path_factory.mktemp("prop") / "d.itemtext"
        items = [(f"i{n}", {"title": title}) for n, title in enumerate(titles)]
        write_item_text(path, ["title"], items)
        assert read_item_text(path) == (["title"], dict(items))


def test_write_atomic_file_layout(tmp_path):
    path = tmp_path / "d.inter"
    header = [("user_id", "token"), ("item_id", "token"), ("timestamp", "float"), ("note", "text")]
    assert write_atomic_file(path, header, [("u1", "i1", 1.5, "a\tb"), ("u2", "i2", None, None)]) == 2
    assert path.read_bytes() == (
        b"user_id:token\titem_id:token\ttimestamp:float\tnote:text\n"
        b"u1\ti1\t1.5\ta\\tb\n"
        b"u2\ti2\t\t\n"
    )


@pytest.mark.parametrize("bad", ["i\t1", "i\n1", "i\r1"])
def test_write_atomic_file_rejects_tab_in_token_and_leaves_nothing(tmp_path, bad):
    path = tmp_path / "d.inter"
    rows = [("u1", "i0"), ("u2", bad), ("u3", "i3")]
    with pytest.raises(ValueError) as info:
        write_atomic_file(path, [("user_id", "token"), ("item_id", "token")], rows)
    assert str(path) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_write_atomic_file_failure_keeps_previous_file(tmp_path):
    path = tmp_path / "d.inter"
    write_atomic_file(path, [("item_id", "token")], [("i1",)])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_atomic_file(path, [("item_id", "token")], [("i2",), ("bad\tcell",)])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["d.inter"]


# ---------------------------------------------------------------- atomic_write

def test_atomic_write_keeps_old_file_when_block_raises(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old content\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write("new content that must not appear\n")
            f.flush()
            raise RuntimeError("boom")
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_creates_nothing_when_block_raises(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    with pytest.raises(KeyError):
        with atomic_write(path) as f:
            f.write("x")
            raise KeyError("x")
    assert os.listdir(tmp_path / "sub") == []


def test_atomic_write_replaces_on_success_without_newline_translation(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old", encoding="utf-8")
    with atomic_write(path) as f:
        f.write("é\nline\n")
    assert path.read_bytes() == "é\nline\n".encode("utf-8")
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_binary(tmp_path):
    path = tmp_path / "f.bin"
    with atomic_write(path, mode="wb") as f:
        f.write(b"\x00\xff\r\n")
    assert path.read_bytes() == b"\x00\xff\r\n"
