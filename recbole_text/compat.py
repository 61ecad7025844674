"""RecBole 1.2.1 on today's libraries: everything the stack needs, in one place, imported before RecBole.

What it handles (measured in ``shared/reference/stack.md``):

* NumPy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_``, which RecBole's ``Config`` reads;
  the aliases are restored here, before any RecBole code runs.
* pandas 3 silently corrupts RecBole's ``token_seq`` fields; :func:`install` refuses to run on it.
* torch ≥ 2.6 loads with ``weights_only=True``; RecBole's checkpoints pickle its ``Config`` object and its
  dataset caches use :mod:`pickle`. This package never unpickles: checkpoints are ``state_dict`` + a plain
  config dict (:func:`save_checkpoint` / :func:`load_checkpoint`), and :func:`refuse_pickle_caches` turns
  off RecBole's pickled dataset/dataloader caches.
* RecBole's evaluator: its ``Collector`` crashes on every metric that needs training-data statistics
  (ItemCoverage, AveragePopularity, GiniIndex, TailPercentage: ``'int' object has no attribute 'cpu'``,
  RecBole issues #2131, #2191), and ItemCoverage, GiniIndex, ShannonEntropy and TailPercentage deviate from
  their own definitions; :func:`patch_recbole_evaluator` fixes both (see there). Value metrics (AUC, MAE,
  RMSE, LogLoss) cannot apply to next-item ranking; :func:`metrics_error` says so in one sentence.
* Library warnings every run printed (RecBole's pandas chained assignments, torch's ``torch.cuda.amp.GradScaler``
  deprecation, NumPy's ``__array_wrap__`` deprecation through RecBole's ``Interaction.sort``) are silenced one
  by one in :data:`KNOWN_WARNINGS`; every other warning still shows.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
}
# RecBole's metrics (MRR, MAP, NDCG, GAUC) use ``np.float`` and ``np.bool``, which only its
# ``Config.compatibility_settings`` defines, when a Config is built; defined here too, so RecBole's evaluator
# also runs without a Config. (NumPy 2 has ``np.bool`` again.)
_METRIC_NUMPY_ALIASES = {"float": np.float64, "bool": np.bool_}
# RecBole's settings that would make it pickle.load a file.
PICKLE_SETTINGS = ("dataset_save_path", "dataloaders_save_path")
CHECKPOINT_FORMAT = "recbole_text/checkpoint-v1"


class PickleRefusedError(ValueError):
    """A setting that would make RecBole unpickle a file."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely (wrong format or another model's)."""


def install() -> None:
    """Patch the library gaps; idempotent and cheap, run on ``import recbole_text.compat``."""
    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"pandas {pd.__version__} is installed; RecBole 1.2.1 corrupts token_seq fields on pandas 3. "
            "Install 'pandas>=2.2,<3'."
        )
    for name, value in {**_NUMPY_ALIASES, **_METRIC_NUMPY_ALIASES}.items():
        if name not in vars(np):  # not hasattr: NumPy's module __getattr__ warns about some removed names
            setattr(np, name, value)
    silence_known_warnings()
    patch_recbole_evaluator()


# ------------------------------------------------------------------------------------------------- warnings
# (category, message regex, module regex) of each library warning a normal run printed. The message is matched
# from its start, the module is the one the warning is attributed to (the caller of the deprecated API).
KNOWN_WARNINGS = (
    # RecBole's Dataset._fill_nan (and _load_feat) call ``df[col].fillna(..., inplace=True)``. On pandas 2.x
    # without Copy-on-Write the fill still reaches the frame (pandas 3, where it would not, is refused above;
    # with Copy-on-Write on pandas raises a ChainedAssignmentError warning instead, which is not silenced).
    (FutureWarning, r"A value is trying to be set on a copy of a DataFrame or Series through chained assignment",
     r"recbole\.data\.dataset\.dataset\Z"),
    # RecBole's Trainer._train_epoch builds ``torch.cuda.amp.GradScaler(enabled=...)`` every epoch; torch >= 2.4
    # deprecates the alias of ``torch.amp.GradScaler("cuda")``, which behaves the same.
    (FutureWarning, r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated",
     r"recbole\.trainer\.trainer\Z"),
    # RecBole's Interaction.sort calls ``np.argsort`` on a torch tensor; NumPy 2 warns that torch's
    # ``Tensor.__array_wrap__`` has the old signature (a DeprecationWarning: shown by pytest and ``-X dev``).
    (DeprecationWarning, r"__array_wrap__ must accept context and return_scalar arguments",
     r"numpy\._core\.fromnumeric\Z"),
    # RecBole's pre-split (benchmark_filename) path measures token_seq lengths with ``Series.agg(len)``; pandas
    # 2.x still does it element-wise (pandas 3, where it would not, is refused above).
    (FutureWarning, r"using <built-in function len> in Series\.agg cannot aggregate",
     r"recbole\.data\.dataset\.(dataset|sequential_dataset)\Z"),
)


