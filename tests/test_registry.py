"""Tests of recbole_text.registry: model lookup (package first, RecBole second, any case) and safe trainers."""
from __future__ import annotations

import importlib.util

import pytest
from recbole.model.general_recommender.bpr import BPR
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec
from recbole.trainer import Trainer
from recbole.utils import ModelType

from recbole_text import registry
from recbole_text.registry import UnknownModelError, get_model, get_trainer, recbole_model_modules
from recbole_text.trainer import SafeCheckpointMixin, with_safe_checkpoints


class SASRec:
    """Stands in for a package model that shadows RecBole's SASRec."""

    type = ModelType.SEQUENTIAL


class CustomTrainer(Trainer):
    pass


class ShadowWithTrainer:
    """A package model that names its own trainer class."""

    type = ModelType.SEQUENTIAL
    trainer_class = CustomTrainer


# ---------------------------------------------------------------- get_model

def test_recbole_model_by_exact_name():
    assert get_model("SASRec") is RecBoleSASRec
    assert get_model("SASRec").__module__ == "recbole.model.sequential_recommender.sasrec"


@pytest.mark.parametrize(
    "name, expected",
    [("sasrec", RecBoleSASRec), ("SASREC", RecBoleSASRec), ("bert4rec", BERT4Rec), ("Bert4Rec", BERT4Rec),
     ("bpr", BPR)],
)
def test_recbole_model_any_case(name, expected):
    assert get_model(name) is expected


@pytest.mark.parametrize("name", ["NoSuchModel", "sasrec2", "x", "no.such"])
def test_unknown_model(name):
    with pytest.raises(UnknownModelError) as info:
        get_model(name)
    assert repr(name) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.skipif(importlib.util.find_spec("lightgbm") is not None, reason="lightgbm is installed")
def test_model_with_missing_dependency_says_so():
    with pytest.raises(UnknownModelError) as info:
        get_model("LightGBM")
    assert "lightgbm" in str(info.value)
    assert "not installed" in str(info.value)


def test_package_models_win_over_recbole(monkeypatch):
    monkeypatch.setattr(registry, "package_models", lambda: {"SASRec": __name__})
    assert get_model("SASRec") is SASRec
    assert get_model("sasrec") is SASRec
    assert get_model("BERT4Rec") is BERT4Rec  # others still come from RecBole


def test_package_models_listed_in_unknown_error(monkeypatch):
    monkeypatch.setattr(registry, "package_models", lambda: {"ShadowWithTrainer": __name__})
    with pytest.raises(UnknownModelError, match="ShadowWithTrainer"):
        get_model("NoSuchModel")


def test_package_models_is_a_dict_of_importable_modules():
    found = registry.package_models()
    assert isinstance(found, dict)
    for name, module in found.items():
        assert module.startswith(registry.PACKAGE_MODEL_MODULE + ".")
        assert get_model(name).__name__ == name


# ---------------------------------------------------------------- trainers

def test_get_trainer_is_safe_recbole_trainer():
    trainer_class = get_trainer(ModelType.SEQUENTIAL, "SASRec")
    assert issubclass(trainer_class, Trainer)
    assert issubclass(trainer_class, SafeCheckpointMixin)
    # the mixin's methods come first in the MRO, so they override RecBole's
    assert trainer_class._save_checkpoint is SafeCheckpointMixin._save_checkpoint
    assert trainer_class.evaluate is SafeCheckpointMixin.evaluate
    assert trainer_class.__name__ == "SafeTrainer"
    assert get_trainer(ModelType.SEQUENTIAL, "sasrec") is trainer_class


def test_get_trainer_uses_model_trainer_class(monkeypatch):
    monkeypatch.setattr(registry, "package_models", lambda: {"ShadowWithTrainer": __name__})
    trainer_class = get_trainer(ModelType.SEQUENTIAL, "ShadowWithTrainer")
    assert issubclass(trainer_class, CustomTrainer)
    assert issubclass(trainer_class, SafeCheckpointMixin)
    assert trainer_class is with_safe_checkpoints(CustomTrainer)


def test_with_safe_checkpoints_is_cached():
    first = with_safe_checkpoints(Trainer)
    second = with_safe_checkpoints(Trainer)
    assert first is second
    assert first is not Trainer
    assert first.__mro__[1:3] == (SafeCheckpointMixin, Trainer)


def test_with_safe_checkpoints_does_not_rewrap():
    safe = with_safe_checkpoints(Trainer)
    assert with_safe_checkpoints(safe) is safe

    class AlreadySafe(SafeCheckpointMixin, CustomTrainer):
        pass

    assert with_safe_checkpoints(AlreadySafe) is AlreadySafe


def test_with_safe_checkpoints_distinct_per_class():
    assert with_safe_checkpoints(CustomTrainer) is not with_safe_checkpoints(Trainer)
    assert not issubclass(with_safe_checkpoints(Trainer), CustomTrainer)


# ---------------------------------------------------------------- recbole_model_modules

def test_recbole_model_modules():
    modules = recbole_model_modules()
    for name in ("sasrec", "bert4rec", "gru4rec", "bpr"):
        assert name in modules
    assert modules == sorted(modules)
    assert not any(name.startswith("_") for name in modules)
