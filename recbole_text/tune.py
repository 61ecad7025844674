"""Ray Tune sweeps through RecBole's trainer and evaluator.

``python run_recbole_text.py --tune --model=gSASRec --dataset=Scientific --search_space=properties/tune/gSASRec.yaml``

* **Search space** (YAML, one setting per line)::

      learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      hidden_dropout_prob: {uniform: [0.1, 0.5]}
      num_negatives: {choice: [64, 128, 256]}
      hidden_size: {quniform: [32, 128, 32]}     # integers when all three are integers
      n_layers: {grid: [1, 2]}                   # every value, times --num_samples
      MAX_ITEM_LIST_LENGTH: 50                   # a plain value is fixed ({value: ...} for a mapping)

* **Trials** run :func:`train_trial`: this package's config, dataset and loaders, the model from the registry
  and RecBole's trainer (with safe checkpoints) and evaluator. After every validation the trial calls
  ``tune.report`` with the validation metrics (``valid_ndcg@10``, …) and a checkpoint (latest training state +
  best weights), so the scheduler (ASHA by default, over ``epochs_done``) can stop bad trials early, a crashed
  trial is retried from its last epoch (``max_failures``) and ``--resume`` continues an interrupted sweep.
* **Metric and mode** come from ``valid_metric`` (``max``; ``min`` for RecBole's smaller-is-better metrics
  such as RMSE or LogLoss, or with ``valid_metric_bigger: False``).
* **Resources**: each trial asks Ray for ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs; Ray hands GPUs
  to trials through ``CUDA_VISIBLE_DEVICES``, which nothing here overwrites (``gpu_id`` is cleared).
* **Paths**: the dataset is built once by the driver before any trial starts (``ensure_dataset``);
  ``data_path`` and config files are made absolute, because trials run in their own working directories.
* **Results** (in the experiment folder ``<experiment_dir>/<name>``): ``trials.csv`` and ``trials.md`` (every
  trial with status, retries, error, epochs run and why it stopped), ``best.json`` (best config, its
  validation and test metrics: its best checkpoint evaluated on the test split), ``learning_curves.png`` and
  ``metric_vs_hyperparameters.png``.

Ray is imported only inside the functions that need it.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

import yaml

from recbole_text.config import ConfigError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "quniform", "grid")
SPEC_FILE = "sweep.json"
EVENTS_FILE = "trial_events.json"
DEFAULT_EXPERIMENT_DIR = "ray_results"
BEST_WEIGHTS, LATEST_STATE, HISTORY = "best.pth", "latest.pth", "history.json"


# --- search space ------------------------------------------------------------------------------------------
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
def trial_overrides(spec: dict, params: dict, checkpoint_dir: str) -> dict:
    """The ``config_dict`` of one trial: the sweep's settings, the trial's sample, trial-local checkpoints.

    ``gpu_id`` is cleared so the config never sets ``CUDA_VISIBLE_DEVICES``: Ray has already set it to the
    GPUs it gave this trial (and a CPU-only trial does not use a GPU).
    """
    return {
        **spec["overrides"],
        **params,
        "checkpoint_dir": checkpoint_dir,
        "show_progress": False,
        "gpu_id": "",
        "use_gpu": spec["gpus_per_trial"] > 0,
    }


def epoch_metrics(trainer, record: dict) -> dict:
    """What a trial reports after each validation (RecBole's early-stopping state already updated)."""
    return {
        "epoch": record["epoch"],
        "epochs_done": record["epoch"] + 1,
        "train_loss": record.get("train_loss"),
        "valid_score": record["valid_score"],
        **{f"valid_{k}": v for k, v in record["valid_result"].items()},
        "best_valid_score": float(trainer.best_valid_score),
        "early_stopped": bool(trainer.cur_step > trainer.stopping_step),
        "max_epochs": int(trainer.epochs),
        "train_s": record.get("train_s"),
        "valid_s": record.get("valid_s"),
    }


class _EpochReporter:
    """RecBole's ``callback_fn``: runs after each validation *and* after the trainer's bookkeeping (best
    score, patience, best checkpoint), so the reported checkpoint is a consistent point to resume from."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.start_epoch = int(trainer.start_epoch)  # > 0 when this attempt continues from a checkpoint

    def __call__(self, epoch_idx, valid_score):
        from ray import tune

        trainer = self.trainer
        metrics = {**epoch_metrics(trainer, trainer.history[-1]), "start_epoch": self.start_epoch}
        with tempfile.TemporaryDirectory() as tmp:
            trainer._save_checkpoint(epoch_idx, verbose=False, saved_model_file=os.path.join(tmp, LATEST_STATE))
            if os.path.isfile(trainer.saved_model_file):
                shutil.copyfile(trainer.saved_model_file, os.path.join(tmp, BEST_WEIGHTS))
            Path(tmp, HISTORY).write_text(json.dumps(trainer.history))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _restore(trainer, folder: Path, best_file: str) -> None:
    trainer.resume_checkpoint(folder / LATEST_STATE)  # weights, optimizer, epoch, patience, best score
    trainer.saved_model_file = best_file
    if (folder / BEST_WEIGHTS).is_file():
        shutil.copyfile(folder / BEST_WEIGHTS, best_file)
    if (folder / HISTORY).is_file():
        trainer.history = json.loads((folder / HISTORY).read_text())


def train_trial(params: dict, spec: dict) -> None:
    """Ray Tune trainable: one configuration through RecBole's trainer and evaluator, reporting every epoch."""
    import torch
    from ray import tune
    from recbole.utils import init_logger, init_seed

    from recbole_text.config import TextConfig
    from recbole_text.data import create_dataset, data_preparation
    from recbole_text.registry import get_model, get_trainer

    torch.set_num_threads(max(1, int(spec["cpus_per_trial"])))
    checkpoint_dir = os.path.abspath("checkpoints")  # the trial's own working directory
    config = TextConfig(spec["model"], spec["dataset"], spec["config_files"],
                        trial_overrides(spec, params, checkpoint_dir))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    best_file = os.path.join(checkpoint_dir, BEST_WEIGHTS)
    trainer.saved_model_file = best_file
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a retry after a crash, or a resumed sweep: continue from the last epoch
        with checkpoint.as_directory() as folder:
            _restore(trainer, Path(folder), best_file)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=_EpochReporter(trainer))


