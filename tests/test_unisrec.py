"""UniSRec: the MoE whitening adaptor, cosine scores, training stages, parameter-efficient finetuning."""
from __future__ import annotations

import json

import pytest
import torch

from recbole_text.model.sequential_recommender.unisrec import MoEAdaptor


def test_adaptor_shapes_and_expert_definition():
    torch.manual_seed(0)
    adaptor = MoEAdaptor(n_exps=3, plm_size=8, d=5, dropout=0.0).eval()
    with torch.no_grad():
        adaptor.bias.normal_()
        adaptor.gate.normal_()
    x = torch.randn(4, 7, 8)
    out = adaptor(x)
    assert out.shape == (4, 7, 5)
    gates = torch.softmax(x @ adaptor.gate, dim=-1)  # (4, 7, 3)
    experts = torch.stack([(x - adaptor.bias[k]) @ adaptor.weight[k] for k in range(3)], dim=-2)  # (4, 7, 3, 5)
    assert torch.allclose(out, (gates[..., None] * experts).sum(-2), atol=1e-5)


def test_gate_rows_sum_to_one_and_start_uniform():
    adaptor = MoEAdaptor(n_exps=8, plm_size=16, d=4, dropout=0.2).train()
    x = torch.randn(32, 16)
    gates = adaptor.gates(x)
    assert torch.allclose(gates.sum(-1), torch.ones(32))
    assert torch.allclose(adaptor.eval().gates(x), torch.full((32, 8), 1 / 8))  # W_g = 0 at start


def test_gate_noise_only_in_training():
    adaptor = MoEAdaptor(n_exps=4, plm_size=6, d=3, dropout=0.0)
    with torch.no_grad():
        adaptor.gate.normal_()
        adaptor.gate_noise.normal_()
    x = torch.randn(10, 6)
    adaptor.eval()
    assert torch.equal(adaptor.gates(x), adaptor.gates(x))
    assert torch.allclose(adaptor.gates(x), torch.softmax(x @ adaptor.gate, -1))
    adaptor.train()
    torch.manual_seed(1)
    first = adaptor.gates(x)
    torch.manual_seed(2)
    assert not torch.allclose(first, adaptor.gates(x))


# ---------------------------------------------------------------- the model
from conftest import FAST  # noqa: E402

from recbole_text.job import build_job  # noqa: E402


def unisrec_settings(text_data, **more):
    root, bert = text_data
    return {**FAST, "data_path": str(root), "plm_name": str(bert), "plm_dtype": "fp32", "hidden_size": 16,
            "n_heads": 2, "n_exps": 2, "learning_rate": 0.005, **more}


def test_scores_are_cosines_over_temperature(text_data, in_tmp_cwd):
    job = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data), log=False)
    model = job.model.eval()
    batch = next(iter(job.test_data))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
    assert scores.shape == (len(batch), model.n_items)
    assert scores.abs().max() <= 1 / model.temperature + 1e-4
    assert "plm_embedding" not in model.state_dict()  # rebuilt from the text cache, never saved


def test_inductive_ignores_ids_transductive_uses_them(text_data, in_tmp_cwd):
    for stage, uses_ids in (("inductive_ft", False), ("transductive_ft", True)):
        job = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data, train_stage=stage), log=False)
        model = job.model.eval()
        batch = next(iter(job.test_data))[0]
        with torch.no_grad():
            before = model.full_sort_predict(batch)
            model.item_embedding.weight.normal_()
            after = model.full_sort_predict(batch)
        assert torch.allclose(before, after) is not uses_ids, stage


def test_parameter_efficient_finetuning_freezes_encoder_and_positions(text_data, in_tmp_cwd):
    job = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data, freeze_encoder=True, epochs=1,
                                                                  train_stage="transductive_ft"), log=False)
    frozen = {k: v.clone() for k, v in job.model.state_dict().items() if k.startswith(("encoder.", "position_"))}
    adaptor = job.model.adaptor.weight.detach().clone()
    job.trainer.fit(job.train_data, job.valid_data, saved=False)
    state = job.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert not torch.equal(job.model.adaptor.weight, adaptor)
    full = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data, freeze_encoder=False), log=False)
    assert all(p.requires_grad for p in full.model.encoder.parameters())


