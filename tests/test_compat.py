"""Tests of recbole_text.compat: NumPy aliases, the pandas guard, pickle-cache refusal, safe checkpoints and the
library warnings it silences (its RecBole evaluator patch: tests/test_metrics.py)."""
from __future__ import annotations

import enum
import json
import os
import pickle
import warnings

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


# ---------------------------------------------------------------- known library warnings

PANDAS_CHAINED = ("A value is trying to be set on a copy of a DataFrame or Series through chained assignment using "
                  "an inplace method.\nThe behavior will change in pandas 3.0.")
GRAD_SCALER = ("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use `torch.amp.GradScaler('cuda', args...)` "
               "instead.")
ARRAY_WRAP = ("__array_wrap__ must accept context and return_scalar arguments (positionally) in the future. "
              "(Deprecated NumPy 2.0)")


def shown(message, category, module) -> bool:
    """Whether a warning attributed to ``module`` gets through compat's filters (everything else shown)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        compat.silence_known_warnings()
        warnings.simplefilter("always", append=True)  # after compat's filters, as Python's defaults are
        warnings.warn_explicit(message, category, "library.py", 1, module=module)
    return len(caught) == 1


@pytest.mark.parametrize("message, category, module", [
    (PANDAS_CHAINED, FutureWarning, "recbole.data.dataset.dataset"),
    (GRAD_SCALER, FutureWarning, "recbole.trainer.trainer"),
    (ARRAY_WRAP, DeprecationWarning, "numpy._core.fromnumeric"),
])
def test_each_known_library_warning_is_silenced(message, category, module):
    assert not shown(message, category, module)


@pytest.mark.parametrize("message, category, module", [
    (PANDAS_CHAINED, FutureWarning, "recbole_text.data.text_dataset"),  # our own code is not excused
    (PANDAS_CHAINED, FutureWarning, "recbole.data.dataset.dataset_v2"),  # the module name is matched whole
    (PANDAS_CHAINED, pd.errors.ChainedAssignmentError, "recbole.data.dataset.dataset"),  # Copy-on-Write: no fill
    ("A value is trying to be set on a copy of a slice from a DataFrame", FutureWarning,
     "recbole.data.dataset.dataset"),
    (GRAD_SCALER, FutureWarning, "__main__"),
    (GRAD_SCALER, DeprecationWarning, "recbole.trainer.trainer"),
    ("`torch.cuda.amp.autocast(args...)` is deprecated.", FutureWarning, "recbole.trainer.trainer"),
    (ARRAY_WRAP, DeprecationWarning, "recbole.data.interaction"),
    ("some other NumPy deprecation", DeprecationWarning, "numpy._core.fromnumeric"),
])
def test_other_warnings_still_show(message, category, module):
    assert shown(message, category, module)


def test_silencing_is_idempotent_and_yields_to_filters_set_later():
    with warnings.catch_warnings():
        compat.silence_known_warnings()
        count = len(warnings.filters)
        compat.silence_known_warnings()
        compat.install()
        assert len(warnings.filters) == count
        warnings.simplefilter("error")  # e.g. a developer hunting warnings
        with pytest.raises(FutureWarning):
            warnings.warn_explicit(GRAD_SCALER, FutureWarning, "trainer.py", 235, module="recbole.trainer.trainer")


def test_a_short_cli_run_prints_no_library_warnings(tiny_data, in_tmp_cwd):
    """The real run: without -W nothing is printed; with -W default (filters before compat's win) the same run
    shows the library warnings compat silences, so the first check is not vacuous."""
    import re
    import subprocess
    import sys

    from conftest import FAST_ARGS, REPO

    command = [sys.executable, str(REPO / "run_recbole_text.py"), "--model=SASRec", "--dataset=tiny",
               f"--data_path={tiny_data}", *FAST_ARGS]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    warning_line = re.compile(r"\b(\w*Warning): (.*)")

    def run(*python_options):
        done = subprocess.run([command[0], *python_options, *command[1:]], capture_output=True, text=True,
                              timeout=600, cwd=in_tmp_cwd, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return warning_line.findall(done.stdout + done.stderr)

    assert run() == []
    loud = {(category, message[:30]) for category, message in run("-W", "default")}
    assert loud == {("FutureWarning", PANDAS_CHAINED[:30]), ("FutureWarning", GRAD_SCALER[:30]),
                    ("DeprecationWarning", ARRAY_WRAP[:30])}
