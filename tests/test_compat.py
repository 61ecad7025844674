"""Tests of recbole_text.compat: NumPy aliases, the pandas guard, pickle-cache refusal and safe checkpoints."""
from __future__ import annotations

import enum
import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

import recbole_text  # noqa: F401  (installs the aliases)
from recbole_text import compat
from recbole_text.compat import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint

# Filled by Payload.__reduce__'s callable if torch ever unpickled it.
EXECUTED: list[str] = []


def _record_execution(marker_path: str):
    EXECUTED.append(marker_path)
    with open(marker_path, "w") as f:
        f.write("pwned")
    return "executed"


class Payload:
    """An object whose unpickling runs code (appends to EXECUTED and creates a marker file)."""

    def __init__(self, marker_path: str):
        self.marker_path = marker_path

    def __reduce__(self):
        return (_record_execution, (self.marker_path,))


class Color(enum.Enum):
    RED = 1


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- NumPy aliases and the pandas guard

@pytest.mark.parametrize(
    "alias, expected",
    [("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)],
)
def test_numpy_aliases_restored(alias, expected):
    assert getattr(np, alias) is expected


def test_numpy_aliases_behave_like_the_types():
    assert np.array([1, 2], dtype=np.float_).dtype == np.dtype("float64")
    assert np.array([1j], dtype=np.complex_).dtype == np.dtype("complex128")
    assert isinstance(np.unicode_("x"), str)


def test_install_refuses_pandas_3(monkeypatch):
    monkeypatch.setattr(pd, "__version__", "3.0.0")
    with pytest.raises(ImportError, match="pandas") as info:
        compat.install()
    assert "3.0.0" in str(info.value)
    assert "<3" in str(info.value)


def test_install_accepts_pandas_2_and_is_idempotent(monkeypatch):
    monkeypatch.setattr(pd, "__version__", "2.3.1")
    compat.install()
    compat.install()
    assert np.float_ is np.float64


# ---------------------------------------------------------------- pickle caches

@pytest.mark.parametrize("key", ["dataset_save_path", "dataloaders_save_path"])
def test_refuse_pickle_caches_raises(key):
    with pytest.raises(ValueError, match=key):
        compat.refuse_pickle_caches({key: "saved/cache.pth"})


def test_refuse_pickle_caches_forces_writers_off():
    settings = {"save_dataset": True, "save_dataloaders": True, "epochs": 5, "dataset_save_path": None}
    result = compat.refuse_pickle_caches(settings)
    assert result["save_dataset"] is False
    assert result["save_dataloaders"] is False
    assert result["epochs"] == 5


def test_refuse_pickle_caches_adds_missing_switches():
    result = compat.refuse_pickle_caches({})
    assert result == {"save_dataset": False, "save_dataloaders": False}


# ---------------------------------------------------------------- plain()

def test_plain_enum_device_numpy_tuple():
    value = {
        "type": Color.RED,
        "device": torch.device("cpu"),
        "f64": np.float64(0.25),
        "f32": np.float32(0.5),
        "i64": np.int64(7),
        "b": np.bool_(True),
        "s": np.str_("abc"),
        "pair": (1, np.int32(2), ("x", Color.RED)),
        3: None,
    }
    result = compat.plain(value)
    assert result == {
        "type": "Color.RED",
        "device": "cpu",
        "f64": 0.25,
        "f32": 0.5,
        "i64": 7,
        "b": True,
        "s": "abc",
        "pair": [1, 2, ["x", "Color.RED"]],
        "3": None,
    }
    # plain Python types, not NumPy subclasses (weights_only=True cannot load NumPy scalars)
    assert type(result["f64"]) is float
    assert type(result["f32"]) is float
    assert type(result["i64"]) is int
    assert type(result["b"]) is bool
    assert type(result["s"]) is str
    assert type(result["pair"][1]) is int
    assert json.loads(json.dumps(result)) == result


def test_plain_keeps_classes_as_text_not_objects():
    result = compat.plain({"cls": Payload})
    assert isinstance(result["cls"], str)
    assert "Payload" in result["cls"]


def test_plain_config_reads_final_config_dict():
    class FakeConfig:
        final_config_dict = {"device": torch.device("cpu"), "topk": (10, 50)}

    assert compat.plain_config(FakeConfig()) == {"device": "cpu", "topk": [10, 50]}


# ---------------------------------------------------------------- save/load round trip

def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "sub" / "SASRec.pth"
    state_dict = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2])}
    config = {"device": torch.device("cpu"), "learning_rate": np.float64(0.001), "topk": (10, 50), "type": Color.RED}
    save_checkpoint(path, "SASRec", {"state_dict": state_dict, "config": config, "epoch": 3})

    assert listing(path.parent) == ["SASRec.pth"]  # no .tmp left behind
    checkpoint = load_checkpoint(path, expected_model="SASRec")
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert checkpoint["model"] == "SASRec"
    assert checkpoint["epoch"] == 3
    assert set(checkpoint["state_dict"]) == {"w", "b"}
    for key, tensor in state_dict.items():
        assert torch.equal(checkpoint["state_dict"][key], tensor)
    assert type(checkpoint["config"]) is dict
    assert checkpoint["config"] == {"device": "cpu", "learning_rate": 0.001, "topk": [10, 50], "type": "Color.RED"}


