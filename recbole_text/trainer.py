"""RecBole's trainers with safe checkpoints, per-epoch records and optional seen-item exclusion.

:func:`with_safe_checkpoints` mixes :class:`SafeCheckpointMixin` into any RecBole trainer class, so RecBole's
own training loop, evaluator and early stopping run unchanged while

* checkpoints hold ``state_dict`` + a plain config dict and are loaded with ``torch.load(weights_only=True)``
  (RecBole pickles its ``Config``, which torch ≥ 2.6 refuses, so best-model reload and resume would fail);
* every epoch is recorded (loss, seconds, validation metrics, elapsed time) in ``trainer.history``;
* ``exclude_seen_items: True`` removes the items of the input sequence from the full ranking;
* after each training and validation epoch the C heap's free pages go back to the OS (:func:`release_free_memory`);
* every epoch starts with the model's ``on_epoch_start(epoch)`` hook, if it has one, and ``epoch_start_callbacks``
  (text models re-encode their item table there);
* :meth:`SafeCheckpointMixin.begin_stage` starts a further training stage from the best weights so far with a
  fresh optimizer and learning-rate schedule (``lr_scheduler``: ``constant`` or ``linear`` warm-up and decay);
* with ``resume_point_file`` set, every validated epoch also writes a *resume point*: the current (not the best)
  weights, optimizer, schedule, early-stopping state, stage, history, the best checkpoint's path and the random
  states, so ``--resume=<resume point>`` continues a long run where it stopped, in whichever stage it was;
  it also keeps the seconds each sitting ran up to it (``sittings_s``), so a run spread over several sittings
  reports its total compute (the work an interruption lost after the last resume point is not counted);
* :func:`load_pretrained` loads weights by name from a safe checkpoint (``--pretrained=PATH``);
* ``enable_amp`` autocasts training to ``amp_dtype`` (bf16 by default on CPU and GPU; RecBole's autocast alone
  would take fp16 on CUDA), and trains in fp32 where bf16 is not native (:func:`~recbole_text.text.encoder.autocast_dtype`);
* Adam and AdamW run fused (:func:`fused`: one kernel for every parameter, ~6× faster on a CPU);
* ``gradient_accumulation_steps: k`` > 1 applies the mean gradient of ``k`` batches per optimizer step
  (:func:`accumulate_gradients`; the learning-rate schedule counts those steps);
* ``train_budget_s: B`` plans all training stages to end within ``B`` seconds: before every epoch the epochs
  that still fit at the mean epoch time so far are shared out between the stages (:func:`plan_epochs`),
  the current stage's learning-rate schedule is laid out again over its planned steps, and a stage planned at 0
  epochs is skipped (``time_budget_s``, by contrast, only stops starting new epochs in a stage). A linear
  schedule is planned once more after the first tenth of a sitting's first epoch, from the time per batch so
  far, so that a budget which holds one epoch anneals within it (validation's time is not known yet then: the
  plan after the first epoch counts it).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import uuid
from time import perf_counter

from recbole_text.compat import CheckpointError, load_checkpoint, plain, save_checkpoint

LR_SCHEDULERS = ("constant", "linear")
PRIOR_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # popularity_prior: auto tries these β


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl)
    except OSError:
        return None


_LIBC = _load_libc()


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``); ``False`` where there is none.

    glibc keeps the memory freed by one epoch's tensors for later mallocs, and across epochs that retained heap
    grows: 16 gSASRec epochs on Scientific peaked at 2,030 MB RSS without trimming, 1,291 MB with it
    (2 cores, torch 2.13 CPU). A trim costs milliseconds, once per epoch.
    """
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


