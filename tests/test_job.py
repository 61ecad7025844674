"""The house the text models need: one job builder, checked settings, the wider model contract, pretrained
weights, epoch and stage hooks, learning-rate schedules."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from recbole_text.cli import main
from recbole_text.compat import CheckpointError
from recbole_text.config import ConfigError, TextConfig
from recbole_text.data import create_dataset, data_preparation
from recbole_text.job import build_job
from recbole_text.model.abstract_recommender import SequenceLossRecommender
from recbole_text.trainer import load_pretrained, with_safe_checkpoints

from conftest import FAST, REPO, write_tiny_dataset

PACKAGE = REPO / "recbole_text"


# ---------------------------------------------------------------- settings
@pytest.mark.parametrize("setting, bad", [
    ("train_strategy", "rs"), ("loss_type", "ce"), ("negatives_per", "batch"), ("train_windows", "first"),
    ("rss_history", "old"), ("lr_scheduler", "cosine"),
])
def test_every_enumerated_setting_is_checked_when_the_config_is_built(setting, bad):
    with pytest.raises(ConfigError) as error:
        TextConfig("gSASRec", "tiny", config_dict={setting: bad})
    message = str(error.value)
    assert message.startswith(f"{setting}={bad!r} is not one of ")
    assert "\n" not in message
    allowed = {"train_strategy": "prefix, sequence, rss, sampled_prefix", "loss_type": "CE, BCE, gBCE, LambdaRank",
               "negatives_per": "sequence, position", "train_windows": "all, last", "rss_history": "full, recent",
               "lr_scheduler": "constant, linear"}[setting]
    assert message.endswith(allowed)


def test_mistyped_strategy_on_the_command_line_is_one_error_line(capsys):
    assert main(["--model=gSASRec", "--dataset=tiny", "--train_strategy=rs"]) == 2
    err = capsys.readouterr().err
    assert err == "error: train_strategy='rs' is not one of prefix, sequence, rss, sampled_prefix\n"


def test_recbole_models_keep_their_own_loss_types():
    assert TextConfig("SASRec", "tiny", config_dict={"loss_type": "BPR"})["loss_type"] == "BPR"


def test_package_model_without_its_yaml_is_an_error(tmp_path, monkeypatch):
    import recbole_text.config as config_module

    (tmp_path / "overall.yaml").write_text((config_module.PROPERTIES / "overall.yaml").read_text())
    monkeypatch.setattr(config_module, "PROPERTIES", tmp_path)
    with pytest.raises(ConfigError, match="gSASRec.yaml: the defaults of gSASRec are missing"):
        TextConfig("gSASRec", "tiny")
    assert TextConfig("SASRec", "tiny")["model"] == "SASRec"  # RecBole's models bring their own YAML


def test_settings_rebuild_the_same_config():
    from recbole_text.compat import plain_config

    config = TextConfig("gSASRec", "tiny", config_dict={"epochs": 3, "hidden_size": 8})
    again = TextConfig("gSASRec", "tiny", config_dict=config.settings)
    assert plain_config(again) == plain_config(config)


# ---------------------------------------------------------------- one start-up path
STARTUP_CALLS = {"init_seed", "create_dataset", "data_preparation", "TextConfig", "init_logger"}


def test_the_startup_sequence_is_written_once():
    """Outside ``job.py`` (and the modules that define them) nothing calls the start-up steps itself."""
    allowed = {PACKAGE / "job.py", PACKAGE / "config.py", PACKAGE / "data" / "__init__.py"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in STARTUP_CALLS:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert offenders == []


def test_build_job_parts(tiny_data, in_tmp_cwd):
    job = build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8})
    assert job.model.n_items == job.dataset.item_num
    assert job.trainer.model is job.model and job.train_data is not None
    bare = build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8},
                     loaders=False, with_trainer=False, log=False)
    assert bare.train_data is None and bare.trainer is None
    # the same seed gives the same initial weights whether or not the loaders were built
    for name, tensor in job.model.state_dict().items():
        assert torch.equal(tensor, bare.model.state_dict()[name]), name


# ---------------------------------------------------------------- model contract
class MeanPool(SequenceLossRecommender):
    """A sequence-vector model: the mean of the history's item embeddings, one vector per sequence."""

    output = "sequence"
    train_strategies = ("rss", "prefix")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.item_embedding = nn.Embedding(self.n_items, 16, padding_idx=0)
        self.mix = nn.Linear(16, 16)
        self.epochs_started, self.stages = [], []

    def encode_sequence(self, item_seq, item_seq_len):
        real = (item_seq > 0).unsqueeze(-1).float()  # (B, L, 1)
        pooled = (self.item_embedding(item_seq) * real).sum(1) / real.sum(1).clamp(min=1)  # (B, 16)
        return self.mix(pooled)

    def on_epoch_start(self, epoch):
        self.epochs_started.append(epoch)

    def on_stage_start(self, name):
        self.stages.append(name)
        self.mix.requires_grad_(False)  # e.g. a frozen table in a second stage


