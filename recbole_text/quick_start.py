"""``run()``: one training + evaluation job through RecBole's trainer and evaluator (never
``recbole.quick_start``, which imports Ray and unpickles caches)."""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

from recbole_text import compat  # noqa: F401

from recbole_text.data.atomic import atomic_write
from recbole_text.job import build_job

DEFAULT_MODEL = "gSASRec"
DEFAULT_DATASET = "ml-100k-text"


def run(
    model: str = DEFAULT_MODEL,
    dataset: str = DEFAULT_DATASET,
    config_file_list=None,
    config_dict=None,
    saved: bool = True,
    resume: str | None = None,
    result_file: str | None = None,
    epoch_callbacks=(),
) -> dict:
    """Train ``model`` on ``dataset``, evaluate the best checkpoint on the test split, return the metrics.

    ``config_dict`` holds ``--key=value`` overrides. ``resume`` continues from a checkpoint of the same model.
    ``result_file`` (``.json``) also receives the run record and a training-curve plot beside it.
    """
    started = perf_counter()
    job = build_job(model, dataset, config_file_list, config_dict)
    config, trainer = job.config, job.trainer
    trainer.sitting_started = started
    trainer.epoch_callbacks.extend(epoch_callbacks)

    show = config["show_progress"]
    prior = None  # popularity_prior: auto → {"beta": β, "valid": {β: valid metric}}
    if config["epochs"] == 0:  # evaluate the weights as built, e.g. a --pretrained model zero-shot
        if resume:
            trainer.resume_checkpoint(resume)
        trainer.eval_collector.data_collect(job.train_data)  # what fit() would have collected (popularity, …)
        best_valid_result = trainer.evaluate(job.valid_data, load_best_model=False, show_progress=show)
        best_valid_score = best_valid_result[config["valid_metric"].lower()]
        prior = choose_prior(job, own_checkpoint=None)  # the resumed file is the user's: not rewritten
        test_result, by_target = evaluate_test(job, show)
    else:
        best_valid_score, best_valid_result = train_stages(job, saved, resume, show)
        if config["eval_step"] <= 0:  # train only: the checkpoint is the last epoch's, nothing is evaluated
            logging.getLogger().info("eval_step ≤ 0: no validation and no test (train only)")
            test_result, by_target = {}, None
        else:
            if saved:
                trainer.load_best_model()
            prior = choose_prior(job, own_checkpoint=trainer.saved_model_file if saved else None)
            test_result, by_target = evaluate_test(job, show)
        trainer.discard_resume_point()
    result = summarize(config, trainer, best_valid_score, best_valid_result, test_result, perf_counter() - started)
    if by_target is not None:
        result["test_by_target"] = by_target
    if prior:
        result["popularity_prior"] = prior
    if config["calibration_report"]:
        result["calibration"] = calibration_rows(config, job.model, job.test_data)
    logging.getLogger().info(f"test result: {result['test_result']}")
    if result_file:
        write_run_record(result, result_file)
    return result


def choose_prior(job, own_checkpoint: str | None) -> dict | None:
    """``popularity_prior: auto``: β chosen on validation for the weights about to be tested, as the run record
    keeps it (``{"beta": β, "valid": {β: valid metric}}``; None without auto). The run's own checkpoint then records β as its setting, so that the
    recommend API scores as the test did."""
    if job.config["popularity_prior"] != "auto":
        return None
    found = job.trainer.choose_popularity_prior(job.valid_data)
    if own_checkpoint and os.path.isfile(own_checkpoint):
        from recbole_text.compat import load_checkpoint, save_checkpoint

        checkpoint = load_checkpoint(own_checkpoint)
        beta = job.model.popularity_prior
        checkpoint["settings"] = {**(checkpoint.get("settings") or {}), "popularity_prior": beta}
        checkpoint["config"]["popularity_prior"] = beta
        save_checkpoint(own_checkpoint, checkpoint.pop("model"),
                        {key: value for key, value in checkpoint.items() if key != "format"})
    return {"beta": job.model.popularity_prior, "valid": found}