def silence_known_warnings() -> None:
    """Ignore exactly the :data:`KNOWN_WARNINGS` (category + message + module); idempotent.

    The filters go to the end of the filter list, so any filter set before (``-W``, ``PYTHONWARNINGS``) or
    after (``warnings.filterwarnings``) takes precedence: ``python -W default run_recbole_text.py`` shows them.
    """
    for category, message, module in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module, append=True)


# -------------------------------------------------------------------------------------- RecBole's evaluator
# Metrics that need the training data's statistics, which Trainer.fit hands to Collector.data_collect.
_TRAIN_STATISTICS = ("data.num_items", "data.num_users", "data.count_items", "data.count_users")
# What one evaluation collects (dropped after each get_data_struct, as RecBole does).
_PER_EVALUATION = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")
_ORIGINALS: dict[str, object] = {}  # RecBole's own functions, before patch_recbole_evaluator replaced them


def _collector_data_collect(self, train_data):
    """``Collector.data_collect`` where the catalogue is the real items: ids ``1 .. n-1``.

    RecBole's ``dataset.num(item)`` counts the padding id 0, which full-sort ranking scores ``-inf`` and no
    metric can recommend; ``data.num_items`` (ItemCoverage's and GiniIndex's ``|I|``) leaves it out, and
    ``data.count_items`` lists every catalogue item, 0 for one no training row has as its target (RecBole's
    Counter omits those, so TailPercentage never counted the least popular items as long-tail). An item's
    popularity is, as in RecBole, how many training rows have it as their target: sequential training data
    holds every training interaction but each user's first as a target.
    """
    dataset = train_data.dataset
    item_field, user_field = self.config["ITEM_ID_FIELD"], self.config["USER_ID_FIELD"]
    num_items = dataset.num(item_field)
    if self.register.need("data.num_items"):
        self.data_struct.set("data.num_items", num_items - 1)
    if self.register.need("data.num_users"):
        self.data_struct.set("data.num_users", dataset.num(user_field))
    if self.register.need("data.count_items"):
        counts = Counter(dict.fromkeys(range(1, num_items), 0))
        counts.update({int(item): count for item, count in dataset.item_counter.items()})
        self.data_struct.set("data.count_items", counts)
    if self.register.need("data.count_users"):
        self.data_struct.set("data.count_users", dataset.user_counter)


def _collector_get_data_struct(self):
    """``Collector.get_data_struct`` that moves only tensors to the CPU.

    RecBole calls ``.cpu()`` on everything collected, including the int ``data.num_items`` and the Counter
    ``data.count_items`` that ``data_collect`` stores: every metric needing them crashed. The returned struct
    holds this evaluation's tensors and a copy of the training statistics, which stay for the next evaluation.
    """
    missing = [key for key in _TRAIN_STATISTICS if self.register.need(key) and key not in self.data_struct]
    if missing:
        from recbole.evaluator.register import metric_information

        needing = sorted(m for m in self.register.metrics if set(metric_information[m]) & set(missing))
        raise RuntimeError(f"metrics {', '.join(needing)} need training-data statistics ({', '.join(missing)}): "
                           "call trainer.eval_collector.data_collect(train_data) before trainer.evaluate() "
                           "(Trainer.fit does)")
    from recbole.evaluator.collector import DataStruct

    returned = DataStruct()
    for key, value in list(self.data_struct._data_dict.items()):
        if key in _PER_EVALUATION:
            returned.set(key, value.cpu() if hasattr(value, "cpu") else value)
            del self.data_struct[key]
        else:
            returned.set(key, copy.deepcopy(value))
    return returned


def _shannon_entropy(self, item_matrix):
    """``-sum_i p(i) log p(i)``, ``p(i)`` the share of item ``i`` among all recommendations of the top-k lists.

    RecBole 1.2.1 divides this sum by the number of distinct recommended items (its docstring's formula does not;
    RecBole pull request #2165).
    """
    _, counts = np.unique(item_matrix, return_counts=True)
    shares = counts / item_matrix.size
    return float(-(shares * np.log(shares)).sum())