def meanpool_trainer(tiny_data, **overrides):
    from recbole.trainer import Trainer

    config = TextConfig(MeanPool, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "loss_type": "CE",
                                                       "train_strategy": "rss", "epochs": 3, **overrides})
    train, valid, test = data_preparation(config, create_dataset(config))
    model = MeanPool(config, train._dataset)
    return with_safe_checkpoints(Trainer)(config, model), train, valid, test


def test_a_sequence_vector_model_trains_and_ranks(tiny_data, in_tmp_cwd):
    trainer, train, valid, test = meanpool_trainer(tiny_data, learning_rate=0.01, epochs=4)
    trainer.fit(train, valid, saved=True)
    losses = [r["train_loss"] for r in trainer.history]
    assert losses[-1] < losses[0]
    assert trainer.model.epochs_started == [0, 1, 2, 3]
    model, batch = trainer.model.eval(), next(iter(test))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        assert scores.shape == (len(batch), model.n_items)
        single = model.predict(batch)
    rows = torch.arange(len(batch))
    assert torch.allclose(single, scores[rows, batch["item_id"]], atol=1e-5)
    assert set(trainer.evaluate(test).keys()) >= {"recall@10", "ndcg@10"}


def test_the_config_refuses_a_strategy_the_model_does_not_support(tiny_data):
    with pytest.raises(ConfigError, match=r"train_strategy='sequence': MeanPool trains with rss, prefix"):
        TextConfig(MeanPool, "tiny", config_dict={"train_strategy": "sequence", "loss_type": "CE"})


def test_a_sequence_vector_model_cannot_claim_per_position_training():
    with pytest.raises(TypeError, match="cannot train with a loss at every position"):
        type("Broken", (SequenceLossRecommender,), {"output": "sequence", "train_strategies": ("sequence",)})


def test_epoch_start_callbacks_run_before_every_epoch(tiny_data, in_tmp_cwd):
    trainer, train, valid, _ = meanpool_trainer(tiny_data)
    seen = []
    trainer.epoch_start_callbacks.append(lambda epoch: seen.append((epoch, len(trainer.history))))
    trainer.fit(train, valid, saved=False)
    assert seen == [(0, 0), (1, 1), (2, 2)]  # before epoch e's own record exists


def test_second_stage_starts_from_the_best_weights_with_a_fresh_optimizer(tiny_data, in_tmp_cwd):
    trainer, train, valid, _ = meanpool_trainer(tiny_data, learning_rate=0.01)
    trainer.fit(train, valid, saved=True)
    first_optimizer = trainer.optimizer
    assert first_optimizer.state  # Adam's moments after stage 1
    best = torch.load(trainer.saved_model_file, weights_only=True)["state_dict"]
    with torch.no_grad():
        trainer.model.item_embedding.weight.add_(1.0)  # drift away from the best weights
    trainer.begin_stage("frozen", learning_rate=0.001, epochs=2)
    assert trainer.model.stages == ["frozen"]
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, best[name]), name
    assert trainer.optimizer is not first_optimizer and not trainer.optimizer.state
    assert trainer.optimizer.param_groups[0]["lr"] == 0.001
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert id(trainer.model.mix.weight) not in optimized  # frozen by on_stage_start
    assert (trainer.start_epoch, trainer.cur_step, trainer.epochs) == (0, 0, 2)
    frozen_before = trainer.model.mix.weight.detach().clone()
    trainer.fit(train, valid, saved=True)
    assert [r["stage"] for r in trainer.history] == ["train"] * 3 + ["frozen"] * 2
    assert torch.equal(trainer.model.mix.weight, frozen_before)


def test_linear_schedule_warms_up_then_decays(tiny_data, in_tmp_cwd):
    trainer, *_ = meanpool_trainer(tiny_data, lr_scheduler="linear", warmup_steps=2, learning_rate=0.1)
    trainer.scheduler = trainer._build_scheduler(total_steps=6)
    rates = []
    for _ in range(6):
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()  # the hook steps the schedule
    assert rates == pytest.approx([0.05, 0.1, 0.1, 0.075, 0.05, 0.025])