# --- the sweep ---------------------------------------------------------------------------------------------
def make_scheduler(scheduler, max_epochs: int, grace_period: int, reduction_factor: float):
    """``"asha"`` (default), ``"fifo"`` or a ready Tune scheduler object."""
    if not isinstance(scheduler, str):
        return scheduler
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if scheduler == "fifo":
        return FIFOScheduler()
    if scheduler != "asha":
        raise ConfigError(f"unknown scheduler {scheduler!r}; use asha or fifo")
    return ASHAScheduler(time_attr="epochs_done", max_t=max_epochs, grace_period=max(1, min(grace_period, max_epochs)),
                         reduction_factor=reduction_factor)


def _last_error_line(trial_path: Path) -> str | None:
    """The exception line of the latest failure in Tune's ``error.txt`` (one line, for tables)."""
    text = _read(trial_path / "error.txt")
    if not text:
        return None
    block = text.rsplit("Failure # ", 1)[-1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:300]
    return lines[-1][:300] if lines else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _absolute_files(files) -> list[str]:
    out = []
    for f in files or []:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"{f}: config file not found")
        out.append(os.path.abspath(f))
    return out


def prepare_sweep(model, dataset, search_space, config_file_list=None, config_dict=None, *, num_samples=1,
                  cpus_per_trial=1.0, gpus_per_trial=0.0, scheduler="asha", grace_period=1, reduction_factor=3,
                  max_failures=2, include_default=False, max_concurrent_trials=None) -> dict:
    """Everything a sweep needs, with absolute paths, as plain data (saved as ``sweep.json``).

    Builds the dataset if it is an embedded one that is missing, so trials find it ready.
    """
    from recbole_text.quick_start import build_config, ensure_dataset

    space = load_search_space(search_space)
    files = _absolute_files(config_file_list)
    overrides = dict(config_dict or {})
    overrides["gpu_id"] = ""  # the driver leaves CUDA_VISIBLE_DEVICES to Ray as well
    config = build_config(model, dataset, files, overrides)
    ensure_dataset(config)  # once, before any trial
    if not config["eval_step"] or config["eval_step"] < 1:
        raise ConfigError("a sweep needs validation after epochs (eval_step >= 1) to report to the scheduler")
    metric, mode = metric_and_mode(config)
    unknown = [n for n in space if n not in config.final_config_dict]
    if unknown:
        logging.getLogger(__name__).warning(f"the search space sets {unknown}, which no config layer defines")
    shadowed = sorted(set(searched(space)) & set(config_dict or {}))
    if shadowed:
        logging.getLogger(__name__).warning(f"{shadowed} are searched: the search space decides them, not --key=value")
    overrides.update(
        data_path=os.path.dirname(config["data_path"]),  # RecBole's data_path ends in /<dataset>
        valid_metric_bigger=(mode == "max"),
    )
    default = {n: _plain(config[n]) for n in searched(space)
               if space[n]["kind"] != "grid" and n in config.final_config_dict}
    return {
        "model": config["model"],
        "dataset": dataset,
        "config_files": files,
        "overrides": overrides,
        "search_space": space,
        "search_space_file": None if isinstance(search_space, dict) else os.path.abspath(search_space),
        "num_samples": int(num_samples),
        "num_trials": num_trials(space, int(num_samples)),
        "cpus_per_trial": float(cpus_per_trial),
        "gpus_per_trial": float(gpus_per_trial),
        "scheduler": scheduler if isinstance(scheduler, str) else type(scheduler).__name__,
        "grace_period": int(grace_period),
        "reduction_factor": reduction_factor,
        "max_failures": int(max_failures),
        "max_concurrent_trials": max_concurrent_trials,
        "include_default": bool(include_default),
        "default_point": default,
        "search_seed": int(config["seed"]),
        "metric": metric,
        "mode": mode,
        "valid_metric": config["valid_metric"],
        "max_epochs": int(config["epochs"]),
        "sessions": [],
    }


