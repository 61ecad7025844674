"""Tests of recbole_text.config: merge order, no sys.argv, absolute paths, CUDA_VISIBLE_DEVICES and presets.

Building a RecBole ``Config`` needs no dataset on disk, so every test uses a dataset name that does not exist.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import recbole_text.config as config_module
from recbole_text.cli import parse_value
from recbole_text.config import TextConfig, package_config_files

DATASET = "tinycfg"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Keep each test's CUDA_VISIBLE_DEVICES and working directory from leaking (the config sets the variable)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "placeholder")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.chdir(tmp_path)


def write_yaml(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def properties(tmp_path, monkeypatch) -> Path:
    """A properties folder with overall < model < dataset layers, each overriding the keys of the layer below."""
    root = tmp_path / "props"
    write_yaml(
        root / "overall.yaml",
        "layer_a: overall\nlayer_b: overall\nlayer_c: overall\nlayer_d: overall\nlayer_e: overall\n"
        "epochs: 7\n"
        "train_batch_size: 111\n"  # RecBole's own default is 2048
        "n_layers: 5\n"  # RecBole's SASRec.yaml says 2
        "load_col: {inter: [user_id, item_id, timestamp]}\n"
        "train_neg_sample_args: ~\n",  # SASRec's CE loss needs it off, as in the real overall.yaml
    )
    write_yaml(
        root / "model" / "SASRec.yaml",
        "layer_b: model\nlayer_c: model\nlayer_d: model\nlayer_e: model\nhidden_size: 24\n",
    )
    write_yaml(
        root / "dataset" / f"{DATASET}.yaml",
        "layer_c: dataset\nlayer_d: dataset\nlayer_e: dataset\n",
    )
    write_yaml(root / "model" / "GRU4Rec.yaml", "layer_b: other-model\n")
    write_yaml(root / "dataset" / "other.yaml", "layer_c: other-dataset\n")
    monkeypatch.setattr(config_module, "PROPERTIES", root)
    return root


# ---------------------------------------------------------------- merge order

def test_package_config_files_order(properties):
    assert package_config_files("SASRec", DATASET) == [
        str(properties / "overall.yaml"),
        str(properties / "model" / "SASRec.yaml"),
        str(properties / "dataset" / f"{DATASET}.yaml"),
    ]
    assert package_config_files("BPR", "absent") == [str(properties / "overall.yaml")]


def test_merge_order(properties, tmp_path):
    first = write_yaml(tmp_path / "user1.yaml", "layer_d: file1\nlayer_e: file1\nlayer_f: file1\n")
    second = write_yaml(tmp_path / "user2.yaml", "layer_f: file2\n")
    config = TextConfig(
        "SASRec", DATASET, config_file_list=[first, second], config_dict={"layer_e": "dict", "layer_g": "dict"}
    )
    assert config["layer_a"] == "overall"
    assert config["layer_b"] == "model"
    assert config["layer_c"] == "dataset"
    assert config["layer_d"] == "file1"
    assert config["layer_e"] == "dict"
    assert config["layer_f"] == "file2"  # later config files win over earlier ones
    assert config["layer_g"] == "dict"
    # the package's layers sit above RecBole's own defaults (including RecBole's model yaml)
    assert config["epochs"] == 7
    assert config["train_batch_size"] == 111
    assert config["n_layers"] == 5
    assert config["hidden_size"] == 24
    # RecBole defaults nobody overrides are still there
    assert config["n_heads"] == 2
    assert config["model"] == "SASRec" and config["dataset"] == DATASET


def test_model_yaml_follows_the_model_class_name(properties):
    config = TextConfig("sasrec", DATASET)  # lower-case name resolves to class SASRec → model/SASRec.yaml
    assert config["model"] == "SASRec"
    assert config["layer_b"] == "model"
    assert config["hidden_size"] == 24


def test_sys_argv_is_ignored(properties, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run_recbole_text.py", "--epochs=99", "--layer_a=cmd"])
    config = TextConfig("SASRec", DATASET)
    assert config["epochs"] != 99
    assert config["epochs"] == 7
    assert config["layer_a"] == "overall"


def test_config_dict_values_are_not_evaluated(properties):
    config = TextConfig("SASRec", DATASET, config_dict={"layer_a": "[1, 2]", "layer_b": "__import__('os')"})
    assert config["layer_a"] == "[1, 2]"  # RecBole would eval() this into a list
    assert config["layer_b"] == "__import__('os')"


# ---------------------------------------------------------------- paths

def test_paths_become_absolute(properties, tmp_path):
    config = TextConfig("SASRec", DATASET, config_dict={"data_path": "rel/data", "checkpoint_dir": "ckpt"})
    cwd = os.getcwd()
    assert os.path.isabs(config["data_path"]) and os.path.isabs(config["checkpoint_dir"])
    assert config["data_path"] == os.path.join(cwd, "rel", "data", DATASET)
    assert Path(config["data_path"]).name == DATASET
    assert config["checkpoint_dir"] == os.path.join(cwd, "ckpt")


def test_absolute_data_path_kept(properties, tmp_path):
    config = TextConfig("SASRec", DATASET, config_dict={"data_path": str(tmp_path / "abs")})
    assert config["data_path"] == str(tmp_path / "abs" / DATASET)


# ---------------------------------------------------------------- parse_value

@pytest.mark.parametrize(
    "text, expected",
    [
        ("1e-3", 0.001),
        ("2.5", 2.5),
        ("10", 10),
        ("[10,50]", [10, 50]),
        ("True", True),
        ("false", False),
        ("abc", "abc"),
        ("{inter: [a, b]}", {"inter": ["a", "b"]}),
        ("~", None),
        ("'quoted: text'", "quoted: text"),
    ],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_bad_yaml_stays_text():
    assert parse_value("[unclosed") == "[unclosed"
    assert parse_value("__import__('os').system('x')") == "__import__('os').system('x')"


# ---------------------------------------------------------------- device

def test_existing_cuda_visible_devices_kept(properties, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = TextConfig("SASRec", DATASET, config_dict={"gpu_id": 0})
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert config["device"] == torch.device("cpu")
    assert config["use_gpu"] is False
    assert config["gpu_id"] == "0"
    assert config["single_spec"] is True and config["local_rank"] == 0


def test_cuda_visible_devices_set_from_gpu_id_when_absent(properties, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    config = TextConfig("SASRec", DATASET, config_dict={"gpu_id": [1, 2]})
    assert config["gpu_id"] == "1,2"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1,2"
    assert config["device"] == torch.device("cpu")


def test_integer_gpu_id_zero_is_a_gpu(properties, monkeypatch):
    """``--gpu_id=0`` parses to the int 0, which must select GPU 0, not 'no GPU id'."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = TextConfig("SASRec", DATASET, config_dict={"gpu_id": parse_value("0")})
    assert config["gpu_id"] == "0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_device_is_cpu_without_cuda(properties, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = TextConfig("SASRec", DATASET, config_dict={"use_gpu": True})
    assert config["device"].type == "cpu"
    assert config["use_gpu"] is False


