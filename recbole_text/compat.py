"""RecBole 1.2.1 on today's libraries: everything the stack needs, in one place, imported before RecBole.

What it handles (measured in ``shared/reference/stack.md``):

* NumPy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_``, which RecBole's ``Config`` reads;
  the aliases are restored here, before any RecBole code runs.
* pandas 3 silently corrupts RecBole's ``token_seq`` fields; :func:`install` refuses to run on it.
* torch ≥ 2.6 loads with ``weights_only=True``; RecBole's checkpoints pickle its ``Config`` object and its
  dataset caches use :mod:`pickle`. This package never unpickles: checkpoints are ``state_dict`` + a plain
  config dict (:func:`save_checkpoint` / :func:`load_checkpoint`), and :func:`refuse_pickle_caches` turns
  off RecBole's pickled dataset/dataloader caches.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
}
# RecBole's settings that would make it pickle.load a file.
PICKLE_SETTINGS = ("dataset_save_path", "dataloaders_save_path")
CHECKPOINT_FORMAT = "recbole_text/checkpoint-v1"


class PickleRefusedError(ValueError):
    """A setting that would make RecBole unpickle a file."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely (wrong format or another model's)."""


def install() -> None:
    """Patch the library gaps; idempotent and cheap, run on ``import recbole_text``."""
    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"pandas {pd.__version__} is installed; RecBole 1.2.1 corrupts token_seq fields on pandas 3. "
            "Install 'pandas>=2.2,<3'."
        )
    for name, value in _NUMPY_ALIASES.items():
        if not hasattr(np, name):
            setattr(np, name, value)


def refuse_pickle_caches(config_dict: dict) -> dict:
    """Raise if a setting asks RecBole to unpickle a cache; switch its pickle writers off."""
    for key in PICKLE_SETTINGS:
        if config_dict.get(key):
            raise PickleRefusedError(
                f"'{key}' makes RecBole unpickle a file, which recbole_text never does; remove the setting"
            )
    config_dict["save_dataset"] = False
    config_dict["save_dataloaders"] = False
    return config_dict


def plain(value):
    """Turn a config value into JSON-able data (what ``weights_only=True`` may load back)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):  # before the str/float check: np.float64 and np.str_ subclass them
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # enums, torch.device, classes: kept readable, never executable


def plain_config(config) -> dict:
    """RecBole ``Config`` (or a dict) → a JSON-able dict."""
    final = getattr(config, "final_config_dict", config)
    return {k: plain(v) for k, v in final.items()}


def save_checkpoint(path, model_name: str, state: dict) -> None:
    """``torch.save`` a checkpoint of tensors and plain data, atomically."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    payload = {"format": CHECKPOINT_FORMAT, "model": model_name, **state}
    if "config" in payload:
        payload["config"] = json.loads(json.dumps(plain_config(payload["config"])))
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, expected_model: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; refuse pickled and foreign ones with one clear error."""
    import torch

    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (and others) for pickled objects
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a safe recbole_text checkpoint (it needs pickle to load: {first})"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a recbole_text checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    found = checkpoint.get("model")
    if expected_model is not None and str(found).lower() != expected_model.lower():
        raise CheckpointError(f"{path}: checkpoint of model {found!r}, but the model is {expected_model!r}")
    return checkpoint


install()