def evaluate_test(job, show: bool) -> tuple[dict, dict | None]:
    """Test metrics of the model as it is, and for sequential full-sort evaluation the seen / unseen target
    groups from the same pass (``None`` otherwise)."""
    if not is_sequential_full_sort(job.config, job.test_data):
        return job.trainer.evaluate(job.test_data, load_best_model=False, show_progress=show), None
    from recbole_text.evaluation.target_groups import seen_in_training

    return job.trainer.evaluate_with_target_groups(job.test_data, seen_in_training(job.train_data))


def train_stages(job, saved: bool, resume: str | None, show: bool, callback_fn=None, resume_points: bool = True):
    """Fit the first stage, then the model's ``next_stages`` (e.g. Recformer's stage 2), each from the best
    weights so far (``callback_fn`` as RecBole's ``fit`` takes it). With ``saved`` and ``resume_points``, every
    validation writes a resume point; ``resume`` continues from a resume point in the stage it was written in
    (stages it finished are skipped), or from a best-model checkpoint in the first stage."""
    from recbole_text.compat import CheckpointError

    config, trainer = job.config, job.trainer
    stages = [(trainer.stage, {}), *getattr(job.model, "next_stages", lambda c: [])(config)]
    trainer.stage_epochs = {name: settings.get("epochs", config["epochs"]) for name, settings in stages}
    checkpoint = trainer.read_checkpoint(resume) if resume else None
    point = (checkpoint or {}).get("resume_point")
    first = 0
    if point is not None:
        names = [name for name, _ in stages]
        if point["stage"] not in names:
            raise CheckpointError(f"{resume}: a resume point of stage {point['stage']!r}, not one of this run's "
                                  f"stages ({', '.join(names)})")
        first = names.index(point["stage"])
    if saved and resume_points:
        stem, ext = os.path.splitext(trainer.saved_model_file)
        trainer.resume_point_file = resume if point is not None else f"{stem}-resume{ext}"
        logging.getLogger().info(f"resume point after every validation: {trainer.resume_point_file} "
                                 f"(continue an interrupted run with --resume={trainer.resume_point_file})")
    best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
    for index, (stage, settings) in enumerate(stages[first:], start=first):
        if index > 0:
            if trainer.planned_epochs.get(stage) == 0:
                logging.getLogger().info(f"train_budget_s: no time left for stage {stage!r}, skipped")
                continue
            trainer.begin_stage(stage, **settings)
        if resume and index == first:
            trainer.resume_checkpoint(resume, checkpoint)
            if point is not None and point["stage_finished"]:
                best_valid_score, best_valid_result = trainer.best_valid_score, trainer.best_valid_result
                continue
        best_valid_score, best_valid_result = trainer.fit(job.train_data, job.valid_data, saved=saved,
                                                          show_progress=show, callback_fn=callback_fn)
    return best_valid_score, best_valid_result


def is_sequential_full_sort(config, eval_data) -> bool:
    from recbole.data.dataloader import FullSortEvalDataLoader
    from recbole.utils import ModelType

    return config["MODEL_TYPE"] == ModelType.SEQUENTIAL and isinstance(eval_data, FullSortEvalDataLoader)


def calibration_rows(config, model, test_data) -> list[dict]:
    """σ(score) vs observed hit rate by rank bucket on the test split (best checkpoint already loaded)."""
    from recbole_text.evaluation.calibration import calibration_table, collect_full_scores

    scores, targets = collect_full_scores(model, test_data, config["device"], config["exclude_seen_items"])
    return calibration_table(scores, targets)


