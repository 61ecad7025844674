"""Converters from public dataset layouts into the text-attribute atomic format.

Each converter writes ``<out_root>/<NAME>/NAME.inter`` (one chronological row per interaction) and
``NAME.itemtext`` (see :mod:`recbole_text.data.atomic`) all-or-nothing, and returns that folder.
Command line: ``python -m recbole_text.data.converters {unisrec,recformer,amazon2018,ml100k} ...``.
"""
from __future__ import annotations

from recbole_text.data.converters.amazon2018 import convert_amazon2018
from recbole_text.data.converters.ml100k import convert_ml100k
from recbole_text.data.converters.recformer import convert_recformer
from recbole_text.data.converters.unisrec import convert_unisrec

__all__ = [
    "convert_unisrec", "convert_recformer", "convert_amazon2018", "convert_ml100k", "converter_command", "DEFAULT_OUT",
]

DEFAULT_OUT = "dataset/data"
_CLI = "python -m recbole_text.data.converters"
_KNOWN = {
    "Scientific": f"{_CLI} unisrec --src ../shared/data/Scientific --out {DEFAULT_OUT}",
    "Scientific-Recformer": f"{_CLI} recformer --src ../shared/data/Scientific-Recformer --out {DEFAULT_OUT}",
    "ml-100k-text": f"{_CLI} ml100k --out {DEFAULT_OUT}",
}


def converter_command(dataset_name: str) -> str:
    """The shell command (run from the repository root) that builds ``dataset_name`` under ``dataset/data``.

    Unknown names get a hint naming the ``amazon2018``, ``unisrec`` and ``recformer`` subcommands.
    """
    if dataset_name in _KNOWN:
        return _KNOWN[dataset_name]
    return (
        f"{_CLI} amazon2018 --meta meta_<Category>.json.gz --reviews <Category>_5.json.gz "
        f"--name {dataset_name} --out {DEFAULT_OUT}   (or, for a UniSRec-layout folder: "
        f"{_CLI} unisrec --src <folder holding {dataset_name}.train.inter ...> --out {DEFAULT_OUT}; for "
        f"Recformer's json files: {_CLI} recformer --src <folder holding smap.json ...> --name {dataset_name} "
        f"--out {DEFAULT_OUT})"
    )