def test_pretrain_loss_does_not_count_same_target_rows_as_negatives():
    from recbole_text.model.losses import in_batch_info_nce

    anchors, others = torch.randn(4, 3), torch.randn(4, 3)
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    logits = torch.nn.functional.normalize(anchors, dim=-1) @ torch.nn.functional.normalize(others, dim=-1).T / 0.5
    expected = -sum(logits[b, b] - torch.logsumexp(logits[b][~same[b] | (torch.arange(4) == b)], 0) for b in range(4)) / 4
    assert in_batch_info_nce(anchors, others, same, 0.5).item() == pytest.approx(expected.item(), rel=1e-5)


def test_multi_domain_pretrain_then_finetune_on_another_catalogue(text_data, in_tmp_cwd):
    from recbole_text import run

    pretrained = run("UniSRec", "a,b", config_dict=unisrec_settings(text_data, train_stage="pretrain",
                                                                    train_strategy="prefix", epochs=2))
    saved = torch.load(pretrained["checkpoint"], weights_only=True)["state_dict"]
    assert pretrained["dataset"] == "a+b" and pretrained["history"][-1]["train_loss"] > 0
    job = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data, train_stage="inductive_ft",
                                                                  pretrained=pretrained["checkpoint"]), log=False)
    state = job.model.state_dict()
    for name in ("adaptor.weight", "adaptor.gate", "encoder.layer.0.multi_head_attention.query.weight"):
        assert torch.equal(state[name], saved[name]), name
    assert state["item_embedding.weight"].shape[0] == job.dataset.item_num != saved["item_embedding.weight"].shape[0]
    zero_shot = job.trainer.evaluate(job.test_data, load_best_model=False)
    # epochs=0: the pretrained model ranks the new catalogue as it is (zero-shot), no training step
    evaluated = run("UniSRec", "c", config_dict=unisrec_settings(
        text_data, train_stage="inductive_ft", epochs=0, pretrained=pretrained["checkpoint"],
        metrics=["Recall", "NDCG", "MRR", "ItemCoverage", "AveragePopularity"]))  # these need training statistics
    assert evaluated["epochs_run"] == 0
    assert evaluated["test_result"]["ndcg@10"] == pytest.approx(zero_shot["ndcg@10"], abs=1e-4)
    assert 0 < evaluated["test_result"]["itemcoverage@10"] <= 1 and evaluated["test_result"]["averagepopularity@10"] > 0
    job.trainer.fit(job.train_data, job.valid_data, saved=True)
    assert job.trainer.evaluate(job.test_data)["ndcg@10"] >= 0


def test_a_ray_driver_encodes_the_item_texts_once_before_its_trials(text_data, in_tmp_cwd, monkeypatch):
    import recbole_text.text as text
    from recbole_text.job import prepare_driver

    calls, original = [], text.ensure_item_embeddings
    monkeypatch.setattr(text, "ensure_item_embeddings", lambda c, d: calls.append(c["dataset"]) or original(c, d))
    _, _, overrides = prepare_driver("UniSRec", "c", config_dict=unisrec_settings(text_data))
    assert calls == ["c"]
    prepare_driver("gSASRec", "c", config_dict={**FAST, "data_path": str(text_data[0]), "num_negatives": 8})
    assert calls == ["c"]  # ID models read no text


def test_a_relative_text_cache_folder_is_made_absolute_for_the_workers(text_data, in_tmp_cwd):
    from recbole_text.job import prepare_driver

    _, _, overrides = prepare_driver("UniSRec", "c", config_dict=unisrec_settings(text_data, text_cache_dir="cache"))
    assert overrides["text_cache_dir"] == str(in_tmp_cwd / "cache")


