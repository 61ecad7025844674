"""Recformer: the model on a tiny random BERT backbone (converted to a Longformer), stages and round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import FAST
from ray_session import ray_session  # noqa: F401  (fixture)

from recbole_text.job import build_job


def settings(text_data, **more):
    root, bert = text_data
    return {**FAST, "data_path": str(root), "plm_name": str(bert), "max_token_num": 64, "attention_window": 16,
            "train_batch_size": 32, "eval_batch_size": 64, "learning_rate": 1e-3, "warmup_steps": 2,
            "train_strategy": "prefix", "enable_amp": False, "eval_amp": False, "epochs": 1, **more}


def test_scores_are_cosines_over_temperature_against_the_item_table(text_data, in_tmp_cwd):
    job = build_job("Recformer", "c", config_dict=settings(text_data), log=False)
    model = job.model.eval()
    batch = next(iter(job.test_data))[0]
    assert not bool(model.item_table_ready)
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
    assert bool(model.item_table_ready)  # encoded on first use (zero-shot needs no epoch)
    assert scores.shape == (len(batch), model.n_items) and scores.abs().max() <= 1 / model.temperature + 1e-4
    with torch.no_grad():
        again = model.encode_items(torch.arange(1, model.n_items))  # in id order, one batch
    assert len(set(model.catalogue.lengths()[1:].tolist())) > 1  # the table was encoded in another order
    assert torch.allclose(model.item_table[1:], again, atol=1e-5)  # I_i = h_CLS([CLS] item i)


def test_eval_amp_encodes_in_bf16_and_returns_float32_close_to_fp32(text_data, in_tmp_cwd, monkeypatch):
    import recbole_text.text.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: True)  # as on an AMX CPU
    job = build_job("Recformer", "c", config_dict=settings(text_data), log=False)
    model = job.model.eval()
    batch = next(iter(job.test_data))[0]
    seq, seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        fp32_table, fp32_states = model.encode_catalogue(), model.encode_sequence(seq, seq_len)
        model.eval_amp = True
        bf16_table, bf16_states = model.encode_catalogue(), model.encode_sequence(seq, seq_len)
    assert bf16_table.dtype == bf16_states.dtype == torch.float32
    assert not torch.equal(bf16_table, fp32_table)  # the bf16 path really ran
    assert torch.nn.functional.cosine_similarity(bf16_table, fp32_table).min() > 0.99
    assert torch.nn.functional.cosine_similarity(bf16_states, fp32_states).min() > 0.99
    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: False)  # an AVX2-only CPU: fp32 instead
    with torch.no_grad():
        assert torch.equal(model.encode_catalogue(), fp32_table)


def test_item_position_embeddings_reach_the_output(text_data, in_tmp_cwd):
    job = build_job("Recformer", "c", config_dict=settings(text_data), loaders=False, with_trainer=False, log=False)
    model = job.model.eval()
    seq, length = torch.tensor([[3, 4, 0]]), torch.tensor([2])
    with torch.no_grad():
        before = model.encode_sequence(seq, length)
        model.item_position_embedding.weight[2].normal_()  # the second most recent item's position row
        changed = model.encode_sequence(seq, length)
        model.item_position_embedding.weight[3].normal_()  # a position no item of this sequence takes
        unchanged = model.encode_sequence(seq, length)
    assert not torch.allclose(before, changed) and torch.allclose(changed, unchanged)


def test_mean_pooling_averages_the_real_tokens_of_sequences_and_items(text_data, in_tmp_cwd):
    from recbole_text.config import ConfigError

    job = build_job("Recformer", "c", config_dict=settings(text_data, recformer_pooling="mean"), loaders=False,
                    with_trainer=False, log=False)
    model = job.model.eval()
    seq, length = torch.tensor([[3, 4, 0], [5, 0, 0]]), torch.tensor([2, 1])  # rows of different widths: padding
    with torch.no_grad():
        inputs = model.sequence_inputs(seq, length)
        hidden = model.encode_tokens(inputs)  # (2, W, d)
        states = model.encode_sequence(seq, length)
        items = model.encode_items(torch.tensor([5]))
        item_hidden = model.encode_tokens(model.sequence_inputs(torch.tensor([[5]]), torch.tensor([1])))
    real = inputs["attention_mask"].bool()
    assert not real[1].all()  # the shorter row is padded
    for row in range(2):
        assert torch.allclose(states[row], hidden[row][real[row]].mean(0), atol=1e-5)
        assert not torch.allclose(states[row], hidden[row, 0], atol=1e-3)  # not h_[CLS]
    assert torch.allclose(items[0], item_hidden[0].mean(0), atol=1e-5)  # an item input is [CLS] + the item
    with pytest.raises(ConfigError, match="recformer_pooling='max' is not one of cls, mean"):
        build_job("Recformer", "c", config_dict=settings(text_data, recformer_pooling="max"), loaders=False,
                  with_trainer=False, log=False)


@pytest.mark.parametrize("attention_impl", ["dense", "longformer"])
def test_cls_pooling_is_the_cls_state_of_the_full_pass(attention_impl, text_data, in_tmp_cwd):
    job = build_job("Recformer", "c", config_dict=settings(text_data, attention_impl=attention_impl), loaders=False,
                    with_trainer=False, log=False)
    model = job.model.eval()
    seq, length = torch.tensor([[3, 4, 0], [5, 0, 0]]), torch.tensor([2, 1])
    with torch.no_grad():
        hidden = model.encode_tokens(model.sequence_inputs(seq, length))  # (2, W, d): every token
        states = model.encode_sequence(seq, length)  # dense: the last layer computes [CLS] alone
    assert hidden.shape[1] > 1
    assert torch.allclose(states, hidden[:, 0], atol=1e-5)


@pytest.mark.parametrize("attention_impl", ["dense", "longformer"])
def test_attention_dropout_setting_reaches_every_layers_attention(attention_impl, text_data, in_tmp_cwd):
    from recbole_text.config import ConfigError

    def training_outputs_differ(**more):
        job = build_job("Recformer", "c", config_dict=settings(text_data, attention_impl=attention_impl, **more),
                        loaders=False, with_trainer=False, log=False)
        model = job.model.train()
        for module in model.modules():  # hidden dropout off: what randomness is left is the attention's
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        seq, length = torch.tensor([[3, 4, 0], [5, 6, 7]]), torch.tensor([2, 3])
        with torch.no_grad():
            return not torch.allclose(model.encode_sequence(seq, length), model.encode_sequence(seq, length))

    assert training_outputs_differ(attention_dropout=None)  # ~: the backbone's 0.1
    assert training_outputs_differ(attention_dropout=0.2)
    assert not training_outputs_differ()  # the CPU profile's 0.0
    for bad in (1.0, "high"):
        with pytest.raises(ConfigError, match=r"attention_dropout=.* must be a number in \[0, 1\)"):
            build_job("Recformer", "c", config_dict=settings(text_data, attention_dropout=bad), loaders=False,
                      with_trainer=False, log=False)


@pytest.mark.parametrize("strategy", ["prefix", "rss"])
def test_no_training_example_has_an_empty_history(strategy, text_data, in_tmp_cwd):
    job = build_job("Recformer", "c", config_dict=settings(text_data, train_strategy=strategy), with_trainer=False,
                    log=False)
    lengths = torch.cat([batch["item_length"] for batch in job.train_data])
    assert len(lengths) and lengths.min() >= 1


def test_stage_two_keeps_the_best_table_bit_for_bit_with_a_fresh_optimizer(text_data, in_tmp_cwd):
    job = build_job("Recformer", "c", config_dict=settings(text_data, epochs=2), log=False)
    trainer, model = job.trainer, job.model
    trainer.fit(job.train_data, job.valid_data, saved=True)
    best = torch.load(trainer.saved_model_file, weights_only=True)["state_dict"]
    old_optimizer = trainer.optimizer
    trainer.begin_stage("stage2", epochs=2, stopping_step=3)
    assert torch.equal(model.item_table, best["item_table"])  # the best stage-1 (model, table) pair
    assert trainer.optimizer is not old_optimizer and not trainer.optimizer.state  # no Adam moments carried over
    table = model.item_table.clone()
    weights = model.backbone.encoder.layer[0].attention.self.query_global.weight.detach().clone()
    trainer.fit(job.train_data, job.valid_data, saved=True)
    assert torch.equal(model.item_table, table)
    assert not torch.equal(model.backbone.encoder.layer[0].attention.self.query_global.weight, weights)  # it trained


def test_run_trains_both_stages(text_data, in_tmp_cwd):
    from recbole_text import run

    result = run("Recformer", "c", config_dict=settings(text_data, epochs=1, stage2_epochs=1))
    assert [h["stage"] for h in result["history"]] == ["finetune", "stage2"]
    assert result["test_result"]["recall@10"] >= 0


def test_a_run_stopped_in_stage_two_resumes_there_with_the_table_frozen(text_data, in_tmp_cwd):
    """Interrupted at stage 2's second validation, --resume continues stage 2 (stage 1 is not redone, the table
    stays the best stage-1 table) and ends as the uninterrupted run."""
    from recbole_text import run
    from test_cli import Interrupted, interrupt_at, only_resume_point

    config = settings(text_data, epochs=2, stage2_epochs=2, stopping_step=10, stage2_stopping_step=10)
    full = run("Recformer", "c", config_dict=config)
    with pytest.raises(Interrupted):
        run("Recformer", "c", config_dict=config, epoch_callbacks=[interrupt_at("stage2", 1)])
    point_file = only_resume_point(in_tmp_cwd)
    point = torch.load(point_file, weights_only=True)
    assert point["resume_point"]["stage"] == "stage2" and point["epoch"] == 0
    best = torch.load(point["resume_point"]["best_model_file"], weights_only=True)["state_dict"]
    refreshed = []
    resumed = run("Recformer", "c", config_dict=config, resume=point_file,
                  epoch_callbacks=[lambda record: refreshed.append(record["stage"])])
    assert refreshed == ["stage2"]  # only stage 2's last epoch ran
    assert [(r["stage"], r["epoch"]) for r in resumed["history"]] == [
        ("finetune", 0), ("finetune", 1), ("stage2", 0), ("stage2", 1)]
    final = torch.load(resumed["checkpoint"], weights_only=True)["state_dict"]
    assert torch.equal(final["item_table"], best["item_table"])  # frozen in stage 2
    for got, want in zip(resumed["history"], full["history"]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    assert resumed["test_result"] == pytest.approx(full["test_result"], abs=1e-5)


def test_a_run_stopped_between_the_stages_trains_stage_two_with_its_own_fresh_schedule(text_data, in_tmp_cwd):
    """Interrupted before stage 2's first resume point, --resume reads stage 1's last one (stage finished): stage 2
    must start its own learning-rate schedule, not continue stage 1's spent one (learning rate 0), and end as the
    uninterrupted run."""
    from recbole_text import run
    from test_cli import Interrupted, interrupt_at, only_resume_point

    config = settings(text_data, epochs=2, stage2_epochs=2, stopping_step=10, stage2_stopping_step=10)
    full = run("Recformer", "c", config_dict=config)
    with pytest.raises(Interrupted):
        run("Recformer", "c", config_dict=config, epoch_callbacks=[interrupt_at("stage2", 0)])
    point_file = only_resume_point(in_tmp_cwd)
    point = torch.load(point_file, weights_only=True)["resume_point"]
    assert point["stage"] == "finetune" and point["stage_finished"]
    resumed = run("Recformer", "c", config_dict=config, resume=point_file)
    assert [(r["stage"], r["epoch"]) for r in resumed["history"]] == [
        ("finetune", 0), ("finetune", 1), ("stage2", 0), ("stage2", 1)]
    for got, want in zip(resumed["history"][2:], full["history"][2:]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    assert resumed["test_result"] == pytest.approx(full["test_result"], abs=1e-5)


def test_a_stage_one_checkpoint_resumed_with_its_epochs_spent_trains_stage_two_alone(text_data, in_tmp_cwd,
                                                                                    monkeypatch):
    """--resume=<best checkpoint of a stage-1 run> with --epochs at most its epoch + 1: nothing of stage 1 is left, so
    stage 2 starts at once from that checkpoint's (model, table) pair with a fresh optimizer, and the checkpoint is
    never written with epoch -1 (RecBole's "nothing left to train" save), which a later --resume would read as
    "start stage 1 again"."""
    import shutil

    from recbole_text import trainer as trainer_module
    from recbole_text.quick_start import train_stages

    stage_one = build_job("Recformer", "c", config_dict=settings(text_data, finetune_stage2=False), log=False)
    train_stages(stage_one, saved=True, resume=None, show=False, resume_points=False)
    source = Path(shutil.copy(stage_one.trainer.saved_model_file, in_tmp_cwd / "stage1.pth"))
    before = torch.load(source, weights_only=True)
    assert before["epoch"] == 0
    written = []
    save = trainer_module.save_checkpoint
    monkeypatch.setattr(trainer_module, "save_checkpoint",
                        lambda path, model, state: (written.append(state["epoch"]), save(path, model, state)))
    job = build_job("Recformer", "c", config_dict=settings(text_data, epochs=1, stage2_epochs=1), log=False)
    train_stages(job, saved=True, resume=str(source), show=False, resume_points=False)
    assert [(r["stage"], r["epoch"]) for r in job.trainer.history] == [("stage2", 0)]
    assert written in ([], [0])  # only stage 2's epoch 0, if it validated at least as well
    assert torch.equal(job.model.item_table, before["state_dict"]["item_table"])  # frozen from the checkpoint's table
    trained = job.model.backbone.encoder.layer[0].attention.self.query_global.weight
    assert not torch.equal(trained, before["state_dict"]["backbone.encoder.layer.0.attention.self.query_global.weight"])
    adam_steps = {float(state["step"]) for state in job.trainer.optimizer.state.values()}
    assert adam_steps == {len(job.train_data)}  # stage 2's steps only: the checkpoint's optimizer was not carried on


def test_mlm_masks_whole_words_of_item_tokens_only(text_data, in_tmp_cwd):
    job = build_job("Recformer", "a,b", config_dict=settings(text_data, train_stage="pretrain"), loaders=False,
                    with_trainer=False, log=False)
    model = job.model
    model.mlm_probability = 1.0  # every word: all key/value tokens become labels, never [CLS] or padding
    inputs = model.sequence_inputs(torch.tensor([[3, 4, 5]]), torch.tensor([3]))
    masked, labels = model.mask_words(inputs)
    item_token = (inputs["token_type_ids"] == 1) | (inputs["token_type_ids"] == 2)
    assert torch.equal(labels >= 0, item_token) and torch.equal(labels[item_token], inputs["input_ids"][item_token])
    model.mlm_probability = 0.5
    torch.manual_seed(0)
    _, labels = model.mask_words(inputs)
    ids = inputs["input_ids"][0]
    for position in range(1, ids.shape[0]):  # a continuation (##…) token is masked exactly when its word is
        if item_token[0, position] and not model.word_start[ids[position]]:
            assert (labels[0, position] >= 0) == (labels[0, position - 1] >= 0)


def test_pretrain_then_zero_shot_then_finetune_on_another_catalogue(text_data, in_tmp_cwd):
    from recbole_text import run

    # train only (no validation, no test: pretraining data can be large), 4 batches: one epoch of 3 and one cut short
    pretrained = run("Recformer", "a,b", config_dict=settings(text_data, train_stage="pretrain", epochs=5,
                                                             train_strategy="sampled_prefix", eval_step=0,
                                                             max_steps=4))
    assert pretrained["dataset"] == "a+b" and pretrained["history"][0]["train_loss"] > 0
    assert [r["valid_score"] for r in pretrained["history"]] == [None, None] and pretrained["test_result"] == {}
    assert pretrained["stopped_by"] == "max_steps"
    saved = torch.load(pretrained["checkpoint"], weights_only=True)["state_dict"]
    assert "mlm_bias" in saved
    zero_shot = run("Recformer", "c", config_dict=settings(text_data, pretrained=pretrained["checkpoint"], epochs=0))
    assert zero_shot["epochs_run"] == 0 and 0 <= zero_shot["test_result"]["ndcg@10"] <= 1
    job = build_job("Recformer", "c", config_dict=settings(text_data, pretrained=pretrained["checkpoint"]), log=False)
    name = "backbone.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(job.model.state_dict()[name], saved[name])
    assert job.model.item_table.shape[0] == job.dataset.item_num != saved["item_table"].shape[0]
    job.trainer.fit(job.train_data, job.valid_data, saved=True)
    assert job.trainer.evaluate(job.test_data)["ndcg@10"] >= 0


def test_pretraining_masks_and_predicts_words_of_the_target_item_too(text_data, in_tmp_cwd):
    job = build_job("Recformer", "a", config_dict=settings(text_data, train_stage="pretrain", mlm_probability=1.0),
                    with_trainer=False, log=False)
    model, real_mask_words, masked_counts = job.model, job.model.mask_words, []

    def item_side_only(inputs):  # the first call masks the sequences, the second the target items
        masked, labels = real_mask_words(inputs)
        masked_counts.append(int((labels >= 0).sum()))
        return (inputs, torch.full_like(labels, -1)) if len(masked_counts) == 1 else (masked, labels)

    model.mask_words = item_side_only
    model.calculate_loss(next(iter(job.train_data))).backward()
    assert len(masked_counts) == 2 and masked_counts[1] > 0
    assert model.mlm_transform[0].weight.grad.abs().sum() > 0  # the items' masked words were predicted


def test_word_embeddings_are_frozen_in_pretraining(text_data, in_tmp_cwd):
    job = build_job("Recformer", "a", config_dict=settings(text_data, train_stage="pretrain"), loaders=False,
                    with_trainer=False, log=False)
    assert not job.model.backbone.embeddings.word_embeddings.weight.requires_grad
    finetune = build_job("Recformer", "a", config_dict=settings(text_data), loaders=False, with_trainer=False,
                         log=False)
    assert finetune.model.backbone.embeddings.word_embeddings.weight.requires_grad


def test_one_epoch_on_ml100k_text_through_the_cli(in_tmp_cwd):
    """The packaged MiniLM as a Longformer on ml-100k-text's titles, years and genres: one epoch of one RSS
    example per user (CPU-sized: 64 tokens per sequence), stage 2 off; the CLI prints test metrics."""
    from conftest import cli_run_record

    record = cli_run_record("Recformer", in_tmp_cwd, "--epochs=1", "--finetune_stage2=False", "--train_strategy=rss",
                            "--rss_pct=0", "--max_token_num=64", "--max_item_num=10", "--train_batch_size=32",
                            "--eval_batch_size=128")
    assert record["epochs_run"] == 1 and record["model"] == "Recformer"
    assert record["test_result"]["recall@10"] > 0.006  # a random ranking's: 10 / 1682
    assert list((in_tmp_cwd / "data" / "ml-100k-text" / ".text_cache").glob("ml-100k-text-tokens-*.npz"))


def test_items_added_at_inference_time_are_ranked_from_their_text(text_data, in_tmp_cwd, tmp_path):
    from recbole_text import run
    from recbole_text.data.atomic import write_item_text
    from recbole_text.recommend import RecommendError, Recommender

    trained = run("Recformer", "c", config_dict=settings(text_data, epochs=1, finetune_stage2=False))
    rec = Recommender.from_checkpoint(trained["checkpoint"])
    new_items = tmp_path / "new.itemtext"
    write_item_text(new_items, ["title", "brand"], [("twin", {"title": "Item number 7", "brand": "Brand 1"}),
                                                     ("fresh", {"title": "A brand new gadget", "brand": "Acme"})])
    assert rec.add_items(new_items) == ["twin", "fresh"]
    # catalogue items are scored from the checkpoint's table (encoded at the start of the best epoch), new items
    # by the final weights; with the table re-encoded by those weights, i7 and its twin score alike
    rec.model.refresh_item_table()
    ranking = {r["item"]: r["score"] for r in rec.recommend(["i3", "i4"], k=rec.n_items, exclude_seen=False)}
    # same text, same tokens, same vector: only the popularity prior (the profile's auto) tells them apart, and
    # an added item has no interactions (n_i = 0)
    prior = rec.model.popularity_prior * float(rec.model.log_popularity[rec._ids["i7"]])
    assert ranking["twin"] + prior == pytest.approx(ranking["i7"], abs=1e-4)
    assert "fresh" in ranking
    nothing = tmp_path / "nothing.itemtext"
    write_item_text(nothing, ["colour"], [("blank", {"colour": "red"})])
    with pytest.raises(RecommendError, match=r"nothing.itemtext: 1 of the items have none of the attributes"):
        rec.add_items(nothing)


def test_a_two_trial_sweep_tokenises_the_catalogue_once_and_trains_both_trials(text_data, in_tmp_cwd, tmp_path,
                                                                                monkeypatch, ray_session):
    import csv

    import recbole_text.text.item_tokens as item_tokens_module
    from recbole_text.tune import tune

    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {grid: [0.0001, 0.003]}\n")
    calls = []
    real = item_tokens_module.tokenize_items
    monkeypatch.setattr(item_tokens_module, "tokenize_items", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = tmp_path / "token_cache"
    summary = tune("Recformer", "c", space, config_dict=settings(text_data, epochs=1, stage2_epochs=1,
                                                                text_cache_dir=str(cache)),
                   experiment_dir=tmp_path / "ray_results", verbose=0,
                   scheduler="fifo")  # ASHA may stop the worse trial after epoch 1, when it reports second
    assert len(calls) == 1 and len(list(cache.glob("c-tokens-*.npz"))) == 1  # tokenised once, by the driver
    with open(Path(summary["experiment"]) / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["TERMINATED"] * 2
    assert [r["epochs_run"] for r in rows] == ["2", "2"]  # each trial trains both stages, as run() does
    for history in summary["histories"].values():
        assert [(h["stage"], h["epochs_done"]) for h in history] == [("finetune", 1), ("stage2", 2)]
    assert {r["learning_rate"] for r in rows} == {"0.0001", "0.003"}
    assert 0 <= summary["best"]["best_valid_ndcg@10"] <= 1


def test_plan_epochs_shares_what_fits_between_the_stages():
    from recbole_text.trainer import plan_epochs

    assert plan_epochs([5, 2], [1, 0], 0, 100) == [5, 2]  # everything fits: as configured
    assert plan_epochs([5, 2], [1, 0], 0, 2) == [1, 1]
    assert plan_epochs([5, 2], [1, 0], 0, 6) == [4, 2]
    assert plan_epochs([5, 2], [1, 0], 0, 1) == [1, 0]  # no time for stage 2
    assert plan_epochs([5, 2], [3, 0], 0, 2) == [3, 0]  # trained epochs are kept
    assert plan_epochs([5, 2], [3, 1], 1, 4) == [3, 1]  # a finished stage keeps what it trained
    assert plan_epochs([5, 2], [3, 0], 1, 9) == [3, 2]


@pytest.mark.parametrize("budget, stage2, planned, epochs", [
    (2500.0, True, {"finetune": 1, "stage2": 1}, [("finetune", 5), ("stage2", 1)]),
    (1500.0, True, {"finetune": 1, "stage2": 0}, [("finetune", 5)]),  # no time left for stage 2: skipped
    (3500.0, False, {"finetune": 3}, [("finetune", 5), ("finetune", 3), ("finetune", 3)]),
])
def test_train_budget_plans_the_stages_and_their_schedules(budget, stage2, planned, epochs, text_data, in_tmp_cwd,
                                                           monkeypatch):
    """Every epoch takes 1,000 s on a fake clock; 5 (+ 2) epochs are configured. ``epochs``: each epoch's stage
    and the epochs its linear schedule spans when it starts."""
    import recbole_text.trainer as trainer_module
    from recbole_text.quick_start import train_stages

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "perf_counter", lambda: clock[0])
    job = build_job("Recformer", "c", log=False, config_dict=settings(
        text_data, epochs=5, stage2_epochs=2, finetune_stage2=stage2, stopping_step=10, lr_scheduler="linear",
        train_budget_s=budget))
    trainer, steps = job.trainer, len(job.train_data)
    started = []
    trainer.epoch_start_callbacks.append(lambda epoch: started.append((trainer.stage, trainer._schedule_total)))
    trainer.epoch_start_callbacks.append(lambda epoch: clock.__setitem__(0, clock[0] + 1000.0))
    train_stages(job, saved=True, resume=None, show=False)
    assert [r["stage"] for r in trainer.history] == [stage for stage, _ in epochs]
    assert started == [(stage, n * steps) for stage, n in epochs]
    assert trainer.planned_epochs == planned


@pytest.mark.parametrize("budget, planned", [(1500.0, {"finetune": 1, "stage2": 0}),
                                             (2500.0, {"finetune": 1, "stage2": 1})])
def test_train_budget_anneals_within_the_first_epoch_when_it_is_all_that_fits(budget, planned, text_data,
                                                                             in_tmp_cwd, monkeypatch):
    """An epoch takes 100 s before its first batch and 900 s of batches on a fake clock; 5 + 2 epochs are
    configured. A tenth into epoch 1 the plan learns that one epoch of stage 1 fits, so its linear schedule
    reaches 0 at the end of that epoch (laid over 5 epochs it would still be at 4/5 of its peak)."""
    import recbole_text.trainer as trainer_module
    from recbole_text.quick_start import train_stages

    clock = [0.0]
    monkeypatch.setattr(trainer_module, "perf_counter", lambda: clock[0])
    job = build_job("Recformer", "c", log=False, config_dict=settings(
        text_data, epochs=5, stage2_epochs=2, finetune_stage2=True, stopping_step=10, lr_scheduler="linear",
        warmup_steps=0, train_batch_size=2, train_budget_s=budget))
    trainer, model, steps = job.trainer, job.model, len(job.train_data)
    assert steps >= 4  # the plan comes after the first batch, with more to go
    loss = model.calculate_loss
    monkeypatch.setattr(model, "calculate_loss",
                        lambda batch: clock.__setitem__(0, clock[0] + 900.0 / steps) or loss(batch), raising=False)
    trainer.epoch_start_callbacks.append(lambda epoch: clock.__setitem__(0, clock[0] + 100.0))
    schedules, rates = [], []
    trainer.epoch_start_callbacks.append(lambda epoch: schedules.append(trainer._schedule_total))
    trainer.epoch_callbacks.append(lambda record: rates.append((record["stage"],
                                                                trainer.optimizer.param_groups[0]["lr"])))
    train_stages(job, saved=True, resume=None, show=False)
    assert trainer.planned_epochs == planned
    assert schedules[0] == 5 * steps and trainer.history[0]["train_s"] == pytest.approx(1000.0)
    assert rates == [(stage, 0.0) for stage, epochs in planned.items() if epochs]


def test_a_native_longformer_checkpoint_is_a_backbone_by_local_path(text_data, tmp_path, in_tmp_cwd):
    """plm_name = a Longformer folder (as a cached allenai/longformer-base-4096; here tiny and random): its weights
    load as saved, its one token-type row becomes Recformer's four, max_token_num is bounded by its positions
    (counted from pad + 1), the dense and Hugging Face attentions agree on it, and an epoch trains it."""
    import sys

    from transformers import LongformerModel

    from conftest import REPO
    from recbole_text.config import ConfigError

    sys.path.insert(0, str(REPO / "benchmarks"))
    from random_longformer import save_random_longformer

    folder = save_random_longformer(tmp_path / "longformer", layers=2, hidden=32, heads=2, intermediate=64,
                                    positions=130, window=8)
    saved = LongformerModel.from_pretrained(str(folder), add_pooling_layer=False)
    config = settings(text_data, plm_name=str(folder), max_token_num=128)
    dense = build_job("Recformer", "c", config_dict=config, log=False)
    backbone = dense.model.backbone
    assert backbone.encoder.layer[0].attention.self.one_sided_attn_window_size == 8  # attention_window 16, not 8
    types = backbone.embeddings.token_type_embeddings.weight
    assert types.shape[0] == 4 and torch.equal(types, saved.embeddings.token_type_embeddings.weight.expand(4, -1))
    assert torch.equal(backbone.encoder.layer[1].output.dense.weight, saved.encoder.layer[1].output.dense.weight)
    with pytest.raises(ConfigError, match=r"max_token_num=129 must be in 2\.\.128"):
        build_job("Recformer", "c", config_dict={**config, "max_token_num": 129}, loaders=False, with_trainer=False,
                  log=False)
    chunked = build_job("Recformer", "c", config_dict={**config, "attention_impl": "longformer"}, loaders=False,
                        with_trainer=False, log=False).model
    chunked.load_state_dict(dense.model.state_dict())
    seq, length = torch.tensor([[3, 4, 5, 6, 7, 8, 9], [6, 0, 0, 0, 0, 0, 0]]), torch.tensor([7, 1])
    with torch.no_grad():
        expected = chunked.eval().encode_sequence(seq, length)
        assert torch.allclose(dense.model.eval().encode_sequence(seq, length), expected, atol=1e-5)
    start = backbone.encoder.layer[0].attention.self.query.weight.detach().clone()
    dense.trainer.fit(dense.train_data, dense.valid_data, saved=False)
    assert len(dense.trainer.history) == 1 and torch.isfinite(torch.tensor(dense.trainer.history[0]["train_loss"]))
    assert not torch.equal(backbone.encoder.layer[0].attention.self.query.weight, start)
