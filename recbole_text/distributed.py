"""Distributed data-parallel training of any model through Ray Train, with RecBole's trainer and evaluator.

``python run_recbole_text.py --model=SeqSASRec --dataset=Scientific --num_workers=2 [--use_gpu]``

Ray Train's ``TorchTrainer`` starts ``num_workers`` processes and joins them in a process group (gloo on CPU,
NCCL with ``--use_gpu``). Every worker builds the same config, dataset and model (same seed) and runs RecBole's
own training loop (:class:`~recbole_text.trainer.SafeCheckpointMixin` over the model's trainer) with these
changes, all in :class:`DistributedTrainerMixin`:

* **data**: each global batch of the training loader is split between the workers (``rows[rank::world]``,
  :class:`~recbole_text.data.batching.TrainBatches`); all workers draw the same shuffled order every epoch, so one epoch still visits
  every training row exactly once, in as many optimizer steps as single-process training. The global batch
  stays ``train_batch_size``: the same hyper-parameters mean the same optimisation.
* **gradients**: the loss is computed through a ``DistributedDataParallel`` wrapper of the model, which
  all-reduces (averages) the gradients during ``backward``; every parameter takes part in every step.
* **evaluation**: rank 0 evaluates (RecBole's evaluator, full ranking) and broadcasts the result, so every
  worker takes the same early-stopping decision; rank 0 saves the best checkpoint, evaluates it on the test
  split and returns the run record (the same record as :func:`recbole_text.quick_start.run`).
* **stages and budgets**: every training stage runs as in ``run()`` (:func:`~recbole_text.quick_start.train_stages`,
  e.g. Recformer's stage 2), each starting on every worker from rank 0's best weights; ``time_budget_s`` and
  ``train_budget_s``'s epoch plan are decided on rank 0's clock and broadcast, so all workers stop together.

RecBole 1.2.1 has its own multi-GPU path (``single_spec: False`` with ``nproc``/``world_size``/``local_rank``),
but it is bypassed: it wraps the model with ``device_ids=[local_rank]`` (CUDA only, so no CPU/gloo), shards
validation and test with padding (duplicated users change the metrics) and cannot shard this package's
sequence loader. Here ``single_spec`` stays ``True`` and the mixin does the distributed parts.

With one worker the loop is exactly single-process training (no sharding), so metrics match ``run()``.
"""
from __future__ import annotations

import gc
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter, process_time

import torch
from torch import nn

from recbole_text.config import ConfigError
from recbole_text.trainer import SafeCheckpointMixin

RESULT_FILE = "result.json"


class DistributedTrainingError(RuntimeError):
    """Ray Train run that failed (reported to CLI users as one line)."""


# --- trainer ------------------------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """What DDP wraps: ``forward`` returns the training loss, so gradients are all-reduced in ``backward``.

    A zero-weighted sum of every parameter joins the loss (as RecBole's own DDP path does), so parameters a
    batch does not use still take part in the all-reduce and DDP needs no unused-parameter search."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, interaction, loss_func):
        losses = loss_func(interaction)
        anchor = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
        if isinstance(losses, tuple):
            return (losses[0] + anchor,) + tuple(losses[1:])
        return losses + anchor


def _broadcast_json(value, src: int = 0):
    """Broadcast plain data from ``src`` as JSON bytes (no pickle)."""
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    if dist.get_rank() == src:
        payload = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=device)
        size = torch.tensor([len(payload)], dtype=torch.long, device=device)
    else:
        size = torch.zeros(1, dtype=torch.long, device=device)
    dist.broadcast(size, src)
    if dist.get_rank() != src:
        payload = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(payload, src)
    return json.loads(bytes(payload.cpu().tolist()).decode())