def _plain(value):
    from recbole_text.compat import plain

    return plain(value)


def tune(model, dataset, search_space=None, config_file_list=None, config_dict=None, *, num_samples=1,
         cpus_per_trial=1.0, gpus_per_trial=0.0, ray_address=None, experiment_dir=None, name=None, resume=False,
         scheduler="asha", grace_period=1, reduction_factor=3, max_failures=2, include_default=False,
         max_concurrent_trials=None, verbose=1, trainable=None, callbacks=()) -> dict:
    """Run (or with ``resume=True`` continue) a sweep; write and return its results (see the module doc).

    ``scheduler`` may be ``"asha"``, ``"fifo"`` or a Tune scheduler object; ``trainable`` replaces
    :func:`train_trial` (it receives ``(params, spec)``); ``callbacks`` are extra Tune callbacks.
    """
    storage = Path(os.path.abspath(experiment_dir or DEFAULT_EXPERIMENT_DIR))
    name = name or f"{model}-{dataset}"
    experiment = storage / name
    spec_path = experiment / SPEC_FILE
    if resume:
        if not spec_path.is_file():
            raise ConfigError(f"nothing to resume: no sweep at {experiment} (start it without --resume)")
        spec = json.loads(spec_path.read_text())
    else:
        if experiment.exists():
            raise ConfigError(f"{experiment} already holds a sweep: add --resume to continue it, or choose another "
                              "--experiment_name (or remove the folder)")
        if search_space is None:
            raise ConfigError("a sweep needs a search space (--search_space=FILE.yaml)")
        spec = prepare_sweep(model, dataset, search_space, config_file_list, config_dict, num_samples=num_samples,
                             cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, scheduler=scheduler,
                             grace_period=grace_period, reduction_factor=reduction_factor,
                             max_failures=max_failures, include_default=include_default,
                             max_concurrent_trials=max_concurrent_trials)
        experiment.mkdir(parents=True)
        spec_path.write_text(json.dumps(spec, indent=1))

    # one checkpoint per epoch is the point (resume, retries); Tune's warning about frequent snapshots is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from recbole_text.ray_env import init_ray, shutdown_ray

    started_ray = init_ray(ray_address)  # before anything imports Ray (see ray_env)
    started = perf_counter()
    try:
        from ray import tune as ray_tune

        resources = {"cpu": spec["cpus_per_trial"], "gpu": spec["gpus_per_trial"]}
        function = ray_tune.with_resources(ray_tune.with_parameters(trainable or train_trial, spec=spec), resources)
        from recbole_text import tune_callbacks

        events_path = experiment / EVENTS_FILE
        events = json.loads(events_path.read_text()) if events_path.is_file() else {}
        tune_callbacks.EVENTS.clear()
        if resume and not ray_tune.Tuner.can_restore(str(experiment)):
            resume = False  # the sweep was prepared but Tune never started it: start it now
        if resume:
            tuner = ray_tune.Tuner.restore(str(experiment), trainable=function, resume_unfinished=True,
                                           resume_errored=True)
        else:
            tuner = ray_tune.Tuner(
                function,
                param_space=to_param_space(spec["search_space"]),
                tune_config=ray_tune.TuneConfig(
                    metric=spec["metric"],
                    mode=spec["mode"],
                    num_samples=spec["num_samples"],
                    scheduler=make_scheduler(scheduler if not isinstance(scheduler, str) else spec["scheduler"],
                                             spec["max_epochs"], spec["grace_period"], spec["reduction_factor"]),
                    search_alg=_search_alg(spec),
                    max_concurrent_trials=spec["max_concurrent_trials"],
                ),
                run_config=ray_tune.RunConfig(
                    name=name,
                    storage_path=str(storage),
                    failure_config=ray_tune.FailureConfig(max_failures=spec["max_failures"]),
                    checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[tune_callbacks.TrialEvents(), *callbacks],
                    verbose=verbose,
                ),
            )
        grid = tuner.fit()
        wall = perf_counter() - started
        spec["sessions"].append({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "wall_s": wall, "resumed": bool(resume)})
        spec_path.write_text(json.dumps(spec, indent=1))
        events.update(tune_callbacks.EVENTS)
        events_path.write_text(json.dumps(events, indent=1))
        return write_results(grid, spec, experiment, events)
    finally:
        shutdown_ray(started_ray)