def summarize(config, trainer, best_valid_score, best_valid_result, test_result, wall_s) -> dict:
    history = trainer.history
    validated = [r for r in history if r["valid_score"] is not None]
    best = max(validated, key=lambda r: r["valid_score"] * (1 if trainer.valid_metric_bigger else -1), default=None)
    train_seconds = [r["train_s"] for r in history]
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "valid_metric": config["valid_metric"],
        "train_strategy": config["train_strategy"],
        "loss_type": config["loss_type"],
        "gbce_t": config["gbce_t"] if config["loss_type"] == "gBCE" else None,
        "best_valid_score": float(best_valid_score) if math.isfinite(float(best_valid_score)) else None,
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in (test_result or {}).items()},
        "epochs_run": len(history),
        "stopped_by": trainer.stopped_by,
        "planned_epochs": trainer.planned_epochs or None,  # train_budget_s's plan, stage → epochs
        "best_epoch": best["epoch"] if best else None,
        "time_to_best_s": best["elapsed_s"] if best else None,
        "seconds_per_epoch": sum(train_seconds) / len(train_seconds) if train_seconds else None,
        "valid_seconds_per_epoch": sum(r["valid_s"] for r in history) / len(history) if history else None,
        "wall_time_s": wall_s,  # this sitting
        "sittings_s": [*trainer.earlier_sittings_s, wall_s],  # every sitting of a resumed run, this one last
        "total_wall_s": sum(trainer.earlier_sittings_s) + wall_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checkpoint": trainer.saved_model_file,
        "history": history,
        "machine": machine_description(),
        "command": " ".join(sys.argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def machine_description() -> str:
    """The one line every run record and benchmark report gives of its machine: CPU model, cores, OS, Python,
    torch (threads), transformers, and the device, with whether the CPU has native bf16 (figures of AMX and
    AVX2-only CPUs differ ~2x wherever bf16 autocast is on)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from recbole_text.text.encoder import bf16_native

    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    try:
        transformers = version("transformers")  # the version without importing the package
    except PackageNotFoundError:
        transformers = "not installed"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU only, {'native' if bf16_native('cpu') else 'no native'} bf16"
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers}, {device}")


def write_run_record(result: dict, path) -> None:
    """The run as JSON, its training curve (loss and validation metric per epoch) as ``<path>.png`` and, with
    ``popularity_prior: auto``, the validation metric of every β tried as ``<path>-prior.png``."""
    path = Path(path)
    with atomic_write(path) as f:
        json.dump(result, f, indent=2)
    if result["history"]:
        plot_training_curve(result, path.with_suffix(".png"))
    if result.get("popularity_prior"):
        plot_prior(result, path.with_name(path.stem + "-prior.png"))
    if result.get("calibration"):
        from recbole_text.evaluation.calibration import write_calibration_report

        label = f"{result['model']} ({result['dataset']})"
        write_calibration_report({label: result["calibration"]}, path.with_name(path.stem + "-calibration"))


def plot_training_curve(result: dict, png_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in result["history"]]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    loss_ax.plot(epochs, [r["train_loss"] for r in result["history"]], marker="o")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title=f"{result['model']} on {result['dataset']}")
    validated = [r for r in result["history"] if r["valid_score"] is not None]
    metric_ax.plot([r["epoch"] for r in validated], [r["valid_score"] for r in validated], marker="o", color="tab:green")
    metric_ax.set(xlabel="epoch", ylabel=f"valid {result['valid_metric']}", title="validation")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def plot_prior(result: dict, png_path) -> None:
    """Validation metric against the popularity prior's β (``popularity_prior: auto``), the chosen β marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prior = result["popularity_prior"]
    betas = sorted(float(beta) for beta in prior["valid"])
    values = {float(beta): value for beta, value in prior["valid"].items()}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(betas, [values[beta] for beta in betas], marker="o")
    ax.axvline(prior["beta"], color="tab:green", linestyle="--", label=f"chosen β = {prior['beta']}")
    ax.set(xlabel="β of β·log(1 + n_i)", ylabel=f"valid {result['valid_metric']}",
           title=f"{result['model']} on {result['dataset']}: popularity prior")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
