"""Data-parallel training through Ray Train: sharding, the one-worker equivalence with single-process training,
and a 2-worker gloo run on loopback whose metrics match single-process training on the same seed."""
from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
import torch

from recbole_text.config import TextConfig
from recbole_text.data import create_dataset, data_preparation
from recbole_text.data.batching import TrainBatches
from recbole_text.distributed import train_distributed, train_worker
from recbole_text.quick_start import run

from conftest import FAST
from ray_session import ray_session  # noqa: F401  (fixture)

# SeqSASRec on the tiny dataset (60 users): 2 global batches of 32 sequences per epoch, dropout 0.5 (defaults).
SETTINGS = {**FAST, "epochs": 8, "learning_rate": 0.01, "train_batch_size": 32}
# 2 workers vs 1 process, same seed: the workers draw other dropout masks and see each batch as two halves
# (gradients averaged), so results agree within noise, not bit for bit. Measured: |Δ NDCG@10| ≈ 0.01.
METRIC_TOLERANCE = 0.05  # absolute, test NDCG@10 and Recall@10
LOSS_TOLERANCE = 0.03  # relative, training loss of every epoch


def loaders(model, tiny_data, **extra):
    config = TextConfig(model, "tiny", config_dict={**FAST, "data_path": str(tiny_data), **extra})
    return config, data_preparation(config, create_dataset(config))[0]


@pytest.mark.parametrize("batch_size", [16, 7])
def test_sharded_sequence_loader_visits_every_user_once_per_epoch(tiny_data, batch_size):
    _, train = loaders("SeqSASRec", tiny_data, train_batch_size=batch_size)
    shards = [TrainBatches(train, 5, rank, 2) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(train)
    for _ in range(2):  # two epochs: a new order each time, the same on both workers
        batches = [[b["user_id"].tolist() for b in shard] for shard in shards]
        assert len(batches[0]) == len(batches[1])  # DDP: every worker takes every step
        for mine, theirs in zip(*batches):
            assert not set(mine) & set(theirs) and abs(len(mine) - len(theirs)) <= 1
        seen = sorted(u for rank in batches for batch in rank for u in batch)
        assert seen == sorted(train.users.tolist())


def test_sharded_recbole_loader_splits_every_global_batch(tiny_data):
    _, train = loaders("SASRec", tiny_data, train_batch_size=50)  # RecBole's prefix rows
    shards = [TrainBatches(train, 5, rank, 2) for rank in (0, 1)]
    sizes = [[len(b) for b in shard] for shard in shards]
    assert len(sizes[0]) == len(sizes[1]) == len(train)
    assert sum(map(sum, sizes)) == train.sample_size
    single_row = TrainBatches(train, 5, 1, 2)
    assert single_row.shard(torch.tensor([7])).tolist() == [7]  # a 1-row batch still gives every worker a row


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_worker_is_exactly_single_process_training(tiny_data, in_tmp_cwd):
    import torch.distributed as dist

    settings = {**SETTINGS, "data_path": str(tiny_data), "popularity_prior": "auto"}
    single = run("SeqSASRec", "tiny", config_dict=dict(settings))
    threads = torch.get_num_threads()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        reports = []
        worker = train_worker({"model": "SeqSASRec", "dataset": "tiny", "config_files": [], "overrides": settings,
                               "use_gpu": False, "threads": threads}, report=reports.append)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)
    assert [r["epochs_done"] for r in reports] == list(range(1, 9))
    assert worker["num_workers"] == 1 and worker["backend"] == "gloo"
    assert [h["train_loss"] for h in worker["history"]] == pytest.approx([h["train_loss"] for h in single["history"]],
                                                                         rel=1e-6)
    assert worker["popularity_prior"] == single["popularity_prior"]  # β chosen on validation by rank 0, as run()
    assert worker["test_result"] == pytest.approx(single["test_result"], abs=1e-6)


def state_sums(state: dict) -> list[float]:
    return [float(t.double().sum()) for t in state.values() if t.is_floating_point()]


