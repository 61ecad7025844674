"""Amazon Review Data (2018) raw files → chronological ``.inter`` plus ``.itemtext``.

Inputs: the metadata ``meta_<Category>.json.gz`` (one object per line: ``asin``, ``title``, ``brand``,
``category`` list, ...; old files hold Python-dict lines, read with ``ast.literal_eval``) and either the
reviews ``<Category>_5.json.gz`` (``reviewerID``, ``asin``, ``unixReviewTime``, ``overall``) or the ratings
CSV ``<Category>.csv`` (no header: ``item,user,rating,timestamp``). Plain or gzipped files are accepted.

Processing: clean the text (``html.unescape``, strip tags, collapse whitespace); drop items without
metadata or with an empty title; drop duplicate ``(user, item, timestamp)``; iterative k-core on users and
items until stable; order each user's rows by timestamp, ties by file order.
"""
from __future__ import annotations

import ast
import gzip
import html
import json
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from recbole_text.data.atomic import AtomicFileError
from recbole_text.data.converters.common import check_name, progress, write_dataset

TEXT_KEYS = ("title", "brand", "categories")
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")


def convert_amazon2018(meta_path, interactions_path, out_root, name: str, min_core: int = 5) -> Path:
    """Convert Amazon 2018 metadata + reviews (``.json[.gz]``) or ratings (``.csv[.gz]``) into ``<out_root>/<name>/``."""
    name = check_name(name)
    if int(min_core) < 1:
        raise ValueError(f"min_core must be at least 1, got {min_core}")
    inter = read_interactions(interactions_path)
    meta = read_meta(meta_path, wanted=set(inter["item_id"]))
    inter = filter_interactions(inter, set(meta["item_id"]), int(min_core))
    if inter.empty:
        raise ValueError(f"no interaction is left after dropping items without metadata and {min_core}-core filtering")
    meta = meta[meta["item_id"].isin(set(inter["item_id"]))].sort_values("item_id")
    items = ((row["item_id"], {k: row[k] for k in TEXT_KEYS if row[k]}) for row in meta.to_dict("records"))
    return write_dataset(out_root, name, inter, TEXT_KEYS, items)


