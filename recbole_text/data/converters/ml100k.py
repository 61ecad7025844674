"""MovieLens-100k (the copy shipped inside the recbole wheel) → ``ml-100k-text`` with item text.

``ml-100k.inter`` (``user_id rating timestamp`` …) is kept as is, ordered by user, timestamp and file order;
``ml-100k.item`` (``item_id movie_title release_year class``) gives the attributes ``title`` (the cell as is),
``year`` and ``genres`` (the ``class`` tokens joined with ``", "``). Titles contain quotes, so both files are
read with :func:`~recbole_text.data.atomic.iter_rows`, never with pandas' CSV quoting.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from recbole_text.data.atomic import AtomicFileError, iter_rows
from recbole_text.data.converters.common import progress, write_dataset

TEXT_KEYS = ("title", "year", "genres")
INTER_COLUMNS = [("user_id", "token"), ("item_id", "token"), ("rating", "float"), ("timestamp", "float")]


def ml100k_source() -> Path:
    """The ``ml-100k`` folder inside the installed recbole package."""
    import recbole

    return Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def convert_ml100k(out_root, name: str = "ml-100k-text", src_dir=None) -> Path:
    """Convert recbole's bundled ml-100k (or ``src_dir`` with the same two files) into ``<out_root>/<name>/``."""
    src = Path(src_dir) if src_dir is not None else ml100k_source()
    inter_path, item_path = src / "ml-100k.inter", src / "ml-100k.item"
    for path in (inter_path, item_path):
        if not path.is_file():
            raise FileNotFoundError(f"ml-100k file not found: {path}")
    inter = _read_columns(inter_path, [column for column, _ in INTER_COLUMNS])
    times = pd.to_numeric(inter["timestamp"], errors="coerce")
    if times.isna().any():
        raise AtomicFileError(inter_path, int(inter.loc[times.isna(), "line"].iloc[0]), "timestamp is not a number")
    inter = inter.assign(time_value=times).sort_values(["user_id", "time_value", "line"], kind="stable")
    items = _read_columns(item_path, ["item_id", "movie_title", "release_year", "class"])
    items["genres"] = items["class"].str.split().str.join(", ")
    texts = (
        (item, {key: value for key, value in zip(TEXT_KEYS, values) if value})
        for item, *values in zip(items["item_id"], items["movie_title"], items["release_year"], items["genres"])
    )
    return write_dataset(out_root, name, inter, TEXT_KEYS, texts, inter_columns=INTER_COLUMNS)


def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    """The named columns of an atomic file (as strings) plus its ``line`` numbers."""
    rows = iter_rows(path)
    _, header = next(rows)
    names = [cell.rsplit(":", 1)[0] for cell in header]
    missing = [column for column in columns if column not in names]
    if missing:
        raise AtomicFileError(path, 1, f"missing column(s) {', '.join(missing)}; header has {', '.join(names)}")
    index = [names.index(column) for column in columns]
    lines, values = [], []
    for number, cells in progress(rows, f"read {path.name}", unit="row"):
        lines.append(number)
        values.append([cells[i] for i in index])
    frame = pd.DataFrame(values, columns=columns)
    frame["line"] = lines
    return frame
