"""The sweep driver: prepares the sweep once (dataset built, paths absolute), runs Ray Tune, writes the results."""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

from recbole_text.compat import plain
from recbole_text.config import ConfigError
from recbole_text.ray_env import DEFAULT_EXPERIMENT_DIR
from recbole_text.tune.report import write_results
from recbole_text.tune.search_space import load_search_space, metric_and_mode, num_trials, searched, to_param_space
from recbole_text.tune.trial import train_trial

SPEC_FILE = "sweep.json"
EVENTS_FILE = "trial_events.json"


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


def prepare_sweep(model, dataset, search_space, config_file_list=None, config_dict=None, *, num_samples=1,
                  cpus_per_trial=1.0, gpus_per_trial=0.0, scheduler="asha", grace_period=1, reduction_factor=3,
                  max_failures=2, include_default=False, max_concurrent_trials=None) -> dict:
    """Everything a sweep needs, with absolute paths, as plain data (saved as ``sweep.json``).

    Builds the dataset if it is an embedded one that is missing, so trials find it ready.
    """
    from recbole_text.job import prepare_driver

    space = load_search_space(search_space)
    config, files, overrides = prepare_driver(model, dataset, config_file_list, config_dict)  # dataset built once
    if not config["eval_step"] or config["eval_step"] < 1:
        raise ConfigError("a sweep needs validation after epochs (eval_step >= 1) to report to the scheduler")
    metric, mode = metric_and_mode(config)
    unknown = [n for n in space if n not in config.final_config_dict]
    if unknown:
        logging.getLogger(__name__).warning(f"the search space sets {unknown}, which no config layer defines")
    shadowed = sorted(set(searched(space)) & set(config_dict or {}))
    if shadowed:
        logging.getLogger(__name__).warning(f"{shadowed} are searched: the search space decides them, not --key=value")
    overrides["valid_metric_bigger"] = mode == "max"
    default = {n: plain(config[n]) for n in searched(space)
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
        "max_epochs": trial_epochs(config),
        "sessions": [],
    }


def trial_epochs(config) -> int:
    """Epochs of a whole trial: the first stage's and those of the model's ``next_stages`` (Recformer's stage 2)."""
    from recbole_text.registry import get_model

    stages = getattr(get_model(config["model"]), "next_stages", lambda c: [])(config)
    return int(config["epochs"]) + sum(int(settings.get("epochs") or 0) for _, settings in stages)


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
        from recbole_text.tune import callbacks as tune_callbacks

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
