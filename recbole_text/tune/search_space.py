"""Search spaces: YAML (or a mapping) → validated dimensions → Ray Tune ``param_space``."""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from recbole_text.config import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "quniform", "grid")


def load_search_space(source) -> dict:
    """YAML file (or an already-loaded mapping) → ``{setting: {"kind": ..., "args": ...}}``, validated."""
    if isinstance(source, dict):
        raw, where = source, "search space"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: search space file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        where = str(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a mapping of settings, e.g. 'learning_rate: {{loguniform: [1e-4, 1e-2]}}'")
    space = {str(name): _dimension(str(name), spec, where) for name, spec in raw.items()}
    if not any(d["kind"] != "value" for d in space.values()):
        raise ConfigError(f"{where}: nothing to search (every setting is a fixed value)")
    return space


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: {value!r} is not a number")
    return value


def _dimension(name: str, spec, where: str) -> dict:
    what = f"{where}: {name}"
    if not isinstance(spec, dict):
        return {"kind": "value", "args": spec}
    if len(spec) != 1:
        raise ConfigError(f"{what}: give exactly one of {', '.join(DISTRIBUTIONS)} (or 'value'), got {sorted(spec)}")
    kind, args = next(iter(spec.items()))
    if kind == "value":
        return {"kind": "value", "args": args}
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{what}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)} "
                          "(or a plain value)")
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{what}: {kind} needs a non-empty list of values")
        return {"kind": kind, "args": args}
    expected = 3 if kind == "quniform" else 2
    if not isinstance(args, list) or len(args) != expected:
        shape = "[low, high, q]" if kind == "quniform" else "[low, high]"
        raise ConfigError(f"{what}: {kind} needs {shape}")
    low, high = (_number(v, what) for v in args[:2])
    if not low < high:
        raise ConfigError(f"{what}: {kind} needs low < high, got {args}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{what}: loguniform needs low > 0, got {low}")
    if kind == "quniform" and not _number(args[2], what) > 0:
        raise ConfigError(f"{what}: quniform needs q > 0, got {args[2]}")
    return {"kind": kind, "args": list(args)}


def searched(space: dict) -> list[str]:
    """The settings that vary between trials."""
    return [name for name, d in space.items() if d["kind"] != "value"]


def to_param_space(space: dict) -> dict:
    """Parsed search space → Ray Tune ``param_space``."""
    from ray import tune

    out = {}
    for name, d in space.items():
        kind, args = d["kind"], d["args"]
        if kind == "value":
            out[name] = args
        elif kind == "choice":
            out[name] = tune.choice(args)
        elif kind == "grid":
            out[name] = tune.grid_search(args)
        elif kind == "uniform":
            out[name] = tune.uniform(*args)
        elif kind == "loguniform":
            out[name] = tune.loguniform(*args)
        elif all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            out[name] = tune.qrandint(*args)  # quniform over integers: batch sizes, dimensions
        else:
            out[name] = tune.quniform(*args)
    return out


def num_trials(space: dict, num_samples: int) -> int:
    grid = [len(d["args"]) for d in space.values() if d["kind"] == "grid"]
    return num_samples * math.prod(grid)


def metric_and_mode(config) -> tuple[str, str]:
    """Tune metric name (``valid_ndcg@10``) and mode from ``valid_metric`` / ``valid_metric_bigger``."""
    from recbole.evaluator.register import smaller_metrics

    valid_metric = str(config["valid_metric"]).lower()
    smaller = valid_metric.split("@")[0] in smaller_metrics or config["valid_metric_bigger"] is False
    return f"valid_{valid_metric}", "min" if smaller else "max"


# --- one trial ---------------------------------------------------------------------------------------------
