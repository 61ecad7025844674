"""Names → classes. This package's models first, then every RecBole built-in (as RecBole-GNN does)."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import lru_cache

from recbole_text import compat  # noqa: F401
from recbole.utils import ModelType
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

PACKAGE_MODEL_MODULE = "recbole_text.model.sequential_recommender"
RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


class UnknownModelError(ValueError):
    pass


def _module_names(package: str) -> list[str]:
    """Submodules of ``package`` without importing it (RecBole's exlib package imports lightgbm/xgboost)."""
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec else None
    return [m.name for m in pkgutil.iter_modules(locations or []) if not m.name.startswith("_")]


def _class_in(module, name: str):
    for attr in dir(module):
        if attr.lower() == name.lower() and isinstance(getattr(module, attr), type):
            return getattr(module, attr)
    return None


@lru_cache(maxsize=None)
def package_models() -> dict[str, str]:
    """``{ModelName: module}`` of this package's models (one model per module)."""
    found = {}
    for module_name in _module_names(PACKAGE_MODEL_MODULE):
        module = importlib.import_module(f"{PACKAGE_MODEL_MODULE}.{module_name}")
        cls = _class_in(module, module_name)
        if cls is not None:
            found[cls.__name__] = module.__name__
    return found


def recbole_model_modules() -> list[str]:
    names = []
    for package in RECBOLE_MODEL_PACKAGES:
        names += _module_names(f"recbole.model.{package}")
    return sorted(names)


def get_model(name: str):
    """Model class for ``name``: this package's first, then RecBole's (case-insensitive)."""
    for model_name, module_name in package_models().items():
        if model_name.lower() == name.lower():
            return getattr(importlib.import_module(module_name), model_name)
    try:
        return recbole_get_model(name)
    except (ValueError, AttributeError, ImportError):  # ImportError: exlib models need lightgbm/xgboost
        pass
    for package in RECBOLE_MODEL_PACKAGES:  # RecBole needs the exact class spelling; accept any case
        if name.lower() in _module_names(f"recbole.model.{package}"):
            try:
                module = importlib.import_module(f"recbole.model.{package}.{name.lower()}")
            except ImportError as e:
                raise UnknownModelError(f"model {name!r} needs a package that is not installed: {e}") from None
            cls = _class_in(module, name)
            if cls is not None:
                return cls
    raise UnknownModelError(
        f"unknown model {name!r}; this package has {', '.join(sorted(package_models())) or 'none yet'}, "
        f"RecBole has {len(recbole_model_modules())} more (e.g. SASRec, BERT4Rec, GRU4Rec, BPR)"
    )


def get_base_trainer(model_type: ModelType, model_name: str) -> type:
    """The model's own ``trainer_class`` if it has one, else RecBole's trainer for it (nothing mixed in)."""
    model_class = get_model(model_name)
    custom = getattr(model_class, "trainer_class", None)
    return custom if custom is not None else recbole_get_trainer(model_type, model_class.__name__)


def get_trainer(model_type: ModelType, model_name: str):
    """RecBole's trainer for the model, with safe checkpoints and epoch records mixed in."""
    from recbole_text.trainer import with_safe_checkpoints

    return with_safe_checkpoints(get_base_trainer(model_type, model_name))