def two_stage_worker(rank: int, port: int, settings: dict, out: str) -> None:
    """One of two gloo workers training Recformer's two stages under ``train_budget_s``, their clocks apart:
    rank 0's runs 1,000 s per epoch, rank 1's stands still (alone it would plan every configured epoch).
    Rank 0's validation scores fall epoch after epoch, so the best checkpoint is stage 1's first epoch and
    stage 2 must start from it, not from the last epoch's weights. Writes ``out/rank<r>.json``."""
    import json
    from datetime import timedelta

    import torch.distributed as dist

    import recbole_text.job as job_module
    import recbole_text.trainer as trainer_module
    from recbole_text.compat import load_checkpoint
    from recbole_text.distributed import DistributedTrainerMixin

    torch.set_num_threads(1)
    clock = [0.0]
    trainer_module.perf_counter = lambda: clock[0]
    jobs, stage2_start = [], []
    real_build = job_module.build_job

    def build(*args, **kwargs):
        job = real_build(*args, **kwargs)
        trainer = job.trainer
        if rank == 0:
            trainer.epoch_start_callbacks.append(lambda epoch: clock.__setitem__(0, clock[0] + 1000.0))
            base = type(trainer).__mro__[type(trainer).__mro__.index(DistributedTrainerMixin) + 1]
            scores = iter([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
            base._valid_epoch = lambda self, data, show_progress=False: (next(scores), {"ndcg@10": 0.0})
        trainer.epoch_start_callbacks.append(
            lambda epoch: stage2_start.append(state_sums(job.model.state_dict())) if trainer.stage == "stage2"
            else None)
        jobs.append(job)
        return job

    job_module.build_job = build
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))  # workers that disagree fail instead of hanging
    reports, validated = [], []  # each validation's report and the weights it validated

    def report(metrics):
        reports.append(metrics)
        validated.append(state_sums(jobs[0].model.state_dict()))

    try:
        result = train_worker({"model": "Recformer", "dataset": "c", "config_files": [], "overrides": settings,
                               "use_gpu": False, "threads": 1}, report=report)
    finally:
        dist.destroy_process_group()
    logging.getLogger().warning("worker %d done", rank)
    trainer = jobs[0].trainer
    record = {"stages": [r["stage"] for r in reports], "planned": trainer.planned_epochs,
              "stage2_start": stage2_start, "final": validated[-1],
              "log_files": [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]}
    if rank == 0:
        record["best"] = state_sums(load_checkpoint(trainer.saved_model_file)["state_dict"])
        record["tested"] = result is not None and "ndcg@10" in result["test_result"]
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))