# ---------------------------------------------------------------- refusals and missing files

@pytest.mark.parametrize("key", ["dataset_save_path", "dataloaders_save_path"])
def test_pickle_cache_setting_refused(properties, key):
    with pytest.raises(ValueError, match=key):
        TextConfig("SASRec", DATASET, config_dict={key: "saved/cache.pth"})


@pytest.mark.parametrize("settings, message", [
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0 must be at least 1"),
    ({"gradient_accumulation_steps": 2, "enable_scaler": True}, "does not work with enable_scaler"),
    ({"max_steps": 0}, "max_steps=0 must be a whole number of batches, at least 1"),
    ({"max_steps": 2.5}, "max_steps=2.5 must be a whole number"),
    ({"train_budget_s": 0}, "train_budget_s=0 must be a number of seconds above 0"),
    ({"time_budget_s": "1h"}, "time_budget_s='1h' must be a number of seconds"),
])
def test_training_limits_are_checked_when_the_config_is_built(properties, settings, message):
    from recbole_text.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        TextConfig("SASRec", DATASET, config_dict=settings)


def test_pickle_writers_switched_off(properties):
    config = TextConfig("SASRec", DATASET, config_dict={"save_dataset": True, "save_dataloaders": True})
    assert config["save_dataset"] is False
    assert config["save_dataloaders"] is False