def _search_alg(spec: dict):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    points = [spec["default_point"]] if spec["include_default"] and spec["default_point"] else None
    # the config's seed also seeds the sampling: the same command samples the same configurations
    return BasicVariantGenerator(points_to_evaluate=points, random_state=spec["search_seed"])


# --- results -----------------------------------------------------------------------------------------------
def _trial_rows(grid, spec: dict, events: dict) -> list[dict]:
    metric, mode = spec["metric"], spec["mode"]
    better = max if mode == "max" else min
    names = searched(spec["search_space"])
    rows = []
    for result in grid:
        path = Path(result.path)
        frame = result.metrics_dataframe
        history = []
        if frame is not None and len(frame) and metric in frame:
            keep = [c for c in ("epochs_done", metric, "train_loss", "early_stopped", "train_s", "start_epoch")
                    if c in frame]
            history = frame[keep].to_dict("records")  # every epoch trained, repeats after a resume included
        scores = [h[metric] for h in history if h.get(metric) is not None and not math.isnan(h[metric])]
        best_value = better(scores) if scores else None
        best_at = next((h["epochs_done"] for h in history if h.get(metric) == best_value), None)
        error_text = _read(path / "error.txt") or ""
        failures = error_text.count("Failure # ")
        if result.error is not None:
            status = "ERROR"
        elif events.get(path.name) == "TERMINATED" or (history and history[-1].get("early_stopped")):
            status = "TERMINATED"
        else:
            status = "INCOMPLETE"
        last = history[-1] if history else {}
        epochs_run = int(max((h["epochs_done"] for h in history), default=0))
        if status == "ERROR":
            stopped_by = "error"
        elif status == "INCOMPLETE":
            stopped_by = "not finished"
        elif last.get("early_stopped"):
            stopped_by = "early_stopping"
        elif epochs_run >= spec["max_epochs"]:
            stopped_by = "epochs"
        else:
            stopped_by = "scheduler"
        train_s = [h["train_s"] for h in history if h.get("train_s") is not None]
        rows.append({
            "trial": _trial_label(path.name),
            "trial_dir": str(path),
            "status": status,
            "stopped_by": stopped_by,
            "retries": failures if status != "ERROR" else max(0, failures - 1),
            "failures": failures,
            "epochs_run": epochs_run,
            "epochs_trained": len(history),  # more than epochs_run when a retry or resume repeated epochs
            "best_epoch": best_at,
            f"best_{metric}": best_value,
            f"last_{metric}": last.get(metric),
            **{n: (result.config or {}).get(n) for n in names},
            "s_per_epoch": sum(train_s) / len(train_s) if train_s else None,
            "error": (_last_error_line(path) or "") if failures else "",
            "history": history,
            "checkpoint": result.checkpoint,
        })
    return rows


