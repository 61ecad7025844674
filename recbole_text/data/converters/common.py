"""Shared helpers of the converters: the all-or-nothing dataset folder, writers, summary, progress bars."""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import pandas as pd
from tqdm import tqdm

from recbole_text.data.atomic import ITEM_TEXT_SUFFIX, write_atomic_file, write_item_text

INTER_HEADER = [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")]
_BAD_NAME = re.compile(r"[/\\\x00]|^\.")


def check_name(name: str) -> str:
    """A dataset name becomes a folder and a file prefix: no path separators, no leading dot, not empty."""
    if not isinstance(name, str) or not name.strip() or _BAD_NAME.search(name) or name in (".", ".."):
        raise ValueError(f"invalid dataset name {name!r}: use a plain folder name such as 'Scientific'")
    return name


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar on stderr, shown only on a terminal (``disable=None``) so logs and tests stay clean."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def dataset_folder(out_root, name: str) -> Iterator[Path]:
    """Yield a temp folder ``<out_root>/.NAME.tmp-XXXX``; it becomes ``<out_root>/NAME`` only on success.

    On any exception the temp folder is removed and an existing ``NAME`` folder is left untouched.
    On success an existing ``NAME`` is first moved aside, then replaced, then deleted.
    """
    name = check_name(name)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".{name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    final = out_root / name
    try:
        yield tmp
        _default_permissions(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out_root)) / name
            final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            if old is not None:
                old.rename(final)
            raise
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _default_permissions(folder: Path) -> None:
    """Give the files made by ``tempfile`` (mode 0600) the usual ``0666 & ~umask`` mode."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def write_inter(path: Path, df: pd.DataFrame, columns: Sequence[tuple[str, str]] = INTER_HEADER) -> int:
    """Write the ``.inter`` file from the named columns of ``df`` (row order kept)."""
    names = [name for name, _ in columns]
    rows = zip(*(df[name].astype(str).tolist() for name in names))
    return write_atomic_file(path, columns, progress(rows, f"write {path.name}", total=len(df), unit="row"))


def write_dataset(
    out_root, name: str, inter: pd.DataFrame, keys: Sequence[str], items: Iterable[tuple[str, dict]],
    inter_columns: Sequence[tuple[str, str]] = INTER_HEADER, more_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``NAME.inter`` and ``NAME.itemtext`` into ``<out_root>/NAME`` atomically and print a summary;
    ``more_files(folder)`` writes any further files into the same (temporary) folder, between the two."""
    with dataset_folder(out_root, name) as tmp:
        write_inter(tmp / f"{name}.inter", inter, inter_columns)
        if more_files is not None:
            more_files(tmp)
        write_item_text(tmp / f"{name}.{ITEM_TEXT_SUFFIX}", keys, items)
    final = Path(out_root) / name
    print(summary(name, inter) + f" -> {final}")
    return final


def summary(name: str, inter: pd.DataFrame) -> str:
    """One line: ``NAME: U users, I items, N interactions``."""
    return (
        f"{name}: {inter['user_id'].nunique():,} users, {inter['item_id'].nunique():,} items, "
        f"{len(inter):,} interactions"
    )
