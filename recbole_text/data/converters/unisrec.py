"""UniSRec layout → one chronological ``.inter`` plus ``.itemtext``.

The UniSRec folder ``X/`` holds ``X.train.inter``, ``X.valid.inter``, ``X.test.inter`` (``user_id:token
item_id_list:token_seq item_id:token`` with *indices*), ``X.item2index`` / ``X.user2index`` (``raw<TAB>index``,
no header) and ``X.text`` (``item_id:token text:token_seq``, text ``"<title>. <categories>. <brand>. "``).

For a user with full sequence ``s`` the split files hold: train = every prefix → next item of ``s[:-2]``,
valid = history → ``s[-2]``, test = history → ``s[-1]``; every history keeps only the ``MAX_HISTORY`` most
recent items. The sequence is rebuilt from the shortest train history (the valid history when a user has no
train rows), then the train targets, the valid and the test target; every row is then checked against it.
Timestamps are the positions ``0..n-1``.
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from recbole_text.data.atomic import AtomicFileError, iter_rows
from recbole_text.data.converters.common import check_name, progress, write_dataset

MAX_HISTORY = 50
TEXT_KEYS = ("title", "categories", "brand")
SPLITS = ("train", "valid", "test")


class Row(NamedTuple):
    """One line of a split file, already mapped to raw ids."""

    path: Path
    line: int
    user: str
    history: list
    target: str


def convert_unisrec(src_dir, out_root, name: str | None = None) -> Path:
    """Convert the UniSRec folder ``src_dir`` into ``<out_root>/<name>/`` and return that folder.

    The file prefix ``X`` is the folder name (else ``name``, else the only ``*.train.inter`` prefix);
    ``name`` defaults to ``X``.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"UniSRec source folder not found: {src}")
    prefix = _find_prefix(src, name)
    name = check_name(name or prefix)
    items = _read_index(src / f"{prefix}.item2index")
    users = _read_index(src / f"{prefix}.user2index")
    splits = {split: _read_split(src / f"{prefix}.{split}.inter", users, items) for split in SPLITS}
    sequences = rebuild_sequences(*(splits[split] for split in SPLITS))
    inter = pd.DataFrame(
        [(user, item, position) for user, seq in sequences.items() for position, item in enumerate(seq)],
        columns=["user_id", "item_id", "timestamp"],
    )
    texts = read_unisrec_text(src / f"{prefix}.text")
    missing = sorted(set(inter["item_id"]) - set(texts))
    if missing:
        print(f"warning: {len(missing)} item(s) have no text in {prefix}.text, e.g. {missing[0]!r}")
    return write_dataset(out_root, name, inter, TEXT_KEYS, texts.items())


def _body(text: str) -> str:
    return text[:-2] if text.endswith(". ") else text.rstrip()


def split_text(text: str, root: str = "") -> dict[str, str]:
    """``"<title>. <categories>. <brand>. "`` → ``{title, categories, brand}`` without empty fields.

    Titles and brands can contain ``". "``; the fields are found from the right: if ``". " + root`` occurs
    (``root``, e.g. ``Industrial & Scientific``, starts every category string) the categories start at its last
    occurrence and end at the next ``". "``; else an empty categories field shows as ``". . "``; else the text
    is split at the last two ``". "``.
    """
    body = _body(text)
    at = body.rfind(". " + root) if root else -1
    if at >= 0:
        end = body.find(". ", at + 2)
        end = len(body) if end < 0 else end
        fields = [body[:at], body[at + 2:end], body[end + 2:]]
    elif ". . " in body:
        at = body.find(". . ")
        fields = [body[:at], "", body[at + 4:]]
    else:
        fields = (body.rsplit(". ", 2) + ["", ""])[:3] if ". " in body else [body, "", ""]
    return {key: value.strip() for key, value in zip(TEXT_KEYS, fields) if value.strip()}


def category_root(texts: list[str]) -> str:
    """The leading words shared by most category strings, learned from texts with exactly three fields."""
    categories = [parts[1].split(" ") for parts in (_body(t).split(". ") for t in texts) if len(parts) == 3]
    categories = [words for words in categories if words != [""]]
    prefix: list[str] = []
    while categories:
        counts = collections.Counter(tuple(w[: len(prefix) + 1]) for w in categories if len(w) > len(prefix))
        if not counts:
            break
        top, count = counts.most_common(1)[0]
        if 2 * count <= len(categories):
            break
        prefix = list(top)
    return " ".join(prefix)