def clean_text(values: pd.Series) -> pd.Series:
    """``html.unescape``, strip HTML tags, collapse whitespace; missing values become ``""``."""
    text = values.fillna("").astype(str).map(html.unescape)
    return text.str.replace(_TAG, " ", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()


def join_categories(lists: pd.Series) -> pd.Series:
    """Lists of category names → one ``", "``-joined string each (entries cleaned, empty ones and repeats dropped)."""
    flat = clean_text(lists.map(_as_list).explode()).rename("value").rename_axis("row").reset_index()
    flat = flat[flat["value"] != ""].drop_duplicates()
    joined = flat.groupby("row", sort=False)["value"].agg(", ".join)
    return joined.reindex(lists.index, fill_value="")


def read_meta(path, wanted: set | None = None) -> pd.DataFrame:
    """Metadata → ``item_id, title, brand, categories`` (cleaned; first record of an ASIN wins; empty titles dropped).

    ``wanted``: if given, only these ASINs are kept (saves memory on big categories).
    """
    records = []
    for number, obj in _json_lines(path, "read metadata"):
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin.strip():
            raise AtomicFileError(path, number, "metadata record without an 'asin'")
        if wanted is not None and asin not in wanted:
            continue
        categories = obj.get("category")
        if categories is None and isinstance(obj.get("categories"), list):  # older files: list of lists
            categories = [c for sub in obj["categories"] for c in (sub if isinstance(sub, list) else [sub])]
        records.append((asin.strip(), _as_text(obj.get("title")), _as_text(obj.get("brand")), categories))
    meta = pd.DataFrame(records, columns=["item_id", "title", "brand", "categories"])
    meta = meta.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    meta["title"], meta["brand"] = clean_text(meta["title"]), clean_text(meta["brand"])
    meta["categories"] = join_categories(meta["categories"])
    return meta[meta["title"] != ""].reset_index(drop=True)


def read_interactions(path) -> pd.DataFrame:
    """Reviews JSON lines or a ratings CSV (sniffed) → ``user_id, item_id, timestamp`` in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"interactions file not found: {path}")
    with _open(path) as f:
        first = f.readline().lstrip()
    return read_reviews(path) if first.startswith("{") else read_ratings(path)


def read_reviews(path) -> pd.DataFrame:
    """``<Category>_5.json.gz`` → ``user_id, item_id, timestamp``."""
    users, items, times = [], [], []
    for number, obj in _json_lines(path, "read reviews"):
        try:
            user, item, time = obj["reviewerID"], obj["asin"], obj["unixReviewTime"]
        except KeyError as e:
            raise AtomicFileError(path, number, f"review without {e.args[0]!r}") from None
        if not isinstance(time, (int, float)) or isinstance(time, bool):
            raise AtomicFileError(path, number, f"'unixReviewTime' is not a number: {time!r}")
        users.append(str(user))
        items.append(str(item))
        times.append(time)
    return _frame(path, users, items, times)


def read_ratings(path) -> pd.DataFrame:
    """Ratings CSV without header (``item,user,rating,timestamp``) → ``user_id, item_id, timestamp``."""
    try:
        df = pd.read_csv(
            path, header=None, names=["item_id", "user_id", "rating", "timestamp"], dtype=str,
            keep_default_na=False, compression="infer", engine="c",
        )
    except pd.errors.ParserError as e:
        match = re.search(r"line (\d+)", str(e))
        raise AtomicFileError(path, int(match.group(1)) if match else None, f"malformed CSV: {e}") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: empty ratings file") from None
    except UnicodeDecodeError as e:
        raise AtomicFileError(path, None, f"not valid UTF-8 ({e.reason})") from None
    times = pd.to_numeric(df["timestamp"], errors="coerce")
    bad = times.isna() | (df["user_id"] == "") | (df["item_id"] == "")
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise AtomicFileError(path, line, "expected 'item,user,rating,timestamp' with a numeric timestamp")
    return _frame(path, df["user_id"], df["item_id"], times)


def filter_interactions(inter: pd.DataFrame, known_items: set, min_core: int = 5) -> pd.DataFrame:
    """Keep items in ``known_items``, drop duplicate ``(user, item, timestamp)``, apply the iterative k-core,
    then sort by user, timestamp and file order."""
    inter = inter[inter["item_id"].isin(known_items)]
    inter = inter.drop_duplicates(["user_id", "item_id", "timestamp"], keep="first")
    users, _ = pd.factorize(inter["user_id"])
    items, _ = pd.factorize(inter["item_id"])
    keep = np.ones(len(inter), dtype=bool)
    while True:
        user_degree = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        item_degree = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        still = keep & (user_degree[users] >= min_core) & (item_degree[items] >= min_core)
        if (still == keep).all():
            break
        keep = still
    inter = inter[keep]
    return inter.sort_values(["user_id", "timestamp", "order"], kind="stable").reset_index(drop=True)


def _frame(path, users, items, times) -> pd.DataFrame:
    """Columns ``user_id, item_id, timestamp`` plus ``order`` (file order); integral timestamps become int64."""
    df = pd.DataFrame({"user_id": list(users), "item_id": list(items), "timestamp": pd.Series(list(times), dtype=float)})
    if df.empty:
        raise ValueError(f"{path}: no interactions")
    df["user_id"], df["item_id"] = df["user_id"].str.strip(), df["item_id"].str.strip()
    if (df["timestamp"] == df["timestamp"].round()).all():
        df["timestamp"] = df["timestamp"].astype("int64")
    df["order"] = np.arange(len(df))
    return df


def _as_list(value) -> list:
    if isinstance(value, list):
        return value
    return [] if value is None or value == "" else [value]


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _open(path: Path):
    """Text handle on a plain or gzipped UTF-8 file (gzip recognised by its magic bytes)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def _json_lines(path, desc: str) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` per non-blank line; JSON first, then Python-literal dicts (older files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with _open(path) as f:
        number = 0
        try:
            for number, line in enumerate(progress(f, desc, unit="line"), start=1):
                if not line.strip():
                    continue
                yield number, _parse_object(path, number, line)
        except UnicodeDecodeError as e:
            raise AtomicFileError(path, number + 1, f"not valid UTF-8 ({e.reason})") from None
        except (EOFError, OSError) as e:  # truncated or corrupt gzip
            raise AtomicFileError(path, number + 1, f"cannot read: {e}") from None


def _parse_object(path, number: int, line: str) -> dict:
    try:
        obj = json.loads(line)
    except ValueError as e:
        try:
            obj = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise AtomicFileError(path, number, f"malformed JSON line ({e})") from None
    if not isinstance(obj, dict):
        raise AtomicFileError(path, number, f"expected a JSON object, found {type(obj).__name__}")
    return obj