def load_pretrained(model, path, model_name: str) -> dict:
    """Load weights by name from the safe checkpoint ``path`` into ``model`` (``--pretrained=PATH``), non-strict.

    Parameters the checkpoint lacks keep their initial values, its extra ones are ignored, and a tensor whose
    shape differs (e.g. an item table of another catalogue) is skipped; all three are logged. A checkpoint of
    another model family (``family`` class attribute, default the class name) is refused. Unlike ``--resume``
    it restores no optimizer, epoch or early-stopping state. Returns ``{"loaded", "missing", "unexpected",
    "skipped"}`` (lists of parameter names).
    """
    import logging

    from recbole_text.registry import UnknownModelError, get_model

    checkpoint = load_checkpoint(path, map_location="cpu")
    family = getattr(type(model), "family", type(model).__name__)
    try:
        theirs = get_model(str(checkpoint.get("model")))
        their_family = getattr(theirs, "family", theirs.__name__)
    except UnknownModelError:
        their_family = str(checkpoint.get("model"))
    if their_family.lower() != family.lower():
        raise CheckpointError(f"{path}: pretrained weights of model {checkpoint.get('model')!r} ({their_family} "
                              f"family) cannot initialise {model_name} ({family} family)")
    own = model.state_dict()
    given = checkpoint["state_dict"]
    skipped = sorted(k for k in given if k in own and tuple(given[k].shape) != tuple(own[k].shape))
    usable = {k: v for k, v in given.items() if k in own and k not in skipped}
    model.load_state_dict(usable, strict=False)
    report = {"loaded": sorted(usable), "missing": sorted(k for k in own if k not in usable),
              "unexpected": sorted(k for k in given if k not in own), "skipped": skipped}
    logger = logging.getLogger()
    logger.info(f"pretrained weights from {path}: {len(usable)} of {len(own)} tensors loaded")
    for what in ("missing", "unexpected", "skipped"):
        if report[what]:
            label = {"skipped": "skipped (shape differs)", "missing": "missing (initial values kept)",
                     "unexpected": "unexpected (ignored)"}[what]
            logger.info(f"  {label}: {', '.join(report[what])}")
    return report


def fused(optimizer):
    """RecBole's Adam / AdamW rebuilt with ``fused=True`` (same settings and parameters) where every parameter is a
    float tensor on the CPU or a GPU: one kernel for all parameters instead of a Python loop over them. For the
    25 M trainable parameters of Recformer's MiniLM a CPU step takes 19 ms instead of 124 ms. Other optimizers,
    and Adam where a parameter lives elsewhere, are returned as they are."""
    import torch

    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return optimizer
    groups = [{"params": group["params"]} for group in optimizer.param_groups]
    parameters = [parameter for group in groups for parameter in group["params"]]
    if not all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters):
        return optimizer
    settings = {key: optimizer.defaults[key] for key in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
    return type(optimizer)(groups, **settings, fused=True)


def accumulate_gradients(optimizer, steps: int):
    """Make ``optimizer`` step once every ``steps`` calls of its ``step()`` with the mean of the gradients
    accumulated since its last step; ``zero_grad()`` only clears them right after a real step. RecBole's loop
    (zero_grad, backward, step per batch) then trains on ``steps`` × ``train_batch_size`` rows per update. Hooks
    registered on the optimizer (the learning-rate schedule) run on real steps only. Gradient clipping, where
    set, sees the partial sums. Not with fp16's GradScaler, which unscales the gradients at every call."""
    real_step, real_zero_grad = optimizer.step, optimizer.zero_grad
    calls = [0]

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] % steps:
            return None
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    parameter.grad.div_(steps)
        return real_step(*args, **kwargs)

    def zero_grad(set_to_none: bool = True):
        if calls[0] % steps == 0:
            real_zero_grad(set_to_none=set_to_none)

    optimizer.step, optimizer.zero_grad = step, zero_grad
    optimizer.accumulation_steps = steps
    return optimizer


def plan_epochs(configured: list[int], done: list[int], current: int, fit: int) -> list[int]:
    """Epochs per stage under a time budget. ``configured[i]``: stage ``i``'s epochs as set; ``done[i]``: the
    epochs it has trained; ``current``: the stage training now; ``fit``: how many epochs the budget holds in all
    (done ones included). Finished stages keep what they trained; the current stage and the later ones share
    the rest in proportion to their configured epochs, the current one keeping at least what it trained, no
    stage more than configured, e.g. ``plan_epochs([5, 2], [1, 0], 0, 2) == [1, 1]``."""
    planned = [int(d) for d in done[:current]] + [int(e) for e in configured[current:]]
    available = fit - sum(planned[:current])
    rest = configured[current:]
    if sum(rest) <= available:
        return planned
    now = min(max(round(available * rest[0] / max(sum(rest), 1)), done[current]), rest[0])
    planned[current] = now
    left = max(available - now, 0)
    for index in range(current + 1, len(configured)):
        later = sum(configured[index:])
        planned[index] = min(configured[index], round(left * configured[index] / later)) if later else 0
        left -= planned[index]
    return planned


