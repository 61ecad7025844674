"""RecBole ``Config`` with this package's YAML layered in and explicit overrides instead of ``sys.argv``.

Merge order (later wins): RecBole's own defaults < ``recbole_text/properties/overall.yaml`` <
``properties/model/<M>.yaml`` < ``properties/dataset/<D>.yaml`` < user ``config_files`` < ``config_dict`` (the
CLI's ``--key=value``). The YAML ships inside the package (package data, as RecBole-GNN ships its own), so a
wheel install resolves the same config from any working directory.

Every enumerated setting is checked once, here: the package-wide ones in :data:`SETTING_CHOICES`, a model's own
in its class attribute ``setting_choices``, and ``train_strategy`` against the model's ``train_strategies``.
A wrong value is one :class:`ConfigError` naming the setting, the value and the allowed values.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from recbole_text import compat  # noqa: F401  (NumPy aliases before RecBole's Config runs)
from recbole.config import Config
from recbole.utils import InputType

PROPERTIES = Path(__file__).resolve().parent / "properties"


class ConfigError(ValueError):
    """A setting that cannot work (reported to CLI users as one line)."""


# Enumerated settings every model reads (a model adds its own through its ``setting_choices`` attribute).
SETTING_CHOICES = {
    "train_strategy": ("prefix", "sequence", "rss", "sampled_prefix"),
    "train_windows": ("all", "last"),
    "rss_history": ("full", "recent"),
    "lr_scheduler": ("constant", "linear"),
    "amp_dtype": ("bf16", "fp16"),
    "plm_pooling": ("cls", "mean"),  # item text embeddings (recbole_text.text)
    "plm_dtype": ("auto", "bf16", "fp32"),
}
PREFIX_ONLY = ("prefix",)  # what RecBole's own models train on


def is_share(value) -> bool:
    """A number in [0, 1) (a bool is not one)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0.0 <= value < 1.0


