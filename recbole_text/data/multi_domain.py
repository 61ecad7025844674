"""Several datasets trained as one (multi-domain pretraining): ``--dataset=Office,Instruments,Games``.

A list of dataset names (comma-separated on the command line, a list in Python) names one combined dataset,
``Office+Instruments+Games``, built under ``data_path`` on first use from the component folders:

* every user and item token is prefixed with its domain (``Office/123``), so ids never collide across domains
  (the same raw id in two domains is two users, two items);
* the ``.inter`` rows are concatenated (each domain keeps its own time order; users never span domains), so the
  leave-one-out split and every loader work unchanged, and shuffled training batches mix the domains;
* the ``.itemtext`` files are merged over the union of their attribute keys (an item keeps only its own).

Components must share the ``.inter`` header. The folder is written atomically (a temporary folder renamed into
place), so an interrupted build leaves nothing half-written.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from recbole_text.data.atomic import (ITEM_TEXT_SUFFIX, AtomicFileError, iter_rows, read_item_text,
                                      write_atomic_file, write_item_text)

JOIN = "+"


def dataset_name(dataset) -> str:
    """``"Office,Instruments"`` or ``["Office", "Instruments"]`` → ``"Office+Instruments"``; a name stays."""
    names = dataset if isinstance(dataset, (list, tuple)) else str(dataset).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise ValueError(f"no dataset name in {dataset!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"dataset {dataset!r} names a domain twice")
    return JOIN.join(names)


def domains(name: str) -> list[str]:
    return name.split(JOIN)


def combine_datasets(data_root, name: str) -> Path:
    """Build ``<data_root>/<name>/`` (``name`` as :func:`dataset_name` makes it) from its component folders."""
    root = Path(data_root)
    parts = domains(name)
    missing = [p for p in parts if not (root / p / f"{p}.inter").is_file()]
    if missing:
        raise FileNotFoundError(f"cannot combine {name}: no {', '.join(f'{root / p / p}.inter' for p in missing)} "
                                "(convert each domain first)")
    header, rows = None, []
    for part in parts:
        path = root / part / f"{part}.inter"
        lines = iter_rows(path)
        _, cells = next(lines)
        fields = [tuple(c.rsplit(":", 1)) for c in cells]
        if header is None:
            header = fields
        elif fields != header:
            raise AtomicFileError(path, 1, f"header {cells} differs from {root / parts[0] / parts[0]}.inter's")
        tokens = [i for i, (field, _) in enumerate(header) if field in ("user_id", "item_id")]
        for _, values in lines:
            for i in tokens:
                values[i] = f"{part}/{values[i]}"
            rows.append(values)
    keys, items = [], []
    for part in parts:
        path = root / part / f"{part}.{ITEM_TEXT_SUFFIX}"
        if path.is_file():
            part_keys, texts = read_item_text(path)
            keys += [k for k in part_keys if k not in keys]
            items += [(f"{part}/{token}", attrs) for token, attrs in texts.items()]
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        write_atomic_file(building / f"{name}.inter", header, rows)
        if items:
            write_item_text(building / f"{name}.{ITEM_TEXT_SUFFIX}", keys, items)
        os.chmod(building, 0o755)
        os.replace(building, root / name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return root / name
