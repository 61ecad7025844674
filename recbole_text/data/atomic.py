"""Atomic files: validation, the lossless ``.itemtext`` format, and atomic writes.

RecBole's atomic files are TAB-separated with a ``name:type`` header. Its ``token_seq`` type splits text on
spaces, which loses the original string. Item text therefore lives in its own file ``<dataset>.itemtext``::

    item_id:token<TAB>title:text<TAB>brand:text<TAB>categories:text
    B00TNNWMXI<TAB>Sanding roll, 4 1/2"<TAB>PORTER-CABLE<TAB>Industrial & Scientific, Abrasives

* one ``text`` column per attribute; the column order is the attribute (key) order;
* a cell holds the whole UTF-8 string, with ``\\``, TAB, LF and CR escaped as ``\\\\``, ``\\t``, ``\\n``, ``\\r``;
* an empty cell means "this item has no such attribute".

RecBole never reads ``.itemtext`` (it only opens ``.inter``, ``.user``, ``.item`` and configured extra
suffixes), so the type ``text`` never reaches its parser.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

FIELD_TYPES = ("token", "token_seq", "float", "float_seq", "text")
ITEM_TEXT_SUFFIX = "itemtext"

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


class AtomicFileError(ValueError):
    """A malformed atomic file; the message starts with ``path:line:``."""

    def __init__(self, path, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


def escape_text(value: str) -> str:
    if not any(ch in value for ch in _ESCAPES):
        return value
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def unescape_text(cell: str) -> str:
    if "\\" not in cell:
        return cell
    out, chars = [], iter(cell)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


def parse_header(path, header_line: str, separator: str = "\t") -> list[tuple[str, str]]:
    """``name:type`` cells → ``[(name, type)]``; raises :class:`AtomicFileError` on line 1."""
    if not header_line.strip():
        raise AtomicFileError(path, 1, "empty header; expected 'name:type' columns")
    columns, seen = [], set()
    for cell in header_line.rstrip("\r\n").split(separator):
        name, colon, ftype = cell.rpartition(":")
        if not colon or not name:
            raise AtomicFileError(path, 1, f"malformed header column {cell!r}; expected 'name:type'")
        if ftype not in FIELD_TYPES:
            raise AtomicFileError(
                path, 1, f"unknown field type {ftype!r} in column {cell!r}; known types: {', '.join(FIELD_TYPES)}"
            )
        if name in seen:
            raise AtomicFileError(path, 1, f"duplicate column {name!r}")
        seen.add(name)
        columns.append((name, ftype))
    return columns


def iter_rows(path, separator: str = "\t") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, cells)`` for each data line, checking UTF-8 and the column count."""
    with open(path, "rb") as f:
        raw_header = f.readline()
        try:
            header = parse_header(path, raw_header.decode("utf-8"), separator)
        except UnicodeDecodeError as e:
            raise AtomicFileError(path, 1, f"header is not valid UTF-8 ({e.reason} at byte {e.start})") from None
        yield 1, [f"{name}:{ftype}" for name, ftype in header]
        width = len(header)
        for number, raw in enumerate(f, start=2):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise AtomicFileError(path, number, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line:
                continue
            cells = line.split(separator)
            if len(cells) != width:
                raise AtomicFileError(path, number, f"expected {width} columns as in the header, found {len(cells)}")
            yield number, cells


def check_atomic_file(path, required: Sequence[str] = (), non_empty: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Read the whole file once and raise :class:`AtomicFileError` at the first problem.

    ``required`` names columns the header must have; ``non_empty`` names columns no row may leave empty
    (e.g. the history ``item_id_list`` of a pre-split file: an empty sequence has nothing to predict from).
    """
    rows = iter_rows(path)
    _, header_cells = next(rows)
    header = [tuple(c.rsplit(":", 1)) for c in header_cells]
    names = [name for name, _ in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise AtomicFileError(path, 1, f"missing column(s) {', '.join(missing)}; header has {', '.join(names)}")
    check = [(names.index(name), name) for name in non_empty if name in names]
    for number, cells in rows:
        for index, name in check:
            if not cells[index].strip():
                raise AtomicFileError(path, number, f"empty {name!r} (an empty sequence)")
    return header


def read_item_text(path, item_field: str = "item_id") -> tuple[list[str], dict[str, dict[str, str]]]:
    """Read ``<dataset>.itemtext`` → ``(keys, {raw item token: {key: value}})``; empty cells are dropped."""
    rows = iter_rows(path)
    _, header_cells = next(rows)
    header = [tuple(c.rsplit(":", 1)) for c in header_cells]
    names = [name for name, _ in header]
    if item_field not in names:
        raise AtomicFileError(path, 1, f"missing column {item_field!r}; header has {', '.join(names)}")
    id_index = names.index(item_field)
    text_columns = [(i, name) for i, (name, ftype) in enumerate(header) if ftype == "text"]
    if not text_columns:
        raise AtomicFileError(path, 1, "no ':text' column; nothing to read")
    items: dict[str, dict[str, str]] = {}
    for number, cells in rows:
        token = cells[id_index]
        if not token:
            raise AtomicFileError(path, number, f"empty {item_field!r}")
        if token in items:
            raise AtomicFileError(path, number, f"item {token!r} appears twice")
        items[token] = {name: unescape_text(cells[i]) for i, name in text_columns if cells[i]}
    return [name for _, name in text_columns], items


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; it is renamed into place only if the block succeeds, and
    removed otherwise (for writers that need a path, e.g. ``np.lib.format.open_memmap``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", encoding: str | None = "utf-8"):
    """Write to a temporary file beside ``path`` and rename it into place only if the block succeeds."""
    kwargs = {"encoding": encoding, "newline": "\n"} if "b" not in mode else {}
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_atomic_file(path, header: Sequence[tuple[str, str]], rows: Iterable[Sequence]) -> int:
    """Write an atomic file atomically; ``text`` cells are escaped, others must not contain TAB/newline."""
    kinds = [ftype for _, ftype in header]
    count = 0
    with atomic_write(path) as f:
        f.write("\t".join(f"{name}:{ftype}" for name, ftype in header) + "\n")
        for row in rows:
            if len(row) != len(kinds):
                raise ValueError(f"{path}: row {count + 1} has {len(row)} cells, the header {len(kinds)}")
            cells = []
            for value, kind in zip(row, kinds):
                value = "" if value is None else str(value)
                if kind == "text":
                    value = escape_text(value)
                elif any(ch in value for ch in "\t\n\r"):
                    raise ValueError(f"{path}: a {kind} cell cannot hold TAB or newline: {value!r}")
                cells.append(value)
            f.write("\t".join(cells) + "\n")
            count += 1
    return count


def write_item_text(path, keys: Sequence[str], items: Iterable[tuple[str, dict]], item_field: str = "item_id") -> int:
    """Write ``<dataset>.itemtext`` from ``(raw item token, {key: value})`` pairs in ``keys`` order."""
    header = [(item_field, "token")] + [(key, "text") for key in keys]
    return write_atomic_file(path, header, ([token] + [attrs.get(k, "") for k in keys] for token, attrs in items))