def test_max_steps_cuts_the_epoch_it_ends_and_the_schedule_spans_it(tiny_data, in_tmp_cwd):
    from recbole_text import run

    batches = []
    config = {**FAST, "data_path": str(tiny_data), "train_batch_size": 128, "epochs": 10, "stopping_step": 10,
              "max_steps": 7, "lr_scheduler": "linear", "warmup_steps": 1}
    job = build_job("SASRec", "tiny", config_dict=config, log=False)
    per_epoch = len(job.train_data)
    assert 7 % per_epoch and per_epoch < 7  # the limit falls inside an epoch
    original = job.model.calculate_loss
    job.model.calculate_loss = lambda batch: batches.append(len(batch)) or original(batch)
    job.trainer.fit(job.train_data, job.valid_data, saved=False)
    assert len(batches) == 7 and job.trainer.stopped_by == "max_steps"
    assert len(job.trainer.history) == -(-7 // per_epoch)  # the cut epoch was validated too
    assert job.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # linear decay ended at step 7
    result = run("SASRec", "tiny", config_dict=config)
    assert result["stopped_by"] == "max_steps" and result["epochs_run"] == len(job.trainer.history)


# ---------------------------------------------------------------- --pretrained
def _trained_checkpoint(model, tiny_data, **overrides) -> str:
    from recbole_text import run

    result = run(model, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8, **overrides})
    return result["checkpoint"]


def test_pretrained_weights_load_by_name_and_skip_another_catalogue(tmp_path, in_tmp_cwd, caplog):
    write_tiny_dataset(tmp_path, "tiny", items=60)
    write_tiny_dataset(tmp_path, "other", items=40)
    checkpoint = _trained_checkpoint("gSASRec", tmp_path)
    same = build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tmp_path), "num_negatives": 8,
                                                      "pretrained": checkpoint}, with_trainer=False, log=False)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    for name, tensor in same.model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    with caplog.at_level(logging.INFO):
        other = build_job("gSASRec", "other", config_dict={**FAST, "data_path": str(tmp_path), "num_negatives": 8,
                                                            "pretrained": checkpoint}, with_trainer=False, log=False)
    state = other.model.state_dict()
    assert not torch.equal(state["item_embedding.weight"][:5], saved["item_embedding.weight"][:5])
    assert torch.equal(state["blocks.0.attention.qkv.weight"], saved["blocks.0.attention.qkv.weight"])
    assert "skipped (shape differs): item_bias, item_embedding.weight" in caplog.text


def test_pretrained_refuses_another_model_family(tiny_data, in_tmp_cwd):
    checkpoint = _trained_checkpoint("SeqSASRec", tiny_data)
    with pytest.raises(CheckpointError, match="pretrained weights of model 'SeqSASRec'.*cannot initialise gSASRec"):
        build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8,
                                                   "pretrained": checkpoint}, with_trainer=False, log=False)


def test_pretrained_refuses_a_pickled_file(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {}, "config": Path("x")}, path)  # a Path needs pickle to load
    with pytest.raises(CheckpointError, match="not a safe recbole_text checkpoint"):
        load_pretrained(nn.Linear(2, 2), path, "gSASRec")


def test_pretrained_is_separate_from_resume(tiny_data, in_tmp_cwd):
    """--pretrained restores weights only: epochs count from 0 and the optimizer starts empty."""
    checkpoint = _trained_checkpoint("gSASRec", tiny_data, epochs=2)
    job = build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8,
                                                     "pretrained": checkpoint}, log=False)
    assert job.trainer.start_epoch == 0 and not job.trainer.optimizer.state


def test_a_metric_that_cannot_rank_is_refused_with_the_ones_that_can():
    with pytest.raises(ConfigError, match=r"metric AUC is a value metric.*use ranking metrics \(AveragePopularity"):
        TextConfig("gSASRec", "tiny", config_dict={"metrics": ["Recall", "AUC"]})