class _StopTraining(Exception):
    """Raised at the start of an epoch that must not run; ``reason`` becomes ``stopped_by``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StepLimited:
    """The first ``limit`` batches of a training loader (``max_steps``); counts the batches it yields."""

    def __init__(self, loader, limit: int):
        self.loader, self.limit, self.yielded = loader, limit, 0

    def __len__(self) -> int:
        return min(len(self.loader), self.limit)

    def __getattr__(self, name):  # shuffle, sampler, dataset, … of the wrapped loader
        return getattr(self.loader, name)

    def __iter__(self):
        for batch in self.loader:
            if self.yielded >= self.limit:
                return
            self.yielded += 1
            yield batch


class SafeCheckpointMixin:
    def __init__(self, config, model):
        super().__init__(config, model)
        self.history: list[dict] = []
        self._fit_started = None
        self._epoch_train = {}
        self.epoch_callbacks = []  # called as fn(record) after each validation
        self.epoch_start_callbacks = []  # called as fn(epoch_idx) before each training epoch
        self.stage = config["train_stage"] or "train"
        self.scheduler = None
        self.time_budget_s = config["time_budget_s"]  # stop starting new epochs after this many seconds
        self.max_steps = config["max_steps"]  # batches per stage (checked by the config)
        self.train_budget_s = config["train_budget_s"]  # plan all stages' epochs to fit (plan_epochs)
        self._budget_started = None
        self._budget_epochs = 0  # epochs trained since the budget started (this sitting)
        self.stage_epochs = {}  # stage → configured epochs (set by quick_start.train_stages)
        self.planned_epochs = {}  # stage → epochs planned under train_budget_s
        self._schedule_total = None  # optimizer steps of the current linear schedule (replanned by the budget)
        self._epoch = {}  # the training epoch under way: index, batches, when its first batch began, optimizer
        # steps so far, and the step a tenth in at which train_budget_s plans again (None: not in this epoch)
        if config["enable_amp"]:  # RecBole's autocast takes the device's default dtype: fp16 on CUDA, bf16 on CPU
            import torch

            from recbole_text.text.encoder import autocast_dtype

            dtype = autocast_dtype(config["amp_dtype"], self.device)
            if dtype is None:
                self.logger.warning(f"enable_amp: {self.device} has no bf16 hardware (AVX512-BF16, AMX or a bf16 "
                                    "GPU), where bf16 autocast is slower than fp32: training in fp32")
                self.enable_amp = False
            else:
                torch.set_autocast_dtype(self.device.type, dtype)
        self.steps_done = 0  # batches trained in this stage
        self.epochs_trained = 0  # epochs trained in all stages (Ray's and the scheduler's clock)
        self.stopped_by = None
        self.sitting_started = perf_counter()  # run() sets it to the process's start
        self.earlier_sittings_s = []  # seconds each earlier sitting ran up to its last resume point
        self.resume_point_file = None  # set (e.g. by run()) to write a resume point after every validation
        self._resumed_scheduler = None  # a resume point's schedule state, applied when fit() builds the schedule
        self._resumed_loader_rng = None  # and its training loader's generator state, applied by fit()
        self._train_data = None
        # RecBole names the file <model>-<local time to the second>.pth: two runs started in the same second
        # (a benchmark pair, Ray trials) would overwrite each other's best model
        stem, ext = os.path.splitext(self.saved_model_file)
        self.saved_model_file = f"{stem}-{os.getpid()}-{uuid.uuid4().hex[:6]}{ext}"

    # --- records -------------------------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._fit_started = perf_counter()
        if self._budget_started is None:
            self._budget_started = self._fit_started
        self._train_data = train_data
        if self._resumed_loader_rng is not None and getattr(train_data, "generator", None) is not None:
            restore = getattr(train_data, "restore_random_state", train_data.generator.set_state)
            restore(self._resumed_loader_rng)
        self._resumed_loader_rng = None
        if self.scheduler is None:
            resumed = self._resumed_scheduler
            epochs = self.epochs if resumed else max(self.epochs - self.start_epoch, 1)
            steps = len(train_data) * epochs
            if self.max_steps:
                steps = min(steps, self.max_steps - (0 if resumed else self.steps_done))
            self.scheduler = self._build_scheduler(steps)
            if resumed and self.scheduler is not None:  # continue the schedule where the resume point left it
                self.scheduler.load_state_dict(resumed)
                for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
                    group["lr"] = lr
            self._resumed_scheduler = None

        def after_validation(epoch_idx, valid_score):  # RecBole calls it once early stopping is updated
            if saved and self.resume_point_file:
                self.save_resume_point(epoch_idx)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, after_validation)
        except _StopTraining as stop:
            self.logger.info(f"{stop.reason} reached; best epoch kept")
            self.stopped_by = stop.reason
            return self.best_valid_score, self.best_valid_result
        last_epoch = self.history[-1]["epoch"] if self.history else -1
        self.stopped_by = "epochs" if last_epoch + 1 >= self.epochs else "early_stopping"
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = perf_counter()
        if self.time_budget_s and self._decided_once(self._fit_started is not None and
                                                     start - self._fit_started > self.time_budget_s):
            raise _StopTraining("time_budget")
        if self.max_steps and self.steps_done >= self.max_steps:
            raise _StopTraining("max_steps")
        if self.train_budget_s and self._budget_epochs:
            self._replan(epoch_idx)
            if epoch_idx >= self.epochs:  # the rest of this stage does not fit
                raise _StopTraining("train_budget")
        if self.max_steps:
            train_data = StepLimited(train_data, self.max_steps - self.steps_done)
        hook = getattr(self.model, "on_epoch_start", None)
        if hook is not None:
            hook(epoch_idx)
        for callback in self.epoch_start_callbacks:
            callback(epoch_idx)
        probe = math.ceil(math.ceil(len(train_data) / 10) / self.accumulation_steps)  # the optimizer step a tenth in
        self._epoch = {"index": epoch_idx, "batches": len(train_data), "batches_started": perf_counter(), "steps": 0,
                       "probe_step": probe if self.train_budget_s and not self._budget_epochs else None}
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.steps_done += train_data.yielded if isinstance(train_data, StepLimited) else len(train_data)
        self.epochs_trained += 1
        self._budget_epochs += 1
        release_free_memory()
        total = sum(loss) if isinstance(loss, tuple) else loss
        self._epoch_train = {"epoch": epoch_idx, "stage": self.stage, "train_loss": float(total),
                             "train_s": perf_counter() - start}
        if self.eval_step <= 0:  # train only (e.g. pretraining): the epoch is recorded without a validation
            self.history.append({**self._epoch_train, "valid_s": 0.0, "valid_score": None, "valid_result": {},
                                 "elapsed_s": perf_counter() - (self._fit_started or start)})
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        release_free_memory()
        record = dict(self._epoch_train)
        record.update(
            valid_s=perf_counter() - start,
            valid_score=float(score),
            valid_result={k: float(v) for k, v in result.items()},
            elapsed_s=perf_counter() - (self._fit_started or start),
        )
        self.history.append(record)
        for callback in self.epoch_callbacks:
            callback(record)
        return score, result

    def _replan(self, epoch_idx: int, batches_done: int = 0) -> None:
        """``train_budget_s``, before each epoch after this sitting's first: share the epochs that still fit at
        the mean epoch time so far (training, validation and table refreshes) between this stage and the later
        ones, and lay this stage's linear schedule out again over its planned steps. On ``--resume`` the budget
        counts afresh. With ``batches_done`` > 0 (a tenth into the sitting's first epoch) an epoch is estimated
        as the time before its first batch plus its batches at the time per batch so far, and the current epoch
        counts as trained."""
        now = perf_counter()
        if batches_done:
            elapsed, per_batch = self._decided_once(  # rank 0's clock in data parallel
                [now - self._budget_started, (now - self._epoch["batches_started"]) / batches_done])
            per_epoch = self._epoch["batches_started"] - self._budget_started + per_batch * self._epoch["batches"]
            epoch_ends = elapsed + per_batch * (self._epoch["batches"] - batches_done)
            trained = epoch_idx + 1
        else:
            elapsed = self._decided_once(now - self._budget_started)
            per_epoch, epoch_ends, trained = elapsed / self._budget_epochs, elapsed, epoch_idx
        more = int(min(max(self.train_budget_s - epoch_ends, 0) // max(per_epoch, 1e-9), 1e6))
        stages = list(self.stage_epochs) or [self.stage]
        configured = [self.stage_epochs.get(name, self.config["epochs"]) for name in stages]
        current = stages.index(self.stage)
        done = [sum(1 for r in self.history if r.get("stage") == name) for name in stages[:current]]
        done += [trained] + [0] * (len(stages) - current - 1)
        planned = dict(zip(stages, plan_epochs(configured, done, current, sum(done) + more)))
        if planned != (self.planned_epochs or dict(zip(stages, configured))):
            basis = f"of {batches_done} batches" if batches_done else "so far"
            plan = ", ".join(f"{name} {planned[name]} of {configured[i]}" for i, name in enumerate(stages))
            self.logger.info(f"train_budget_s={self.train_budget_s:g}: {per_epoch:.0f} s per epoch at the rate "
                             f"{basis}, epochs planned {plan}")
        self.planned_epochs = planned
        self.epochs = planned[self.stage]
        if self._schedule_total is not None:
            steps = len(self._train_data) * self.epochs
            self._set_schedule_length(min(steps, self.max_steps or steps))

    def _decided_once(self, value):
        """``value`` as one process decided it: itself here; rank 0's under data parallelism, where each worker
        has its own clock (:class:`~recbole_text.distributed.DistributedTrainerMixin`)."""
        decide = getattr(super(), "_decided_once", None)
        return value if decide is None else decide(value)

    def epoch_report(self) -> dict:
        """The latest epoch as Ray Tune and Ray Train report it (early-stopping state already updated)."""
        record = self.history[-1]
        return {
            "epoch": record["epoch"],
            "epochs_done": self.epochs_trained,  # counts on across stages
            "stage": record.get("stage"),
            "train_loss": record.get("train_loss"),
            "valid_score": record["valid_score"],
            **{f"valid_{k}": v for k, v in record["valid_result"].items()},
            "best_valid_score": float(self.best_valid_score),
            "early_stopped": bool(self.cur_step > self.stopping_step),
            "max_epochs": int(self.epochs),
            "train_s": record.get("train_s"),
            "valid_s": record.get("valid_s"),
        }

    # --- stages and schedules --------------------------------------------------------------------------
    def _build_optimizer(self, **kwargs):
        optimizer = fused(super()._build_optimizer(**kwargs))
        steps = int(self.config["gradient_accumulation_steps"] or 1)  # checked by the config (check_settings)
        return accumulate_gradients(optimizer, steps) if steps > 1 else optimizer

    def _build_scheduler(self, total_steps: int):
        """``lr_scheduler: linear``: the learning rate rises linearly over ``warmup_steps`` optimizer steps,
        then falls linearly to 0 at ``total_steps``; ``constant`` (default): no scheduler. It steps after every
        optimizer step (a hook on the optimizer, so RecBole's training loop is unchanged)."""
        kind = self.config["lr_scheduler"] or "constant"
        if kind == "constant":
            return None
        import torch

        warmup = int(self.config["warmup_steps"] or 0)
        self._set_schedule_length(total_steps)

        def factor(step: int) -> float:
            total = self._schedule_total
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(total - warmup, 1))

        scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

        def after_step(*_):
            scheduler.step()
            epoch = self._epoch
            epoch["steps"] = epoch.get("steps", 0) + 1
            if epoch["steps"] == epoch.get("probe_step"):
                self._replan(epoch["index"], epoch["steps"] * self.accumulation_steps)

        self.optimizer.register_step_post_hook(after_step)
        return scheduler

    @property
    def accumulation_steps(self) -> int:
        """Training batches per optimizer step: what :func:`accumulate_gradients` gave the optimizer (1 without)."""
        return getattr(self.optimizer, "accumulation_steps", 1)

    def _set_schedule_length(self, batches: int) -> None:
        """The linear schedule ends after ``batches`` training batches (optimizer steps, with accumulation)."""
        self._schedule_total = max(int(batches) // self.accumulation_steps, 1)

    def begin_stage(self, name: str, **settings) -> None:
        """Start training stage ``name`` (then call :meth:`fit` again): the best weights saved so far are
        loaded, ``settings`` (e.g. ``learning_rate``, ``epochs``) replace the config's, and the optimizer and
        learning-rate schedule start afresh over the parameters that require gradients. Epochs count from 0
        again; the best validation score is kept, so the checkpoint is only replaced by a better model, and the
        model's ``on_stage_start(name)`` hook runs (e.g. to freeze a table) before the optimizer is built."""
        if os.path.isfile(self.saved_model_file):
            self._load_model_state(self.saved_model_file)
        if name in self.planned_epochs:
            settings = {**settings, "epochs": self.planned_epochs[name]}
        for key, value in settings.items():
            self.config[key] = value
        self.learning_rate = self.config["learning_rate"]
        self.epochs = self.config["epochs"]
        self.weight_decay = self.config["weight_decay"]
        self.stopping_step = self.config["stopping_step"]
        hook = getattr(self.model, "on_stage_start", None)
        if hook is not None:
            hook(name)
        self.optimizer = self._build_optimizer(params=[p for p in self.model.parameters() if p.requires_grad])
        self.scheduler = None  # rebuilt by fit() over the new stage's epochs
        self._resumed_scheduler = None  # a resume point that ended the previous stage holds that stage's spent schedule
        self.start_epoch, self.cur_step, self.stage, self.steps_done = 0, 0, name, 0
        stage_begun = getattr(super(), "_stage_begun", None)  # data parallel: every worker takes rank 0's weights
        if stage_begun is not None:
            stage_begun()
        self.logger.info(f"training stage {name!r}: fresh optimizer, lr {self.learning_rate}, {self.epochs} epochs")

    # --- checkpoints -----------------------------------------------------------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        # RecBole saves with epoch -1 when a resumed stage has no epoch left: the checkpoint resumed from is kept as
        # it is, its epoch too, so that resuming from it again skips the same epochs
        if epoch < 0 and os.path.isfile(path):
            return
        save_checkpoint(path, self.config["model"], self._checkpoint_state(epoch))
        if verbose:
            self.logger.info(f"Saving current: {path}")

    def _load_model_state(self, path) -> dict:
        return self._load_state(path, self.read_checkpoint(path))

    def _load_state(self, path, checkpoint: dict) -> dict:
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as e:  # shapes or names differ: the checkpoint was trained with another config
            details = "; ".join(line.strip() for line in str(e).splitlines()[1:4])
            raise CheckpointError(f"{path}: its weights do not fit this {self.config['model']} configuration "
                                  f"({details})") from None
        self.model.load_other_parameter(checkpoint.get("other_parameter") or None)
        return checkpoint

    def save_resume_point(self, epoch: int, path=None) -> None:
        """Write ``path`` (default ``resume_point_file``) atomically: the state after ``epoch``'s validation, see
        the module doc."""
        import random

        import numpy as np
        import torch

        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        numpy_state = np.random.get_state()
        generator = getattr(self._train_data, "generator", None)
        point = {
            "stage": self.stage,
            "stage_finished": bool(self.cur_step > self.stopping_step or epoch + 1 >= self.epochs
                                   or (self.max_steps and self.steps_done >= self.max_steps)),
            "steps_done": self.steps_done,
            "epochs_trained": self.epochs_trained,
            "best_model_file": self.saved_model_file,
            "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()},
            "history": self.history,
            "sittings_s": [*self.earlier_sittings_s, perf_counter() - self.sitting_started],
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": plain(random.getstate()),
                    "numpy": [torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
                    "loader": generator.get_state() if generator is not None else None},
        }
        save_checkpoint(path or self.resume_point_file, self.config["model"],
                        {**self._checkpoint_state(epoch), "resume_point": point})

    def _checkpoint_state(self, epoch: int) -> dict:
        """What every checkpoint holds: weights, optimizer, epoch, early-stopping state, the plain config."""
        other = self.model.other_parameter()
        return {
            "config": self.config,
            "dataset": self.config["dataset"],
            "settings": plain(getattr(self.config, "settings", None)),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": other if other else {},
            "optimizer": self.optimizer.state_dict(),
        }

    def read_checkpoint(self, path) -> dict:
        return load_checkpoint(path, expected_model=self.config["model"], map_location=self.device)

    def discard_resume_point(self) -> None:
        """Delete the resume point of a run that finished: there is nothing left to resume."""
        if self.resume_point_file and os.path.isfile(self.resume_point_file):
            os.remove(self.resume_point_file)

    def resume_checkpoint(self, resume_file, checkpoint: dict | None = None):
        """Continue from ``resume_file``: a best-model checkpoint (its epoch, optimizer and early-stopping state)
        or a resume point (also its schedule, history, stage, best checkpoint and random states; the run's
        current stage must be the resume point's, see ``run()``). Returns the resume point's dict or ``None``."""
        import random

        import numpy as np
        import torch

        checkpoint = checkpoint or self.read_checkpoint(resume_file)
        self._load_state(resume_file, checkpoint)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        point = checkpoint.get("resume_point")
        self.epochs_trained = self.start_epoch
        if point is None:
            self.saved_model_file = str(resume_file)
        else:
            if point["stage"] != self.stage:
                raise CheckpointError(f"{resume_file}: a resume point of stage {point['stage']!r}, but the run is in "
                                      f"stage {self.stage!r}")
            self.saved_model_file = point["best_model_file"]
            if not os.path.isfile(self.saved_model_file):
                raise CheckpointError(f"{resume_file}: its best checkpoint {self.saved_model_file} is missing")
            self.best_valid_result = point["best_valid_result"]
            self.history = list(point["history"])
            self.earlier_sittings_s = [float(seconds) for seconds in point.get("sittings_s", [])]
            self.steps_done = int(point.get("steps_done", 0))
            self.epochs_trained = int(point.get("epochs_trained", self.start_epoch))
            self._resumed_scheduler = point["scheduler"]
            rng = point["rng"]
            torch.set_rng_state(rng["torch"])
            random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))
            np.random.set_state(("MT19937", rng["numpy"][0].numpy().astype(np.uint32), *rng["numpy"][1:]))
            self._resumed_loader_rng = rng["loader"]
            restored = getattr(super(), "_random_states_restored", None)  # data parallel: one state per worker
            if restored is not None:
                restored()
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        return point

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            self.load_best_model(model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def load_best_model(self, model_file=None) -> None:
        path = model_file or self.saved_model_file
        self._load_model_state(path)
        self.logger.info(f"Loading model structure and parameters from {path}")

    # --- evaluation ------------------------------------------------------------------------------------
    def evaluate_by_target(self, eval_data, seen_items) -> dict:
        """The metrics of ``eval_data`` (a full-sort loader; its model already loaded) split by whether each
        row's target item was seen in training: ``{"seen": {"rows": n, metric: value, …}, "unseen": {…}}``.
        ``seen_items`` is an (n_items,) bool tensor."""
        return self.evaluate_with_target_groups(eval_data, seen_items)[1]

    def evaluate_with_target_groups(self, eval_data, seen_items) -> tuple[dict, dict]:
        """``(metrics of all rows, as evaluate() gives them; evaluate_by_target's groups)`` from one pass over
        ``eval_data``: the scores of a text model's evaluation are its costliest part."""
        import torch

        groups = {"seen": self._collector_copy(), "unseen": self._collector_copy()}
        rows = dict.fromkeys(groups, 0)
        seen_items = seen_items.to(self.device)

        def collect(interaction, scores, positive_u, positive_i):
            self.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
            positive_u, positive_i = positive_u.to(scores.device), positive_i.to(scores.device)
            row_seen = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
            row_seen[positive_u] = seen_items[positive_i]  # sequential evaluation: one target per row
            for group, in_group in (("seen", row_seen), ("unseen", ~row_seen)):
                index = in_group.nonzero().squeeze(1)
                if not len(index):
                    continue
                renumbered = torch.full((len(scores),), -1, dtype=torch.long, device=scores.device)
                renumbered[index] = torch.arange(len(index), device=scores.device)
                keep = in_group[positive_u]
                groups[group].eval_batch_collect(scores[index], interaction[index.cpu()],
                                                 renumbered[positive_u[keep]], positive_i[keep])
                rows[group] += len(index)

        self._full_sort_pass(eval_data, collect)
        whole = self._collected_metrics(self.eval_collector)
        by_group = {group: {"rows": rows[group], **(self._collected_metrics(collector) if rows[group] else {})}
                    for group, collector in groups.items()}
        return whole, by_group

    def choose_popularity_prior(self, valid_data, grid=PRIOR_GRID) -> dict[float, float]:
        """``popularity_prior: auto``: ``valid_metric`` on ``valid_data`` for every β of ``grid``, from one pass
        (the model scores each batch once; β's scores add ``β·log(1 + n_i)``, history excluded as in evaluate()).
        Sets the model's β to the best (the smallest among ties) and returns ``{β: valid_metric}``."""
        model = self.model
        model.popularity_prior = 0.0
        collectors = {beta: self._collector_copy() for beta in grid}

        def collect(interaction, scores, positive_u, positive_i):
            for beta, collector in collectors.items():
                collector.eval_batch_collect(scores + beta * model.log_popularity, interaction, positive_u, positive_i)

        self._full_sort_pass(valid_data, collect)
        found = {beta: self._collected_metrics(collector)[self.valid_metric] for beta, collector in collectors.items()}
        sign = 1 if self.valid_metric_bigger else -1
        model.popularity_prior = max(grid, key=lambda beta: (sign * found[beta], -beta))
        self.logger.info(f"popularity_prior: β = {model.popularity_prior} on validation ({self.valid_metric}: "
                         + ", ".join(f"{beta}: {value:.4f}" for beta, value in found.items()) + ")")
        return found

    def _collector_copy(self):
        """A fresh copy of the collector: it holds the training statistics beyond-accuracy metrics need."""
        import copy

        return copy.deepcopy(self.eval_collector)

    def _full_sort_pass(self, eval_data, collect) -> None:
        """Score ``eval_data`` once, without gradients, as evaluate() does (history excluded): every batch's
        ``(interaction, scores, positive_u, positive_i)`` goes to ``collect``."""
        import torch

        self.model.eval()
        self.tot_item_num = eval_data._dataset.item_num
        with torch.no_grad():
            for batched_data in eval_data:
                collect(*self._full_sort_batch_eval(batched_data))

    def _collected_metrics(self, collector) -> dict[str, float]:
        collector.model_collect(self.model)
        return {key: float(value) for key, value in self.evaluator.evaluate(collector.get_data_struct()).items()}

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.config["exclude_seen_items"]:
            seen_field = self.config["ITEM_ID_FIELD"] + self.config["LIST_SUFFIX"]
            if seen_field in interaction:
                seen = interaction[seen_field].to(scores.device)  # (batch, max_len), 0 = padding
                scores.scatter_(1, seen, float("-inf"))
        return interaction, scores, positive_u, positive_i


_CACHE: dict[type, type] = {}


def with_safe_checkpoints(trainer_class: type) -> type:
    """``Trainer`` → ``SafeTrainer`` (a subclass with :class:`SafeCheckpointMixin`); cached per class."""
    if issubclass(trainer_class, SafeCheckpointMixin):
        return trainer_class
    if trainer_class not in _CACHE:
        _CACHE[trainer_class] = type(f"Safe{trainer_class.__name__}", (SafeCheckpointMixin, trainer_class), {})
    return _CACHE[trainer_class]


__all__ = ["SafeCheckpointMixin", "with_safe_checkpoints"]