def is_weight(value) -> bool:
    """A finite number ≥ 0 (a bool is not one)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def check_settings(final: dict, model_class) -> None:
    """Raise :class:`ConfigError` for an enumerated setting outside its allowed values, or a training strategy
    the model does not support."""
    choices = {**SETTING_CHOICES, **getattr(model_class, "setting_choices", {})}
    for name, allowed in choices.items():
        value = final.get(name)
        if value is not None and value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(str, allowed))}")
    prior = final.get("popularity_prior")
    if prior is not None and prior != "auto" and not is_weight(prior):
        raise ConfigError(f"popularity_prior={prior!r} must be a number ≥ 0 or auto")
    train_prior = final.get("train_popularity_prior")
    if train_prior is not None and not is_weight(train_prior):
        raise ConfigError(f"train_popularity_prior={train_prior!r} must be a number ≥ 0")
    held_out = final.get("cold_start_items") or 0.0
    if not is_share(held_out):
        raise ConfigError(f"cold_start_items={held_out!r} must be a share of the catalogue in [0, 1)")
    dropout = final.get("attention_dropout")  # Recformer's; ~ = the backbone's
    if dropout is not None and not is_share(dropout):
        raise ConfigError(f"attention_dropout={dropout!r} must be a number in [0, 1)")
    accumulation = final.get("gradient_accumulation_steps")
    accumulation = 1 if accumulation is None else int(accumulation)  # 0 is refused, not read as "unset"
    if accumulation < 1:
        raise ConfigError(f"gradient_accumulation_steps={accumulation} must be at least 1")
    if accumulation > 1 and final.get("enable_scaler"):
        raise ConfigError("gradient_accumulation_steps > 1 does not work with enable_scaler (fp16's GradScaler "
                          "unscales at every batch): use bf16 (enable_amp without enable_scaler)")
    if final.get("group_by_length") not in (None, True, False):
        raise ConfigError(f"group_by_length={final['group_by_length']!r} must be True or False")
    max_steps = final.get("max_steps")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ConfigError(f"max_steps={max_steps!r} must be a whole number of batches, at least 1 (~ = no limit)")
    for name in ("time_budget_s", "train_budget_s"):
        budget = final.get(name)
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
            raise ConfigError(f"{name}={budget!r} must be a number of seconds above 0 (~ = no budget)")
    strategy = final.get("train_strategy") or "prefix"
    supported = getattr(model_class, "train_strategies", PREFIX_ONLY)
    if strategy not in supported:
        raise ConfigError(f"train_strategy={strategy!r}: {model_class.__name__} trains with "
                          f"{', '.join(supported)} (per-position and RSS targets need one of this package's "
                          "sequence models, e.g. SeqSASRec, gSASRec, SeqGRU4Rec)")


def is_package_model(model_class) -> bool:
    return type(model_class) is type and model_class.__module__.startswith("recbole_text.")


def package_config_files(model_name: str, dataset: str) -> list[str]:
    candidates = [
        PROPERTIES / "overall.yaml",
        PROPERTIES / "model" / f"{model_name}.yaml",
        PROPERTIES / "dataset" / f"{dataset}.yaml",
    ]
    return [str(p) for p in candidates if p.is_file()]


RECBOLE_DEFAULT_NEGATIVE_SAMPLING = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                                     "candidate_num": 0}


class TextConfig(Config):
    """RecBole's ``Config`` that (1) reads overrides from ``config_dict`` only, never from ``sys.argv``,
    (2) makes ``data_path``/``checkpoint_dir`` absolute (Ray trials run elsewhere), (3) leaves an existing
    ``CUDA_VISIBLE_DEVICES`` alone (Ray hands GPUs to trials through it), (4) refuses pickled caches."""

    def __init__(self, model, dataset, config_file_list=None, config_dict=None):
        from recbole_text.registry import get_model

        model_class = get_model(model) if isinstance(model, str) else model
        own_yaml = PROPERTIES / "model" / f"{model_class.__name__}.yaml"
        if is_package_model(model_class) and not own_yaml.is_file():
            raise ConfigError(f"{own_yaml}: the defaults of {model_class.__name__} are missing (a broken install?)")
        files = package_config_files(model_class.__name__, dataset)
        profile = (config_dict or {}).get("profile")
        if profile:  # --profile=paper: properties/model/<Model>-paper.yaml, above the model's own defaults
            path = PROPERTIES / "model" / f"{model_class.__name__}-{profile}.yaml"
            if not path.is_file():
                known = sorted(p.stem.split("-", 1)[1] for p in PROPERTIES.glob(f"model/{model_class.__name__}-*.yaml"))
                raise ConfigError(f"profile={profile!r}: {model_class.__name__} has "
                                  f"{'the profiles ' + ', '.join(known) if known else 'no profiles'}")
            files.insert(files.index(str(own_yaml)) + 1, str(path))
        files += list(config_file_list or [])
        for path in files:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: config file not found")
        config_dict = compat.refuse_pickle_caches(dict(config_dict or {}))
        super().__init__(model=model_class, dataset=dataset, config_file_list=files, config_dict=config_dict)
        for key in ("data_path", "checkpoint_dir"):
            self.final_config_dict[key] = os.path.abspath(self.final_config_dict[key])
        if self.final_config_dict.get("benchmark_filename"):
            self._presplit_presets()
        check_settings(self.final_config_dict, model_class)
        # every layer above RecBole's own defaults, as given: TextConfig(model, dataset, config_dict=settings)
        # rebuilds this config (checkpoints carry it, so a trained model can be rebuilt for inference)
        self.settings = {**self.file_config_dict, **self.variable_config_dict,
                         "data_path": os.path.dirname(self.final_config_dict["data_path"]),  # ends in /<dataset>
                         "checkpoint_dir": self.final_config_dict["checkpoint_dir"]}

    def _set_default_parameters(self):
        problem = compat.metrics_error(self.final_config_dict)
        if problem:
            raise ConfigError(problem)
        super()._set_default_parameters()
        final = self.final_config_dict
        # overall.yaml turns RecBole's negative sampler off (softmax-CE models refuse it), but pairwise models
        # (BPR, or SASRec with loss_type: BPR) cannot train without a negative per row: give them RecBole's default.
        if final.get("train_neg_sample_args") is None and final.get("MODEL_INPUT_TYPE") == InputType.PAIRWISE:
            final["train_neg_sample_args"] = dict(RECBOLE_DEFAULT_NEGATIVE_SAMPLING)

    def _presplit_presets(self):
        """Pre-split files carry the history as ``item_id_list``: load it and share item_id's vocabulary."""
        final = self.final_config_dict
        history = final["ITEM_ID_FIELD"] + final["LIST_SUFFIX"]
        inter_cols = (final.get("load_col") or {}).get("inter")
        if inter_cols is not None and history not in inter_cols:
            final["load_col"]["inter"] = list(inter_cols) + [history]
        aliases = list(final.get("alias_of_item_id") or [])
        if history not in aliases:
            final["alias_of_item_id"] = aliases + [history]

    def _load_cmd_line(self):
        return {}

    def _load_variable_config_dict(self, config_dict):
        # RecBole eval()s string values here; ours are already parsed (see recbole_text.cli.parse_value), so keep them as given.
        return dict(config_dict) if config_dict else {}

    def _init_device(self):
        if "local_rank" in self.final_config_dict:  # RecBole's own multi-GPU launcher
            return super()._init_device()
        import torch

        gpu_id = self.final_config_dict.get("gpu_id")
        if isinstance(gpu_id, (tuple, list)):
            gpu_id = ",".join(map(str, gpu_id))
        else:
            gpu_id = "" if gpu_id is None else str(gpu_id)  # not `gpu_id or ""`: the int 0 (--gpu_id=0) is a GPU
        self.final_config_dict["gpu_id"] = gpu_id
        if gpu_id and "CUDA_VISIBLE_DEVICES" not in os.environ:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
        use_gpu = bool(self.final_config_dict.get("use_gpu", True)) and torch.cuda.is_available()
        self.final_config_dict["use_gpu"] = use_gpu
        self.final_config_dict["single_spec"] = True
        self.final_config_dict["local_rank"] = 0
        self.final_config_dict["device"] = torch.device("cuda" if use_gpu else "cpu")