def test_missing_config_file(properties, tmp_path):
    missing = str(tmp_path / "no_such.yaml")
    with pytest.raises(FileNotFoundError) as info:
        TextConfig("SASRec", DATASET, config_file_list=[missing])
    assert missing in str(info.value)


# ---------------------------------------------------------------- pre-split presets

def test_benchmark_filename_loads_history_and_aliases_it(properties):
    config = TextConfig(
        "SASRec", DATASET, config_dict={"benchmark_filename": ["train", "valid", "test"]}
    )
    assert config["load_col"]["inter"] == ["user_id", "item_id", "timestamp", "item_id_list"]
    assert "item_id_list" in config["alias_of_item_id"]


def test_benchmark_filename_keeps_existing_aliases_without_duplicates(properties):
    config = TextConfig(
        "SASRec",
        DATASET,
        config_dict={
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
            "alias_of_item_id": ["other_items"],
        },
    )
    assert config["load_col"]["inter"] == ["user_id", "item_id_list", "item_id"]
    assert config["alias_of_item_id"] == ["other_items", "item_id_list"]


def test_no_benchmark_filename_no_history(properties):
    config = TextConfig("SASRec", DATASET)
    assert "item_id_list" not in config["load_col"]["inter"]
    assert "item_id_list" not in (config["alias_of_item_id"] or [])


def test_real_overall_yaml_builds():
    """The repository's own properties/overall.yaml is valid for SASRec."""
    config = TextConfig("SASRec", DATASET, config_dict={"epochs": 2})
    assert config["epochs"] == 2
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert config["data_path"].endswith(os.sep + DATASET)


@pytest.mark.parametrize("model, overrides", [("BPR", {}), ("SASRec", {"loss_type": "BPR"})])
def test_pairwise_models_get_recbole_negative_sampling(model, overrides):
    """overall.yaml turns the sampler off for CE; a pairwise model would then fail with KeyError 'neg_item_id'."""
    config = TextConfig(model, DATASET, config_dict=overrides)
    assert config["train_neg_sample_args"]["distribution"] == "uniform"
    assert config["train_neg_sample_args"]["sample_num"] == 1


def test_explicit_pairwise_sampling_is_kept():
    config = TextConfig("BPR", DATASET, config_dict={"train_neg_sample_args": {"distribution": "popularity",
                                                                                "sample_num": 3}})
    assert config["train_neg_sample_args"]["distribution"] == "popularity"
    assert config["train_neg_sample_args"]["sample_num"] == 3


def test_recformer_profiles_cpu_by_default_and_the_papers_on_request():
    from recbole_text.config import ConfigError, TextConfig

    cpu = TextConfig("Recformer", "Scientific")
    assert (cpu["train_strategy"], cpu["group_by_length"], cpu["attention_dropout"]) == ("prefix", True, 0.0)
    assert cpu["max_token_num"] == 128 and cpu["train_budget_s"] == 3300 and cpu["plm_name"] is None
    paper = TextConfig("Recformer", "Scientific", config_dict={"profile": "paper"})
    assert paper["plm_name"] == "allenai/longformer-base-4096" and paper["max_token_num"] == 1024
    assert (paper["train_strategy"], paper["group_by_length"], paper["attention_dropout"]) == ("rss", False, None)
    assert paper["train_budget_s"] is None and paper["gradient_accumulation_steps"] == 8
    overridden = TextConfig("Recformer", "Scientific", config_dict={"profile": "paper", "max_token_num": 512})
    assert overridden["max_token_num"] == 512  # --key=value still wins over the profile
    with pytest.raises(ConfigError, match="profile='gpu': Recformer has the profiles paper"):
        TextConfig("Recformer", "Scientific", config_dict={"profile": "gpu"})