def read_unisrec_text(path: Path) -> dict[str, dict[str, str]]:
    """``X.text`` → ``{raw item: {title, categories, brand}}`` in file order."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"missing UniSRec file: {path}")
    rows = iter_rows(path)
    _, header = next(rows)
    names = [cell.rsplit(":", 1)[0] for cell in header]
    if "item_id" not in names or "text" not in names:
        raise AtomicFileError(path, 1, f"expected columns item_id and text; header has {', '.join(names)}")
    i, t = names.index("item_id"), names.index("text")
    raw: dict[str, str] = {}
    for number, cells in rows:
        if cells[i] in raw:
            raise AtomicFileError(path, number, f"item {cells[i]!r} appears twice")
        raw[cells[i]] = cells[t]
    root = category_root(list(raw.values()))
    return {item: split_text(text, root) for item, text in raw.items()}


def rebuild_sequences(train: list[Row], valid: list[Row], test: list[Row]) -> dict[str, list[str]]:
    """Rebuild every user's full sequence and check all rows against it; users in test-file order."""
    valid_of, test_of = _one_per_user(valid), _one_per_user(test)
    train_of: dict[str, list[Row]] = {}
    for row in train:
        train_of.setdefault(row.user, []).append(row)
    for row in [*valid, *train]:
        if row.user not in test_of:
            raise AtomicFileError(row.path, row.line, f"user {row.user!r} has no row in the test file")
    sequences = {}
    for user, last in progress(test_of.items(), "rebuild sequences", unit="user"):
        if user not in valid_of:
            raise AtomicFileError(last.path, last.line, f"user {user!r} has no row in the valid file")
        ordered = _order_train(train_of.get(user, []))
        base = ordered[0].history if ordered else valid_of[user].history
        seq = base + [row.target for row in ordered] + [valid_of[user].target, last.target]
        for position, row in enumerate([*ordered, valid_of[user], last], start=len(base)):
            _check_row(row, seq, position)
        sequences[user] = seq
    return sequences


def _one_per_user(rows: list[Row]) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for row in rows:
        if row.user in out:
            raise AtomicFileError(row.path, row.line, f"user {row.user!r} has a second row (line {out[row.user].line})")
        out[row.user] = row
    return out


def _order_train(rows: list[Row]) -> list[Row]:
    """Train rows in sequence order: by history length; rows of equal (truncated) length keep file order,
    reversed when the user's rows are listed longest first (as the UniSRec files list them)."""
    if len(rows) > 1 and len(rows[0].history) > len(rows[-1].history):
        rows = rows[::-1]
    return sorted(rows, key=lambda row: len(row.history))


def _check_row(row: Row, seq: list[str], position: int) -> None:
    expected = seq[max(0, position - MAX_HISTORY):position]
    if row.history != expected or row.target != seq[position]:
        raise AtomicFileError(
            row.path, row.line,
            f"user {row.user!r}: row does not match the sequence rebuilt from train/valid/test "
            f"(expected {len(expected)} history items ending {expected[-3:]} -> {seq[position]!r}; "
            f"found {len(row.history)} ending {row.history[-3:]} -> {row.target!r})",
        )


def _find_prefix(src: Path, name: str | None) -> str:
    for candidate in (src.name, name):
        if candidate and (src / f"{candidate}.train.inter").is_file():
            return candidate
    found = sorted(p.name[: -len(".train.inter")] for p in src.glob("*.train.inter"))
    if len(found) == 1:
        return found[0]
    raise FileNotFoundError(
        f"no UniSRec files in {src}: expected {src.name}.train.inter (found {', '.join(found) or 'none'})"
    )


def _read_index(path: Path) -> dict[str, str]:
    """``raw<TAB>index`` lines (no header) → ``{index: raw}``."""
    if not path.is_file():
        raise FileNotFoundError(f"missing UniSRec file: {path}")
    mapping: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            cells = line.rstrip("\r\n").split("\t")
            if cells == [""]:
                continue
            if len(cells) != 2 or not cells[0] or not cells[1].strip():
                raise AtomicFileError(path, number, "expected 'raw_id<TAB>index'")
            if cells[1].strip() in mapping:
                raise AtomicFileError(path, number, f"index {cells[1]!r} appears twice")
            mapping[cells[1].strip()] = cells[0]
    return mapping


def _read_split(path: Path, users: dict[str, str], items: dict[str, str]) -> list[Row]:
    """The rows of one split file in file order, indices mapped to raw ids."""
    if not path.is_file():
        raise FileNotFoundError(f"missing UniSRec file: {path}")
    rows = iter_rows(path)
    _, header = next(rows)
    names = [cell.rsplit(":", 1)[0] for cell in header]
    for column in ("user_id", "item_id_list", "item_id"):
        if column not in names:
            raise AtomicFileError(path, 1, f"missing column {column!r}; header has {', '.join(names)}")
    u, h, t = names.index("user_id"), names.index("item_id_list"), names.index("item_id")
    out = []
    for number, cells in progress(rows, f"read {path.name}", unit="row"):
        if cells[u].strip() not in users:
            raise AtomicFileError(path, number, f"user index {cells[u]!r} is not in user2index")
        indices = cells[h].split()
        if not indices:
            raise AtomicFileError(path, number, "empty sequence in 'item_id_list'")
        raw = []
        for index in indices + [cells[t].strip()]:
            if index not in items:
                raise AtomicFileError(path, number, f"item index {index!r} is not in item2index")
            raw.append(items[index])
        out.append(Row(path, number, users[cells[u].strip()], raw[:-1], raw[-1]))
    return out