def _tail_indicator(self, item_matrix, count_items):
    """TailPercentage's 0/1 matrix: which recommended items are long-tail; RecBole's rule, vectorised.

    ``tail_ratio`` > 1: items with at most that many training interactions; in (0, 1]: that fraction of the
    catalogue, least popular first (ties by item id), at least one item. RecBole tests each recommendation
    against a Python list of the tail items: 1.3 s per 1,000 users x 50 with 530 tail items (14 s for 11k users
    at every validation).
    """
    if self.tail > 1:
        tail = [item for item, count in count_items.items() if count <= self.tail]
    else:
        ranked = sorted(count_items.items(), key=lambda pair: (pair[1], pair[0]))
        tail = [item for item, _ in ranked[:max(int(len(ranked) * self.tail), 1)]]
    return np.isin(item_matrix, np.asarray(tail, dtype=np.int64)).astype(item_matrix.dtype)


def _popularity(self, item_matrix, item_count):
    """AveragePopularity's matrix of the training count of each recommended item; RecBole's, vectorised.

    RecBole looks every recommendation up in a dict in a Python loop (0.2 s per evaluation for 11k users x 50),
    which each benchmark validation would pay; a count array indexed by item id gives the same matrix.
    """
    size = max([int(item_matrix.max(initial=0))] + [int(item) for item in item_count]) + 1
    counts = np.zeros(size, dtype=item_matrix.dtype)
    for item, count in item_count.items():
        counts[int(item)] = count
    return counts[item_matrix]


def patch_recbole_evaluator() -> None:
    """Install the fixed evaluator methods above on RecBole's classes; idempotent.

    ``Collector.get_data_struct`` (the crash), ``Collector.data_collect`` (the catalogue without the padding
    id, zero-count items listed), ``ShannonEntropy.get_entropy`` (the plain entropy), and
    ``TailPercentage.get_tail`` and ``AveragePopularity.get_pop`` (same values, vectorised). RecBole's own
    functions stay in ``_ORIGINALS``.
    """
    from recbole.evaluator import collector, metrics

    for owner, name, fixed in (
        (collector.Collector, "data_collect", _collector_data_collect),
        (collector.Collector, "get_data_struct", _collector_get_data_struct),
        (metrics.ShannonEntropy, "get_entropy", _shannon_entropy),
        (metrics.TailPercentage, "get_tail", _tail_indicator),
        (metrics.AveragePopularity, "get_pop", _popularity),
    ):
        current = owner.__dict__[name]
        if current is not fixed:
            _ORIGINALS.setdefault(f"{owner.__name__}.{name}", current)
            setattr(owner, name, fixed)


def metrics_error(final_config: dict) -> str | None:
    """One sentence on why the configured ``metrics`` cannot run, or None if they can.

    RecBole's ranking metrics (Recall, MRR, NDCG, Hit, MAP, Precision, GAUC, ItemCoverage, AveragePopularity,
    GiniIndex, ShannonEntropy, TailPercentage) all work on full-sort and sampled ranking; its value metrics
    (AUC, MAE, RMSE, LogLoss) need ``eval_args.mode: labeled`` and a label field, which sequential (next-item)
    data never has: RecBole raises ``NotImplementedError: Full sort evaluation do not match value-based
    metrics!`` from inside Config, or ``KeyError: 'label'`` in the first evaluation of a labelled run.
    Meant for ``Config`` subclasses to call on ``final_config_dict`` before RecBole checks the metrics.
    """
    from recbole.evaluator.register import metric_types, metrics_dict
    from recbole.utils import EvaluatorType, ModelType

    metrics = final_config.get("metrics") or []
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    ranking = ", ".join(sorted(metrics_dict[name].__name__ for name, kind in metric_types.items()
                               if kind == EvaluatorType.RANKING))
    unknown = [str(m) for m in metrics if str(m).lower() not in metric_types]
    if unknown:
        return f"unknown metric(s) {', '.join(unknown)}; RecBole's ranking metrics are {ranking}"
    value = [str(m) for m in metrics if metric_types[str(m).lower()] == EvaluatorType.VALUE]
    if not value:
        return None
    modes = ((final_config.get("eval_args") or {}).get("mode")) or "full"
    modes = set(modes.values()) if isinstance(modes, dict) else {modes}
    sequential = final_config.get("MODEL_TYPE") == ModelType.SEQUENTIAL  # labelled mode ends in KeyError 'label'
    if modes == {"labeled"} and len(value) == len(metrics) and not sequential:
        return None  # RecBole's labelled evaluation (context-aware models with a label field)
    if len(value) > 1:
        what, score, they = f"metrics {', '.join(value)} are value metrics", "score", "they"
    else:
        what, score, they = f"metric {value[0]} is a value metric", "scores", "it"
    return (f"{what}, which {score} labelled (user, item, label) pairs: next-item evaluation has none (every "
            f"evaluation row is the user's one positive), so {they} cannot apply to ranking; use ranking metrics "
            f"({ranking})")


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