def test_checkpoint_expected_model_is_case_insensitive(tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(path, "SASRec", {"state_dict": {}})
    assert load_checkpoint(path, expected_model="sasrec")["model"] == "SASRec"


def test_checkpoint_overwrite_replaces_content(tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(path, "SASRec", {"epoch": 1})
    save_checkpoint(path, "SASRec", {"epoch": 2})
    assert load_checkpoint(path)["epoch"] == 2
    assert listing(tmp_path) == ["m.pth"]


def test_failing_save_leaves_no_file(tmp_path):
    path = tmp_path / "broken.pth"
    with pytest.raises(Exception):
        save_checkpoint(path, "SASRec", {"state_dict": {}, "unpicklable": lambda: None})
    assert listing(tmp_path) == []


def test_failing_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(path, "SASRec", {"epoch": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, "SASRec", {"epoch": 2, "unpicklable": lambda: None})
    assert listing(tmp_path) == ["m.pth"]
    assert load_checkpoint(path)["epoch"] == 1


# ---------------------------------------------------------------- refused checkpoints

def test_pickled_object_is_refused_and_never_executed(tmp_path):
    EXECUTED.clear()
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"format": CHECKPOINT_FORMAT, "model": "SASRec", "payload": Payload(str(marker))}, path)
    assert not marker.exists()  # saving does not run it; only unpickling would

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_model="SASRec")
    assert str(path) in str(info.value)
    assert EXECUTED == []
    assert not marker.exists()


def test_payload_really_executes_under_plain_pickle(tmp_path):
    """Guards the test above: the payload is not inert."""
    EXECUTED.clear()
    marker = tmp_path / "marker.txt"
    assert pickle.loads(pickle.dumps(Payload(str(marker)))) == "executed"
    assert EXECUTED == [str(marker)] and marker.exists()
    EXECUTED.clear()


def test_instance_of_local_class_is_refused(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save(Color.RED, path)
    with pytest.raises(CheckpointError, match="obj.pth"):
        load_checkpoint(path)


def test_checkpoint_of_other_model_is_refused(tmp_path):
    path = tmp_path / "gru.pth"
    save_checkpoint(path, "GRU4Rec", {"state_dict": {"w": torch.zeros(1)}})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_model="SASRec")
    message = str(info.value)
    assert "GRU4Rec" in message and "SASRec" in message and str(path) in message


def test_plain_dict_without_marker_is_refused(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "model": "SASRec"}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected_model="SASRec")
    assert str(path) in str(info.value)
    assert CHECKPOINT_FORMAT in str(info.value)


def test_wrong_marker_is_refused(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"format": "recbole_text/checkpoint-v0", "model": "SASRec"}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_non_dict_checkpoint_is_refused(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="tensor.pth"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    path = tmp_path / "nowhere" / "missing.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