class DistributedTrainerMixin:
    """Data-parallel training inside RecBole's training loop; placed between :class:`SafeCheckpointMixin` and
    the model's trainer (see :func:`distributed_trainer_class`)."""

    def __init__(self, config, model):
        import torch.distributed as dist

        super().__init__(config, model)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._wrap()
        self.epoch_cpu_s: list[float] = []  # CPU seconds of this process per training epoch (vs wall: its share)

    def _wrap(self) -> None:
        """(Re)build the DDP wrapper: its constructor gives every worker rank 0's parameters and buffers, and
        registers the gradient all-reduce for the parameters that require gradients now."""
        from torch.nn.parallel import DistributedDataParallel

        self.ddp = None  # the old wrapper's reducer and its gradient hooks go first
        gc.collect()
        device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_LossModule(self.model), device_ids=device_ids)

    def _stage_begun(self) -> None:
        """A new stage (``begin_stage``): rank 0 alone saved and reloaded the best weights, and the stage may
        freeze parameters; a new wrapper shares rank 0's weights and hooks the parameters trained now."""
        self._wrap()

    def _random_states_restored(self) -> None:
        """A resume point gave every worker rank 0's random states: each other worker draws its own again (as
        ``worker_seed_offset`` did at the start), seeded from the restored state and its rank. The loader's
        shuffling generator stays common to all."""
        if self.rank:
            import random

            import numpy as np

            seed = int(torch.randint(2 ** 31 - 1 - self.world_size, ())) + self.rank
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)

    def _decided_once(self, value):
        return _broadcast_json(value)  # rank 0's: time_budget_s and train_budget_s decide on its clock

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        inner = loss_func or self.model.calculate_loss
        cpu = process_time()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=lambda batch: self.ddp(batch, inner),
                                    show_progress=show_progress)
        self.epoch_cpu_s.append(process_time() - cpu)
        return self._mean_over_workers(loss)

    def _mean_over_workers(self, loss):
        import torch.distributed as dist

        parts = loss if isinstance(loss, tuple) else (loss,)
        values = torch.tensor([float(p) for p in parts], dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        values = (values / self.world_size).tolist()
        return tuple(values) if isinstance(loss, tuple) else values[0]

    def _valid_epoch(self, valid_data, show_progress=False):
        payload = None
        if self.rank == 0:
            score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
            payload = [float(score), {k: float(v) for k, v in result.items()}]
        score, result = _broadcast_json(payload)
        return score, result


_CLASSES: dict[type, type] = {}


def distributed_trainer_class(base: type) -> type:
    """``SafeCheckpointMixin`` → ``DistributedTrainerMixin`` → ``base`` (the model's RecBole trainer)."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Distributed{base.__name__}", (SafeCheckpointMixin, DistributedTrainerMixin, base), {})
    return _CLASSES[base]


# --- one worker ---------------------------------------------------------------------------------------------
def train_worker(job: dict, report=None) -> dict | None:
    """One worker's training in an initialised process group (Ray Train's, or any other): RecBole's training
    loop with :class:`DistributedTrainerMixin`. ``report(metrics)`` is called on every worker after each
    validation. Returns rank 0's run record (the same fields as ``run()``); ``None`` on the other ranks."""
    import torch.distributed as dist

    from recbole_text.job import build_job
    from recbole_text.quick_start import choose_prior, summarize, train_stages
    from recbole_text.registry import get_base_trainer

    started = perf_counter()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, int(job["threads"])))
    overrides = {**job["overrides"], "gpu_id": "", "use_gpu": job["use_gpu"]}
    if rank:
        overrides.update(show_progress=False, state="WARNING")
    built = build_job(  # the same initial weights on every worker; then each its own dropout masks and negatives
        job["model"], job["dataset"], job["config_files"], overrides, device=job.get("device"),
        trainer_class=lambda config: distributed_trainer_class(get_base_trainer(config["MODEL_TYPE"], config["model"])),
        worker_seed_offset=rank, worker_shard=(rank, world),
    )
    config, trainer, train_data = built.config, built.trainer, built.train_data
    trainer.sitting_started = started
    rows = len(train_data.users) if hasattr(train_data, "users") else getattr(train_data, "sample_size", None)

    def after_validation(epoch_idx, valid_score):
        if report is not None:
            report(trainer.epoch_report())

    saved = bool(job.get("saved", True)) and rank == 0
    show = bool(config["show_progress"]) and rank == 0
    best_score, best_result = train_stages(built, saved=saved, resume=job.get("resume"), show=show,
                                           callback_fn=after_validation)
    if rank != 0:
        return None
    trainer.discard_resume_point()
    if saved:
        trainer.load_best_model()
    prior = choose_prior(built, own_checkpoint=trainer.saved_model_file if saved else None)  # rank 0 alone
    test_result = trainer.evaluate(built.test_data, load_best_model=False, show_progress=False)
    result = summarize(config, trainer, best_score, best_result, test_result, perf_counter() - started)
    if prior:
        result["popularity_prior"] = prior
    train_s = [r["train_s"] for r in trainer.history]
    result.update(
        num_workers=world,
        backend=dist.get_backend(),
        train_rows=rows,
        train_rows_per_s=rows / (sum(train_s) / len(train_s)) if rows and train_s else None,
        threads_per_worker=torch.get_num_threads(),
        master_addr=os.environ.get("MASTER_ADDR"),  # where the process group met (Ray Train sets it)
        train_cpu_s=trainer.epoch_cpu_s,
    )
    return result