def test_evaluation_encodes_long_batches_in_chunks_with_the_same_states(tiny_data, in_tmp_cwd, monkeypatch):
    import recbole_text.model.abstract_recommender as contract

    job = build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8},
                    with_trainer=False, log=False)
    model, batch = job.model.eval(), next(iter(job.test_data))[0]
    with torch.no_grad():
        whole = model.full_sort_predict(batch)
        sizes = []
        monkeypatch.setattr(contract, "EVAL_TOKENS", 3 * batch["item_id_list"].shape[1])  # 3 rows a chunk
        original = model._sequence_state
        monkeypatch.setattr(model, "_sequence_state", lambda s, n: sizes.append(len(s)) or original(s, n))
        chunked = model.full_sort_predict(batch)
    assert max(sizes) == 3 and sum(sizes) == len(batch)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_gradient_accumulation_steps_once_with_the_mean_gradient():
    import torch

    from recbole_text.trainer import accumulate_gradients

    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8)
    one, accumulated = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    accumulated.load_state_dict(one.state_dict())
    plain = torch.optim.SGD(one.parameters(), lr=0.1)
    plain.zero_grad()
    ((one(x).squeeze(1) - y) ** 2).mean().backward()  # one step on all 8 rows
    plain.step()
    optimizer = accumulate_gradients(torch.optim.SGD(accumulated.parameters(), lr=0.1), steps=2)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(1))
    for rows in (slice(0, 4), slice(4, 8)):  # RecBole's loop: zero_grad, backward, step, per batch
        optimizer.zero_grad()
        ((accumulated(x[rows]).squeeze(1) - y[rows]) ** 2).mean().backward()
        optimizer.step()
    assert len(steps) == 1  # the schedule's hook ran once
    assert torch.allclose(accumulated.weight, one.weight, atol=1e-6) and torch.allclose(accumulated.bias, one.bias)


def test_adam_runs_fused_with_the_same_settings_and_steps(tiny_data, in_tmp_cwd):
    import torch

    from recbole_text.trainer import fused

    job = build_job("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "learner": "adamw",
                                                    "weight_decay": 0.01}, log=False)
    assert type(job.trainer.optimizer) is torch.optim.AdamW and job.trainer.optimizer.defaults["fused"]
    assert job.trainer.optimizer.defaults["weight_decay"] == 0.01
    torch.manual_seed(0)
    loop, one_kernel = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    one_kernel.load_state_dict(loop.state_dict())
    start = loop.weight.detach().clone()
    optimizers = [torch.optim.Adam(loop.parameters(), lr=0.01, betas=(0.8, 0.9)),
                  fused(torch.optim.Adam(one_kernel.parameters(), lr=0.01, betas=(0.8, 0.9)))]
    assert optimizers[1].defaults["fused"] and optimizers[1].defaults["betas"] == (0.8, 0.9)
    x = torch.randn(4, 5)
    for _ in range(3):
        for model, optimizer in zip((loop, one_kernel), optimizers):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    assert not torch.allclose(loop.weight, start, atol=1e-3)  # three steps moved the weights
    assert torch.allclose(loop.weight, one_kernel.weight, atol=1e-6)
    sgd = torch.optim.SGD(loop.parameters(), lr=0.1)
    assert fused(sgd) is sgd


@pytest.mark.parametrize("dtype, expected", [(None, "bfloat16"), ("fp16", "float16"), ("bf16", "bfloat16")])
def test_enable_amp_autocasts_training_to_amp_dtype(dtype, expected, tiny_data, in_tmp_cwd, monkeypatch):
    import torch

    import recbole_text.text.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: True)  # as on an AMX CPU
    seen = []
    config = {**FAST, "data_path": str(tiny_data), "enable_amp": True, "epochs": 1, "amp_dtype": dtype}
    try:
        job = build_job("SASRec", "tiny", config_dict=config, log=False)
        original = job.model.calculate_loss
        job.model.calculate_loss = lambda batch: seen.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))) or original(batch)
        job.trainer.fit(job.train_data, job.valid_data, saved=False)
    finally:
        torch.set_autocast_dtype("cpu", torch.bfloat16)  # torch's CPU default, for the other tests
    assert seen and {(enabled, str(d)) for enabled, d in seen} == {(True, f"torch.{expected}")}


def test_enable_amp_trains_in_fp32_where_bf16_is_emulated(tiny_data, in_tmp_cwd, monkeypatch, caplog):
    import torch

    import recbole_text.text.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: False)  # an AVX2-only CPU
    seen = []
    config = {**FAST, "data_path": str(tiny_data), "enable_amp": True, "epochs": 1}
    job = build_job("SASRec", "tiny", config_dict=config, log=False)
    original = job.model.calculate_loss
    job.model.calculate_loss = lambda batch: seen.append(torch.is_autocast_enabled("cpu")) or original(batch)
    with caplog.at_level("WARNING"):
        job.trainer.fit(job.train_data, job.valid_data, saved=False)
    assert seen and not any(seen)
    assert "no bf16 hardware" in caplog.text