def test_two_workers_share_rank_0s_budget_plan_and_start_stage_2_from_its_best_weights(text_data, in_tmp_cwd):
    import json
    import multiprocessing

    from test_recformer import settings as recformer_settings

    settings = recformer_settings(text_data, epochs=5, stage2_epochs=2, finetune_stage2=True, stopping_step=10,
                                  lr_scheduler="linear", train_budget_s=4500.0)
    context = multiprocessing.get_context("spawn")
    port = free_port()
    workers = [context.Process(target=two_stage_worker, args=(rank, port, settings, str(in_tmp_cwd)))
               for rank in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        if worker.is_alive():
            worker.terminate()
    assert [w.exitcode for w in workers] == [0, 0]
    ranks = [json.loads((in_tmp_cwd / f"rank{r}.json").read_text()) for r in (0, 1)]
    for record in ranks:  # rank 0's plan at 1,000 s per epoch: 4 epochs fit 4,500 s, shared 3 + 1
        assert record["planned"] == {"finetune": 3, "stage2": 1}
        assert record["stages"] == ["finetune"] * 3 + ["stage2"]
        assert record["stage2_start"][0] == pytest.approx(ranks[0]["best"], rel=1e-9, abs=1e-9)
    assert ranks[0]["final"] == pytest.approx(ranks[1]["final"], rel=1e-6, abs=1e-6)  # DDP kept them equal
    assert ranks[0]["final"] != pytest.approx(ranks[0]["best"], rel=1e-6, abs=1e-6)  # stage 2 did train
    assert ranks[0]["tested"]
    rank0_log, = ranks[0]["log_files"]  # one RecBole log file each: the workers' lines are not interleaved
    assert ranks[1]["log_files"] == [rank0_log.removesuffix(".log") + "-rank1.log"]
    for rank, log_file in enumerate((rank0_log, ranks[1]["log_files"][0])):  # each worker's lines in its own file
        assert re.findall(r"worker (\d) done", Path(log_file).read_text()) == [str(rank)]


def test_one_worker_stops_starting_epochs_at_time_budget(tiny_data, in_tmp_cwd, monkeypatch):
    """``time_budget_s`` under data parallelism, decided on rank 0's clock: every epoch takes 1,000 s on a fake
    clock, so with 1,500 s the third epoch does not start."""
    import torch.distributed as dist

    import recbole_text.job as job_module
    import recbole_text.trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "perf_counter", lambda: clock[0])
    real_build = job_module.build_job

    def build(*args, **kwargs):
        job = real_build(*args, **kwargs)
        job.trainer.epoch_start_callbacks.append(lambda epoch: clock.__setitem__(0, clock[0] + 1000.0))
        return job

    monkeypatch.setattr(job_module, "build_job", build)
    settings = {**SETTINGS, "data_path": str(tiny_data), "time_budget_s": 1500.0}
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        worker = train_worker({"model": "SeqSASRec", "dataset": "tiny", "config_files": [], "overrides": settings,
                               "use_gpu": False, "threads": torch.get_num_threads()})
    finally:
        dist.destroy_process_group()
    assert [h["epoch"] for h in worker["history"]] == [0, 1]
    assert worker["stopped_by"] == "time_budget"


def test_two_ray_train_workers_match_single_process_training(ray_session, tiny_data, in_tmp_cwd):
    import ray

    settings = {**SETTINGS, "data_path": str(tiny_data)}
    single = run("SeqSASRec", "tiny", config_dict=dict(settings))
    two = train_distributed("SeqSASRec", "tiny", config_dict=dict(settings), num_workers=2,
                            experiment_dir=in_tmp_cwd / "ray_results")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}  # a loopback-only cluster
    assert two["master_addr"] == "127.0.0.1"  # and the gloo process group met there
    assert two["num_workers"] == 2 and two["backend"] == "gloo" and two["epochs_run"] == 8
    assert two["threads_per_worker"] == 1 and two["train_rows"] == 60
    for metric in ("ndcg@10", "recall@10"):
        assert abs(two["test_result"][metric] - single["test_result"][metric]) <= METRIC_TOLERANCE, metric
    assert single["test_result"]["ndcg@10"] > 0.3  # both learned the pattern (random ranking: about 0.05)
    assert [h["train_loss"] for h in two["history"]] == pytest.approx(
        [h["train_loss"] for h in single["history"]], rel=LOSS_TOLERANCE)
    assert two["history"][-1]["train_loss"] < 0.9 * two["history"][0]["train_loss"]
    # rank 0 saved the best checkpoint and evaluated it on the test split, as single-process training does
    checkpoint = torch.load(two["checkpoint"], weights_only=True)
    assert checkpoint["model"] == "SeqSASRec"


def test_a_resumed_worker_draws_its_own_random_numbers_again():
    """A resume point restores rank 0's random states on every worker; the others must not draw rank 0's
    dropout masks and negatives from then on."""
    from types import SimpleNamespace

    import numpy as np

    from recbole_text.distributed import DistributedTrainerMixin

    def draws(rank):
        torch.manual_seed(7)
        np.random.seed(7)
        worker = SimpleNamespace(rank=rank, world_size=2)
        DistributedTrainerMixin._random_states_restored(worker)
        return torch.rand(4), np.random.rand(4)

    rank0, rank1, rank1_again = draws(0), draws(1), draws(1)
    torch.manual_seed(7)
    assert torch.equal(rank0[0], torch.rand(4))  # rank 0 keeps the restored state
    assert not torch.equal(rank0[0], rank1[0]) and not np.array_equal(rank0[1], rank1[1])
    assert torch.equal(rank1[0], rank1_again[0])  # and the others' is reproducible