def worker_loop(job: dict) -> None:
    """What each Ray Train worker runs: :func:`train_worker` reporting to Ray Train; rank 0's run record
    travels back in the final report's checkpoint."""
    import ray.train

    if job["use_gpu"]:
        from ray.train.torch import get_device

        job = {**job, "device": str(get_device())}
    result = train_worker(job, report=ray.train.report)
    if result is None:
        ray.train.report({"final": True})  # every worker reports equally often
        return
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, RESULT_FILE).write_text(json.dumps(result, default=str))
        ray.train.report({"final": True}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


# --- driver -------------------------------------------------------------------------------------------------
def train_distributed(model, dataset, config_file_list=None, config_dict=None, *, num_workers=2, use_gpu=False,
                      cpus_per_worker=1.0, ray_address=None, experiment_dir=None, name=None, resume=None,
                      saved=True, result_file=None) -> dict:
    """Train ``model`` on ``num_workers`` Ray Train workers; return rank 0's run record (as ``run()`` does)."""
    from recbole_text.job import prepare_driver
    from recbole_text.quick_start import write_run_record
    from recbole_text.ray_env import DEFAULT_EXPERIMENT_DIR, init_ray, shutdown_ray

    if int(num_workers) < 1:
        raise ConfigError(f"--num_workers must be at least 1, got {num_workers}")
    config, files, overrides = prepare_driver(model, dataset, config_file_list, config_dict)  # dataset built once
    if resume:
        resume = os.path.abspath(resume)
        if not os.path.isfile(resume):
            raise FileNotFoundError(f"{resume}: checkpoint file not found")

    storage = os.path.abspath(experiment_dir or DEFAULT_EXPERIMENT_DIR)
    name = name or f"{config['model']}-{dataset}-ddp{num_workers}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    started_ray = init_ray(ray_address)  # before anything imports Ray (see ray_env)
    try:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        trainer = TorchTrainer(
            worker_loop,
            train_loop_config={
                "model": config["model"], "dataset": dataset, "config_files": files, "overrides": overrides,
                "use_gpu": bool(use_gpu), "threads": cpus_per_worker, "saved": saved, "resume": resume,
            },
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=int(num_workers), use_gpu=bool(use_gpu),
                                         resources_per_worker={"CPU": float(cpus_per_worker)}),
            run_config=RunConfig(name=name, storage_path=storage),
        )
        try:
            outcome = trainer.fit()
        except Exception as e:  # Ray wraps the worker's exception; keep its last line
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            cause = next((ln for ln in reversed(lines) if "Error" in ln.split(":")[0]), lines[-1] if lines else "")
            raise DistributedTrainingError(f"distributed training failed: {cause or type(e).__name__}") from None
        with outcome.checkpoint.as_directory() as folder:
            result = json.loads(Path(folder, RESULT_FILE).read_text())
    finally:
        shutdown_ray(started_ray)
    result["experiment"] = os.path.join(storage, name)
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if result_file:
        write_run_record(result, result_file)
    return result
