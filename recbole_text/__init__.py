"""recbole_text: text-based and efficient sequential recommenders on RecBole 1.2.1.

The public API is imported lazily, so ``python run_recbole_text.py --help`` answers without loading torch,
RecBole or Ray. Every module that imports RecBole imports :mod:`recbole_text.compat` first, which makes
RecBole 1.2.1 run on NumPy 2, pandas 2.x and torch >= 2.6.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "run": "recbole_text.quick_start",
    "build_job": "recbole_text.job",
    "recommend": "recbole_text.recommend",
    "get_model": "recbole_text.registry",
    "get_trainer": "recbole_text.registry",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'recbole_text' has no attribute {name!r}")
    importlib.import_module("recbole_text.compat")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