def _trial_label(folder: str) -> str:
    """``train_trial_1a2b3_00004_4_learning_rate=...`` → ``1a2b3_00004`` (Tune's trial id)."""
    found = re.search(r"(?:^|_)([0-9a-f]{5}_[0-9]{5})(?:_|$)", folder)
    return found.group(1) if found else folder


def evaluate_best(spec: dict, params: dict, weights: str) -> dict:
    """Test metrics of one configuration's best weights (the same data, split and evaluator as the trials)."""
    from recbole.utils import init_seed

    from recbole_text.config import TextConfig
    from recbole_text.data import create_dataset, data_preparation
    from recbole_text.registry import get_model, get_trainer

    overrides = {**spec["overrides"], **params, "show_progress": False, "gpu_id": "",
                 "checkpoint_dir": os.path.dirname(weights)}
    config = TextConfig(spec["model"], spec["dataset"], spec["config_files"], overrides)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    valid = trainer.evaluate(valid_data, load_best_model=True, model_file=weights)
    test = trainer.evaluate(test_data, load_best_model=False)
    return {"valid_result": {k: float(v) for k, v in valid.items()},
            "test_result": {k: float(v) for k, v in test.items()}}


def write_results(grid, spec: dict, experiment: Path, events: dict) -> dict:
    """``trials.csv``, ``trials.md``, ``best.json`` and the plots; returns the summary."""
    metric, mode = spec["metric"], spec["mode"]
    rows = _trial_rows(grid, spec, events)
    scored = [r for r in rows if r[f"best_{metric}"] is not None]
    sign = 1 if mode == "max" else -1
    rows.sort(key=lambda r: (r[f"best_{metric}"] is None, -sign * (r[f"best_{metric}"] or 0.0)))
    best = None
    if scored:
        top = rows[0]
        params = {n: top[n] for n in searched(spec["search_space"])}
        best = {"trial": top["trial"], "config": params, f"best_{metric}": top[f"best_{metric}"],
                "best_epoch": top["best_epoch"], "epochs_run": top["epochs_run"], "trial_dir": top["trial_dir"]}
        if top["checkpoint"] is not None:
            keep = experiment / "best_checkpoint"
            with top["checkpoint"].as_directory() as folder:
                if (Path(folder) / BEST_WEIGHTS).is_file():
                    keep.mkdir(exist_ok=True)
                    shutil.copyfile(Path(folder) / BEST_WEIGHTS, keep / BEST_WEIGHTS)
            if (keep / BEST_WEIGHTS).is_file():
                best["checkpoint"] = str(keep / BEST_WEIGHTS)
                best.update(evaluate_best(spec, params, best["checkpoint"]))
    epochs_run = sum(r["epochs_trained"] for r in rows)
    budget = spec["num_trials"] * spec["max_epochs"]
    summary = {
        "model": spec["model"],
        "dataset": spec["dataset"],
        "metric": metric,
        "mode": mode,
        "scheduler": spec["scheduler"],
        "experiment": str(experiment),
        "trials": len(rows),
        "statuses": {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})},
        "epochs_run": epochs_run,
        "epochs_budgeted": budget,
        "epochs_saved_fraction": 1 - epochs_run / budget if budget else None,
        "wall_time_s": sum(s["wall_s"] for s in spec["sessions"]),
        "best": best,
        "rows": [{k: v for k, v in r.items() if k not in ("history", "checkpoint")} for r in rows],
        "search_space": spec["search_space"],
        "files": {},
    }
    files = summary["files"]
    files["csv"] = str(experiment / "trials.csv")
    _write_csv(summary["rows"], experiment / "trials.csv")
    files["best"] = str(experiment / "best.json")
    plots = write_plots(rows, spec, experiment)
    files.update(plots)
    files["markdown"] = str(experiment / "trials.md")
    (experiment / "trials.md").write_text(sweep_markdown(summary, spec, plots))
    (experiment / "best.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    summary["histories"] = {r["trial"]: r["history"] for r in rows}
    return summary


TABLE_FIXED = ("trial", "status", "stopped_by", "retries", "epochs_run", "best_epoch")


def _columns(rows: list[dict]) -> list[str]:
    if not rows:
        return list(TABLE_FIXED)
    rest = [k for k in rows[0] if k not in TABLE_FIXED and k not in ("trial_dir", "failures", "error")]
    return list(TABLE_FIXED) + rest + ["error"]


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(rows) + ["trial_dir"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value).replace("|", "\\|").replace("\n", " ")


def sweep_markdown(summary: dict, spec: dict, plots: dict) -> str:
    metric = summary["metric"]
    best = summary["best"]
    lines = [
        f"# Sweep: {summary['model']} on {summary['dataset']}",
        "",
        f"- metric: `{metric}` ({summary['mode']}), scheduler: {summary['scheduler']}"
        + (f" (max {spec['max_epochs']} epochs, grace period {spec['grace_period']}, reduction factor "
           f"{spec['reduction_factor']})" if summary["scheduler"] == "asha" else ""),
        (f"- trials: {summary['trials']} ({', '.join(f'{v} {k}' for k, v in summary['statuses'].items())}), "
         f"retries on failure: up to {spec['max_failures']}"),
        f"- epochs trained: {summary['epochs_run']} of {summary['epochs_budgeted']} budgeted "
        f"({summary['trials']} trials × {spec['max_epochs']} epochs)"
        + (f", {100 * summary['epochs_saved_fraction']:.0f}% saved" if summary["epochs_saved_fraction"] is not None
           else ""),
        f"- wall time: {summary['wall_time_s']:.0f} s over {len(spec['sessions'])} session(s)",
        f"- resources per trial: {spec['cpus_per_trial']:g} CPU, {spec['gpus_per_trial']:g} GPU",
        "",
        "## Best trial",
        "",
    ]
    if best:
        lines += [(f"- trial: `{best['trial']}`, best {metric}: {best[f'best_{metric}']:.4f} at epoch "
                   f"{best['best_epoch']} of {best['epochs_run']}"),
                  f"- config: `{json.dumps(best['config'])}`"]
        if best.get("test_result"):
            lines.append("- test (best checkpoint): " + ", ".join(f"{k} {v:.4f}" for k, v in best["test_result"].items()))
    else:
        lines.append("No trial reported a validation result.")
    columns = _columns(summary["rows"])
    lines += ["", "## All trials", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in summary["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{k}]({Path(v).name})" for k, v in plots.items()]
    return "\n".join(lines) + "\n"


def write_plots(rows: list[dict], spec: dict, experiment: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = spec["metric"]
    out = {}
    with_history = [r for r in rows if r["history"]]
    if with_history:
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, row in enumerate(with_history):
            curve = {h["epochs_done"]: h[metric] for h in row["history"]}  # a repeated epoch: its last value
            xs, ys = list(curve), list(curve.values())
            ax.plot(xs, ys, marker=".", linewidth=2.5 if i == 0 else 1, alpha=1 if i == 0 else 0.6,
                    label=f"{row['trial']} ({row['stopped_by']})")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{spec['model']} on {spec['dataset']}: learning curves")
        if len(with_history) <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        out["learning_curves"] = str(experiment / "learning_curves.png")
        fig.savefig(out["learning_curves"], dpi=100)
        plt.close(fig)
    names = searched(spec["search_space"])
    scored = [r for r in rows if r[f"best_{metric}"] is not None]
    if names and scored:
        from matplotlib.ticker import NullFormatter

        columns = min(3, len(names))
        rows_n = math.ceil(len(names) / columns)
        fig, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 3.2 * rows_n), squeeze=False)
        ys = [r[f"best_{metric}"] for r in scored]
        colors = ["tab:red" if r is scored[0] else "tab:blue" for r in scored]  # rows are sorted best first
        for ax, name in zip(axes.flat, names):
            values = [r[name] for r in scored]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                ax.scatter(values, ys, c=colors)
                if spec["search_space"][name]["kind"] == "loguniform":
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                labels = sorted({str(v) for v in values})
                ax.scatter([labels.index(str(v)) for v in values], ys, c=colors)
                ax.set_xticks(range(len(labels)), labels)
            ax.set(xlabel=name, ylabel=f"best {metric}")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"{spec['model']} on {spec['dataset']}: best {metric} per trial (red: the best trial)")
        fig.tight_layout()
        out["metric_vs_hyperparameters"] = str(experiment / "metric_vs_hyperparameters.png")
        fig.savefig(out["metric_vs_hyperparameters"], dpi=100)
        plt.close(fig)
    return out
