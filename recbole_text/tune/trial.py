"""One Ray Tune trial: a job from :func:`recbole_text.job.build_job`, trained by RecBole's trainer, reporting
validation metrics and a checkpoint after every epoch; and the re-evaluation of a sweep's best weights."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

BEST_WEIGHTS, LATEST_STATE = "best.pth", "latest.pth"


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


class _EpochReporter:
    """RecBole's ``callback_fn``: runs after each validation *and* after the trainer's bookkeeping (best
    score, patience, best checkpoint), so the reported checkpoint is a consistent point to resume from."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.start_epoch = None  # epochs trained before this attempt: > 0 when it continues from a checkpoint

    def __call__(self, epoch_idx, valid_score):
        from ray import tune

        trainer = self.trainer
        if self.start_epoch is None:
            self.start_epoch = trainer.epochs_trained - 1
        metrics = {**trainer.epoch_report(), "start_epoch": self.start_epoch}
        with tempfile.TemporaryDirectory() as tmp:
            # a resume point (weights, optimizer, schedule, patience, stage, history, random states) + the best
            trainer.save_resume_point(epoch_idx, path=os.path.join(tmp, LATEST_STATE))
            if os.path.isfile(trainer.saved_model_file):
                shutil.copyfile(trainer.saved_model_file, os.path.join(tmp, BEST_WEIGHTS))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _restore(folder: Path, checkpoint_dir: str, best_file: str) -> str:
    """Copy a Ray checkpoint's resume point and best weights into the trial's folder → the resume point."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    resume = os.path.join(checkpoint_dir, LATEST_STATE)
    shutil.copyfile(folder / LATEST_STATE, resume)
    if (folder / BEST_WEIGHTS).is_file():
        shutil.copyfile(folder / BEST_WEIGHTS, best_file)
    return resume


def train_trial(params: dict, spec: dict) -> None:
    """Ray Tune trainable: one configuration through RecBole's trainer and evaluator, reporting every epoch."""
    import torch
    from ray import tune

    from recbole_text.job import build_job

    torch.set_num_threads(max(1, int(spec["cpus_per_trial"])))
    checkpoint_dir = os.path.abspath("checkpoints")  # the trial's own working directory
    job = build_job(spec["model"], spec["dataset"], spec["config_files"],
                    trial_overrides(spec, params, checkpoint_dir))
    trainer = job.trainer
    best_file = os.path.join(checkpoint_dir, BEST_WEIGHTS)
    trainer.saved_model_file = best_file
    from recbole_text.quick_start import train_stages

    checkpoint, resume = tune.get_checkpoint(), None
    if checkpoint is not None:  # a retry after a crash, or a resumed sweep: continue from the last epoch
        with checkpoint.as_directory() as folder:
            resume = _restore(Path(folder), checkpoint_dir, best_file)
    # every stage, as run() trains them (Recformer: stage 2 after stage 1), reporting after each validation
    train_stages(job, saved=True, resume=resume, show=False, callback_fn=_EpochReporter(trainer), resume_points=False)


def evaluate_best(spec: dict, params: dict, weights: str) -> dict:
    """Validation and test metrics of one configuration's best weights (the same job as its trial). With
    ``popularity_prior: auto`` β is chosen here, on validation, for these weights (trials validate with β_t)."""
    from recbole_text.job import build_job
    from recbole_text.quick_start import choose_prior

    overrides = {**spec["overrides"], **params, "show_progress": False, "gpu_id": "",
                 "checkpoint_dir": os.path.dirname(weights)}
    job = build_job(spec["model"], spec["dataset"], spec["config_files"], overrides, log=False)
    job.trainer.eval_collector.data_collect(job.train_data)  # popularity counts of beyond-accuracy metrics
    job.trainer.load_best_model(weights)
    prior = choose_prior(job, own_checkpoint=None)  # before validating, so valid_result is at the chosen β
    valid = job.trainer.evaluate(job.valid_data, load_best_model=False)
    test = job.trainer.evaluate(job.test_data, load_best_model=False)
    result = {"valid_result": {k: float(v) for k, v in valid.items()},
              "test_result": {k: float(v) for k, v in test.items()}}
    if prior:
        result["popularity_prior"] = prior
    return result