def test_items_added_at_inference_time_are_ranked_from_their_text(text_data, in_tmp_cwd, tmp_path, capsys):
    from recbole_text import run
    from recbole_text.data.atomic import write_item_text
    from recbole_text.recommend import RecommendError, Recommender, recommend

    trained = run("UniSRec", "c", config_dict=unisrec_settings(text_data, epochs=1))
    rec = Recommender.from_checkpoint(trained["checkpoint"])
    before = rec.recommend(["i3", "i4", "i5"], k=rec.n_items, exclude_seen=False)
    new_items = tmp_path / "new.itemtext"
    # "twin" has exactly i7's text: from text alone it must score exactly as i7 does
    write_item_text(new_items, ["title", "brand"], [("twin", {"title": "Item number 7", "brand": "Brand 1"}),
                                                     ("fresh", {"title": "A brand new gadget", "brand": "Acme"})])
    assert rec.add_items(new_items) == ["twin", "fresh"]
    assert rec.add_items(new_items) == []  # the same items again: nothing new
    after = rec.recommend(["i3", "i4", "i5"], k=rec.n_items, exclude_seen=False)
    by_item = {r["item"]: r for r in after}
    assert len(after) == len(before) + 2 and {"twin", "fresh"} <= set(by_item)
    assert by_item["twin"]["score"] == pytest.approx(by_item["i7"]["score"], abs=1e-4)
    assert by_item["fresh"]["attributes"] == {"title": "A brand new gadget", "brand": "Acme"}
    old = {r["item"]: r["score"] for r in before}
    assert all(by_item[item]["score"] == pytest.approx(score, abs=1e-5) for item, score in old.items())
    # the function form, as the issue names it
    top = recommend(trained["checkpoint"], ["i3", "i4"], k=rec.n_items + 2, extra_items=new_items)
    assert {"twin", "fresh"} <= {r["item"] for r in top}
    from recbole_text.recommend import main

    assert main(["--checkpoint", trained["checkpoint"], "--history", "i3 i4", "--k", "60", "--json",
                 "--extra_items", str(new_items)]) == 0
    assert {"twin", "fresh"} <= {r["item"] for r in json.loads(capsys.readouterr().out)}
    with pytest.raises(RecommendError, match="not used in a history"):
        rec.recommend(["i3", "twin"])
    clash = tmp_path / "clash.itemtext"
    write_item_text(clash, ["title"], [("i9", {"title": "Something else"})])
    with pytest.raises(RecommendError, match=r"clash.itemtext.*'i9' already in the catalogue"):
        rec.add_items(clash)
    gsasrec = run("gSASRec", "c", config_dict={**unisrec_settings(text_data, epochs=1), "num_negatives": 4})
    with pytest.raises(RecommendError, match="need a text model"):
        Recommender.from_checkpoint(gsasrec["checkpoint"]).add_items(new_items)


def test_length_grouped_states_equal_one_padded_pass(text_data, in_tmp_cwd):
    job = build_job("UniSRec", "c", config_dict=unisrec_settings(text_data), loaders=False, with_trainer=False,
                    log=False)
    model = job.model.eval()
    torch.manual_seed(0)
    lengths = torch.tensor([1, 7, 3, 10, 2, 5, 9, 4, 6])
    seq = torch.randint(1, model.n_items, (9, 10)) * (torch.arange(10)[None, :] < lengths[:, None])
    with torch.no_grad():
        table = model.item_table()
        grouped = model.last_states(seq, lengths, table)
        padded = model.gather_indexes(model.encode(seq, lengths, table), lengths - 1)
    assert torch.allclose(grouped, padded, atol=1e-5)


def test_two_epochs_on_ml100k_text_through_the_cli(in_tmp_cwd):
    """The packaged MiniLM encodes the 1,682 movie titles (cached), UniSRec trains 2 epochs, the CLI prints test
    metrics well above chance (recall@10 of a random ranking: 10 / 1682 ≈ 0.006)."""
    from conftest import cli_run_record

    record = cli_run_record("UniSRec", in_tmp_cwd, "--epochs=2", "--hidden_size=64", "--inner_size=128", timeout=600)
    assert record["epochs_run"] == 2 and record["model"] == "UniSRec"
    assert record["test_result"]["recall@10"] > 0.015
    assert list((in_tmp_cwd / "data" / "ml-100k-text" / ".text_cache").glob("ml-100k-text-*.npy"))
