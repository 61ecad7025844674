"""Sequence-level training, RSS sampling, the gBCE/CE/BCE losses and the package's sequential models."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare

from recbole_text.cli import main
from recbole_text.config import TextConfig
from recbole_text.data import create_dataset, data_preparation
from recbole_text.data.sequence_data import SequenceTrainDataLoader, rss_batch, rss_draw, shifted_batch
from recbole_text.model import losses
from recbole_text.quick_start import run

from conftest import FAST

# ---------------------------------------------------------------- losses


def test_gbce_beta_formula():
    k, n, t = 256, 3417, 0.75
    alpha = k / (n - 1)
    assert losses.gbce_beta(k, n, t) == pytest.approx(alpha * (t * (1 - 1 / alpha) + 1 / alpha))
    assert losses.gbce_beta(k, n, t) == pytest.approx(1 - t * (1 - alpha))
    assert losses.gbce_beta(k, n, 0.0) == 1.0
    assert losses.gbce_beta(k, n, 1.0) == pytest.approx(alpha)


def random_case(batch=3, positions=4, k=5, items=20, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, positions, d, generator=g)
    embeddings = torch.randn(items, d, generator=g)
    targets = torch.randint(1, items, (batch, positions, 1), generator=g)
    negatives = torch.randint(1, items, (batch, k), generator=g)
    return states, embeddings, targets, negatives


def test_gbce_with_t0_is_bce_over_positive_and_negatives():
    states, emb, targets, negatives = random_case()
    collide = negatives[:, None, :] == targets  # (B, P, k): such negatives are ignored
    pos = (states * emb[targets[..., 0]]).sum(-1)  # (B, P)
    neg = states @ emb[negatives].transpose(1, 2)  # (B, P, k)
    logits = torch.cat([pos[..., None], neg], dim=-1)
    labels = torch.zeros_like(logits)
    labels[..., 0] = 1
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    bce[..., 1:] = bce[..., 1:] * ~collide
    expected = bce.mean()
    assert losses.gbce(states, targets, emb, negatives, beta=1.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_gbce_beta_scales_only_the_positive_term():
    states, emb, targets, negatives = random_case()
    base = losses.gbce(states, targets, emb, negatives, beta=1.0)
    pos_only = losses.gbce(states, targets, emb, negatives[:, :0], beta=1.0) / 1  # k=0: positive term alone
    k = negatives.shape[1]
    neg_part = base - pos_only / (k + 1)
    half = losses.gbce(states, targets, emb, negatives, beta=0.5)
    assert half.item() == pytest.approx((neg_part + 0.5 * pos_only / (k + 1)).item(), rel=1e-5)


def test_negative_equal_to_the_target_is_ignored():
    states, emb, targets, _ = random_case(positions=1, k=3)
    negatives = (targets[:, 0, :1] % 19) + 1 + torch.zeros(1, 3, dtype=torch.long)  # never the target
    clean = losses.gbce(states, targets, emb, negatives, beta=1.0)
    with_collision = torch.cat([negatives, targets[:, 0, :1]], dim=1)  # the positive itself as a 4th negative
    collided = losses.gbce(states, targets, emb, with_collision, beta=1.0)
    assert collided.item() == pytest.approx(clean.item() * 4 / 5, rel=1e-5)  # same sum, divided by k+1 = 5


@pytest.mark.parametrize("loss", ["CE", "BCE", "gBCE", "LambdaRank"])
def test_gradients_are_finite_for_extreme_logits(loss):
    states, emb, targets, negatives = random_case()
    states = (states * 1e4).requires_grad_()
    emb = (emb * 1e3).requires_grad_()
    if loss == "CE":
        value = losses.softmax_ce(states, targets, emb)
    elif loss == "BCE":
        value = losses.full_bce(states, targets, emb)
    elif loss == "LambdaRank":
        value = losses.lambdarank(states, targets, emb)
    else:
        value = losses.gbce(states, targets, emb, negatives, beta=0.3)
    value.backward()
    assert torch.isfinite(value) and value.item() > 0
    assert torch.isfinite(states.grad).all() and torch.isfinite(emb.grad).all()


def test_gbce_gradient_matches_the_indexed_definition():
    torch.manual_seed(4)
    states = torch.randn(3, 5, 8, requires_grad=True)
    emb = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(0, 30, (3, 5, 2))
    negatives = torch.randint(1, 30, (3, 7))
    losses.gbce(states, targets, emb, negatives, beta=0.4).backward()
    got_states, got_emb = states.grad.clone(), emb.grad.clone()
    states.grad = emb.grad = None
    pos = F.softplus(-(states[:, :, None, :] * emb[targets]).sum(-1))
    neg = F.softplus(states @ emb[negatives].transpose(1, 2)) * ~(negatives[:, None, None, :] == targets[..., None]).any(2)
    mask = targets > 0
    per_position = (0.4 * (pos * mask).sum(-1) / mask.sum(-1).clamp(min=1) + neg.sum(-1)) / 8
    rows = mask.any(-1)
    ((per_position * rows).sum() / rows.sum()).backward()
    assert torch.allclose(got_states, states.grad, atol=1e-6) and torch.allclose(got_emb, emb.grad, atol=1e-6)


def test_cpu_dropout_keeps_1_minus_p_scaled_and_is_identity_in_eval():
    from recbole_text.model.layers import Dropout

    torch.manual_seed(0)
    layer, x = Dropout(0.3), torch.ones(200, 500, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # no gradient through a dropped element
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_softmax_ce_and_full_bce_match_their_definitions_and_skip_padding():
    states, emb, targets, _ = random_case(positions=2)
    targets[0, 1, 0] = 0  # a padded position: no loss
    logits = states @ emb.T
    logits[..., 0] = float("-inf")
    mask = targets[..., 0] > 0
    ce = -torch.log_softmax(logits, -1).gather(2, targets)[..., 0][mask].mean()
    assert losses.softmax_ce(states, targets, emb).item() == pytest.approx(ce.item(), rel=1e-5)

    labels = torch.zeros_like(logits[..., 1:])
    for b, p in zip(*torch.nonzero(mask, as_tuple=True)):
        labels[b, p, targets[b, p, 0] - 1] = 1
    bce = F.binary_cross_entropy_with_logits((states @ emb.T)[..., 1:], labels, reduction="none").mean(-1)[mask].mean()
    assert losses.full_bce(states, targets, emb).item() == pytest.approx(bce.item(), rel=1e-5)


def test_lambdarank_matches_its_pairwise_definition():
    torch.manual_seed(5)
    states, emb = torch.randn(2, 3, 6), torch.randn(9, 6)
    targets = torch.tensor([[[2, 5, 2], [0, 0, 0], [7, 0, 0]],
                            [[1, 8, 3], [4, 0, 0], [0, 0, 0]]])  # a repeated target, padded slots and rows
    expected, rows = 0.0, 0
    for b in range(2):
        for p in range(3):
            positive = {int(t) for t in targets[b, p] if t > 0}
            if not positive:
                continue
            rows += 1
            scores = (states[b, p] @ emb.T)[1:]  # items 1..8
            rank = {item: r for r, item in enumerate((scores.argsort(descending=True) + 1).tolist())}
            gain = lambda item: 1 / math.log2(rank[item] + 2)
            idcg = sum(1 / math.log2(r + 2) for r in range(len(positive)))
            for i in positive:
                for j in set(range(1, 9)) - positive:
                    delta = abs(gain(i) - gain(j)) / idcg
                    expected += delta * F.softplus(scores[j - 1] - scores[i - 1]).item()
    assert losses.lambdarank(states, targets, emb).item() == pytest.approx(expected / rows, rel=1e-5)


def test_lambdarank_pushes_a_target_up_and_the_items_above_it_down():
    torch.manual_seed(6)
    states, emb = torch.randn(1, 1, 4, requires_grad=True), torch.randn(12, 4, requires_grad=True)
    scores = (states[0, 0] @ emb.T)[1:]
    target = int(scores.argsort()[0]) + 1  # the lowest-ranked item is the target
    losses.lambdarank(states, torch.tensor([[[target]]]), emb).backward()
    step = -emb.grad @ states[0, 0]  # how a gradient step on the item table changes each item's score
    assert step[target] > 0 and (step[1:][torch.arange(1, 12) != target] <= 0).all()


def test_full_bce_target_item_1_next_to_padding():
    states, emb, _, _ = random_case(batch=1, positions=1)
    targets = torch.tensor([[[1, 0, 0]]])  # item 1 plus two padding slots (both map to column 0)
    logits = (states @ emb.T)[..., 1:]
    labels = torch.zeros_like(logits)
    labels[..., 0] = 1
    expected = F.binary_cross_entropy_with_logits(logits, labels)
    assert losses.full_bce(states, targets, emb).item() == pytest.approx(expected.item(), rel=1e-5)


# ---------------------------------------------------------------- RSS and sequence data


def test_rss_draws_follow_recency_weights():
    n, alpha = 10, 0.8
    lengths = torch.full((40_000,), n)
    mask = rss_draw(lengths, n, alpha, pct=0.1, generator=torch.Generator().manual_seed(7))  # 1 draw each
    assert (mask.sum(1) == 1).all()
    counts = mask.sum(0).numpy()
    weights = alpha ** (n - np.arange(1, n + 1))
    expected = weights / weights.sum() * len(lengths)
    assert chisquare(counts, expected).pvalue > 0.001
    assert counts[-1] > counts[0] * 5  # the most recent item is drawn far more often than the oldest
    uniform = rss_draw(lengths, n, 1.0, pct=0.1, generator=torch.Generator().manual_seed(7)).sum(0).numpy()
    assert chisquare(uniform).pvalue > 0.001


def test_rss_draw_count_is_max_1_floor_pct_n_with_duplicates_collapsed():
    lengths = torch.tensor([1, 4, 5, 23, 40])
    mask = rss_draw(lengths, 40, 0.8, pct=0.2, generator=torch.Generator().manual_seed(0))
    drawn = mask.sum(1)
    allowed = torch.clamp((lengths * 0.2).floor().long(), min=1)
    assert (drawn >= 1).all() and (drawn <= allowed).all()
    assert not mask[torch.arange(40)[None, :].expand(5, 40) >= lengths[:, None]].any()  # never past the end


def test_rss_batch_removes_targets_from_the_input():
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(2, 30, (200,))
    sequences = torch.zeros(200, 31, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):  # unique items per sequence so items identify positions
        sequences[row, :n] = torch.randperm(500, generator=generator)[:n] + 1
    batch = rss_batch(sequences, lengths, max_len=12, alpha=0.8, pct=0.2, generator=generator)
    for row, n in enumerate(lengths.tolist()):
        original = sequences[row, :n].tolist()
        targets = {t for t in batch["targets"][row].tolist() if t}
        m = int(batch["input_lengths"][row])
        inputs = batch["inputs"][row, :m].tolist()
        assert targets and not targets & set(inputs)
        assert (batch["inputs"][row, m:] == 0).all()
        kept = [item for item in original if item not in targets]
        assert inputs == kept[-12:]  # order kept, the most recent max_len items


@pytest.mark.parametrize("pct", [1.0, 3.0])
def test_rss_leaves_at_least_one_input_item_at_any_pct(pct):
    """⌊pct·n⌋ ≥ n draws could take every item of a short sequence, leaving an empty input (index −1)."""
    lengths = torch.randint(2, 5, (2000,))
    sequences = (torch.arange(1, 5)[None, :] * (torch.arange(4)[None, :] < lengths[:, None])).long()
    batch = rss_batch(sequences, lengths, max_len=4, alpha=1.0, pct=pct, generator=torch.Generator().manual_seed(1))
    assert (batch["input_lengths"] >= 1).all()
    drawn = (batch["targets"] > 0).sum(1)
    assert (drawn <= lengths - 1).all() and (drawn == lengths - 1).any()


def test_shifted_batch_targets_are_the_next_items():
    sequences = torch.tensor([[5, 6, 7, 8], [9, 3, 0, 0]])
    batch = shifted_batch(sequences, torch.tensor([4, 2]))
    assert batch["inputs"].tolist() == [[5, 6, 7], [9, 0, 0]]
    assert batch["targets"].tolist() == [[6, 7, 8], [3, 0, 0]]
    assert batch["input_lengths"].tolist() == [3, 1]


@pytest.mark.parametrize("strategy", ["sequence", "rss"])
def test_sequence_loader_covers_every_user_once_per_epoch(strategy, tiny_data, in_tmp_cwd):
    config = TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data),
                                                         "train_strategy": strategy, "train_batch_size": 7})
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    assert isinstance(train, SequenceTrainDataLoader) and len(train) == math.ceil(60 / 7)
    orders = []
    for _ in range(2):
        users = torch.cat([batch["user_id"] for batch in train]).tolist()
        assert sorted(users) == sorted(set(users)) and len(users) == 60
        orders.append(users)
    assert orders[0] != orders[1]  # reshuffled every epoch
    batch = next(iter(train))
    if strategy == "sequence":
        inputs, targets, lengths = batch["item_id_list"], batch["target_id_list"], batch["item_length"]
        # training sequences are the first 10 items (valid/test hold out 2): 9 inputs, 9 next-item targets
        assert (lengths == 9).all()
        assert torch.equal(targets[:, :8], inputs[:, 1:9])
    else:
        assert "rss_targets" in batch and (batch["rss_targets"][:, 0] > 0).all()


def test_sequence_windows_make_every_training_interaction_a_target_once_per_epoch(tiny_data, in_tmp_cwd):
    """Histories longer than MAX_ITEM_LIST_LENGTH + 1 are cut into windows; none of the history is dropped."""
    config = TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "MAX_ITEM_LIST_LENGTH": 4,
                                                         "train_strategy": "sequence", "train_batch_size": 16})
    train, _, _ = data_preparation(config, create_dataset(config))
    rows = train.dataset.inter_feat  # RecBole's prefix rows: one per training interaction after a user's first
    expected = sorted(zip(rows["user_id"].tolist(), rows["item_id"].tolist()))
    seen = []
    for batch in train:
        mask = batch["target_id_list"] > 0
        users = batch["user_id"][:, None].expand_as(mask)
        seen += list(zip(users[mask].tolist(), batch["target_id_list"][mask].tolist()))
        assert (batch["item_length"] <= 4).all()
    assert sorted(seen) == expected  # 60 users × 9 targets, each exactly once
    assert len(train.users) == 60 * 3  # ceil(9 / 4) windows per user
    only_last = TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "MAX_ITEM_LIST_LENGTH": 4,
                                                            "train_strategy": "sequence", "train_windows": "last"})
    assert len(data_preparation(only_last, create_dataset(only_last))[0].users) == 60


@pytest.mark.parametrize("history, drawn_from", [("recent", 5), ("full", 10)])
def test_rss_history_recent_or_full(history, drawn_from, tiny_data, in_tmp_cwd):
    """``full`` draws targets from the whole training history (10 items) and feeds the most recent undrawn
    MAX_ITEM_LIST_LENGTH items; ``recent`` only looks at the last MAX_ITEM_LIST_LENGTH + 1 items."""
    config = TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "MAX_ITEM_LIST_LENGTH": 4,
                                                         "train_strategy": "rss", "rss_history": history,
                                                         "rss_alpha": 1.0, "rss_pct": 0.5, "train_batch_size": 60})
    train, _, _ = data_preparation(config, create_dataset(config))
    assert (train.lengths == drawn_from).all()
    drawn_positions = set()
    for _ in range(20):
        batch = next(iter(train))
        for user, inputs, targets in zip(batch["user_id"].tolist(), batch["item_id_list"].tolist(),
                                         batch["rss_targets"].tolist()):
            token = int(train.dataset.field2id_token["user_id"][user][1:])  # user u saw items u+1, u+2, ... (mod 60)
            history = [(token + step) % 60 + 1 for step in range(10)]
            targets = {t for t in targets if t}
            undrawn = [item for item in history[-drawn_from:] if item not in targets]
            assert [i for i in inputs if i] == undrawn[-4:]
            drawn_positions |= {history.index(t) for t in targets}
    assert drawn_positions == set(range(10 - drawn_from, 10))


def test_prefix_models_refuse_sequence_strategies(tiny_data, in_tmp_cwd, capsys):
    code = main(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_data}", "--train_strategy=rss",
                 *[f"--{k}={v}" for k, v in FAST.items()]])
    assert code == 2
    assert "train_strategy='rss'" in capsys.readouterr().err


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("per", ["sequence", "position"])
def test_gbce_training_memory_does_not_grow_with_the_catalogue(per, tiny_data, in_tmp_cwd):
    """With gBCE no tensor saved for backward has a catalogue-sized dimension (only k sampled items)."""
    config = TextConfig("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8,
                                                        "negatives_per": per})
    train, _, _ = data_preparation(config, create_dataset(config))
    from recbole_text.registry import get_model

    model = get_model("gSASRec")(config, train._dataset)
    shapes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        model.calculate_loss(next(iter(train))).backward()
    n_items = model.n_items
    tables = {tuple(model.output_embeddings().shape), tuple(model.scoring_table().shape), (n_items,)}
    catalogue_sized = [s for s in shapes if n_items in s and s not in tables]
    assert shapes and not catalogue_sized


def _tiny_model(name, tiny_data, **overrides):
    from recbole_text.registry import get_model

    config = TextConfig(name, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8, **overrides})
    train, _, _ = data_preparation(config, create_dataset(config))
    return get_model(name)(config, train._dataset).eval(), next(iter(train))


def test_item_bias_is_added_to_every_score_and_starts_at_the_random_item_logit(tiny_data, in_tmp_cwd):
    model, batch = _tiny_model("gSASRec", tiny_data, item_bias=True)
    n_catalogue = model.n_items - 1
    assert torch.allclose(model.item_bias, torch.full_like(model.item_bias, -math.log(n_catalogue - 1)))
    with torch.no_grad():
        model.item_bias.normal_()
        state = model.forward(batch["item_id_list"], batch["item_length"])  # (B, d)
        full = model.full_sort_predict(batch)  # (B, n_items)
        assert torch.allclose(full, state @ model.output_embeddings().T + model.item_bias, atol=1e-5)
        picked = model.predict(batch)  # scores of batch["item_id"]
        assert torch.allclose(picked, full[torch.arange(len(picked)), batch["item_id"]], atol=1e-5)
    unbiased, _ = _tiny_model("gSASRec", tiny_data, item_bias=False)
    assert unbiased.item_bias is None and unbiased.scoring_table().shape == unbiased.output_embeddings().shape


@pytest.mark.parametrize("per", ["sequence", "position"])
def test_gbce_negatives_per_sequence_or_per_position(per, tiny_data, in_tmp_cwd, monkeypatch):
    """``negatives_per``: k negatives shared by a sequence's positions, or drawn for each position with a target;
    the loss is the gBCE definition over the negatives drawn for each position."""
    model, batch = _tiny_model("gSASRec", tiny_data, negatives_per=per)
    drawn, real = [], losses.sample_negatives
    monkeypatch.setattr(losses, "sample_negatives", lambda *a, **kw: drawn.append(real(*a, **kw)) or drawn[-1])
    with torch.no_grad():
        loss = model.calculate_loss(batch)
        states = model.scoring_states(model.position_states(batch["item_id_list"], batch["item_length"]))  # (B, W, d+1)
    targets = batch["target_id_list"][:, :states.shape[1]]  # (B, W)
    scored = targets > 0
    (negatives,) = drawn
    if per == "position":
        assert negatives.shape == (int(scored.sum()), 8)
        per_position = negatives  # (M, k), one row per scored position
    else:
        assert negatives.shape == (len(targets), 8)
        per_position = negatives[:, None, :].expand(-1, targets.shape[1], -1)[scored]  # (M, k)
    table, state, target = model.scoring_table(), states[scored], targets[scored]  # (N, d+1), (M, d+1), (M,)
    pos = F.softplus(-(state * table[target]).sum(-1))
    neg = F.softplus((state[:, None, :] * table[per_position]).sum(-1)) * (per_position != target[:, None])
    assert torch.allclose(loss, ((model.gbce_beta * pos + neg.sum(-1)) / 9).mean(), atol=1e-5)


def test_negatives_per_must_be_sequence_or_position(tiny_data, in_tmp_cwd):
    from recbole_text.config import ConfigError

    with pytest.raises(ConfigError, match="negatives_per"):
        _tiny_model("gSASRec", tiny_data, negatives_per="batch")


def test_gsasrec_decoder_is_causal(tiny_data, in_tmp_cwd):
    """The state at position t must not change when a later item changes."""
    model, batch = _tiny_model("gSASRec", tiny_data)
    seq, lengths = batch["item_id_list"][:4].clone(), batch["item_length"][:4]
    changed = seq.clone()
    changed[:, 5] = (changed[:, 5] % (model.n_items - 1)) + 1
    with torch.no_grad():
        before, after = model.encode(seq, lengths), model.encode(changed, lengths)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize(
    "model, overrides",
    [
        ("gSASRec", {"learning_rate": 0.01, "num_negatives": 16}),
        ("SeqSASRec", {"learning_rate": 0.01, "train_strategy": "rss", "loss_type": "CE"}),
        ("SeqSASRec", {"learning_rate": 0.01, "train_strategy": "rss", "loss_type": "LambdaRank"}),
        ("SeqGRU4Rec", {"learning_rate": 0.02, "dropout_prob": 0.0, "train_strategy": "rss", "loss_type": "CE"}),
        ("SeqGRU4Rec", {"learning_rate": 0.02, "dropout_prob": 0.0, "train_strategy": "sequence", "loss_type": "CE"}),
    ],
)
def test_package_models_learn_the_pattern(model, overrides, tiny_data, in_tmp_cwd):
    """Next item = previous + 1 on the tiny data: each model/strategy/loss must find it."""
    result = run(model, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "epochs": 40, "eval_step": 5,
                                              "train_batch_size": 16, **overrides})
    assert result["test_result"]["recall@10"] > 0.9, result["test_result"]  # random: 10/60


@pytest.mark.parametrize("model, extra", [("gSASRec", []), ("SeqSASRec", ["--train_strategy=rss"])])
def test_two_epochs_on_ml100k_text_through_the_cli(model, extra, in_tmp_cwd, capsys):
    result_file = in_tmp_cwd / "r.json"
    code = main([f"--model={model}", "--dataset=ml-100k-text", f"--data_path={in_tmp_cwd / 'data'}",
                 "--epochs=2", "--show_progress=False", "--hidden_size=32", "--inner_size=64",
                 "--MAX_ITEM_LIST_LENGTH=20", "--train_batch_size=256", f"--result_file={result_file}",
                 "--calibration_report=True", *extra])
    assert code == 0
    import json

    record = json.loads(result_file.read_text())
    assert record["epochs_run"] == 2 and record["model"] == model
    assert record["test_result"]["recall@50"] > 0.0
    assert (in_tmp_cwd / "r-calibration.png").is_file()


def write_skewed_dataset(root, name: str = "skewed", users: int = 80, items: int = 80, length: int = 8):
    """Sequences drawn from a Zipf-like item distribution, so that item popularity is worth something."""
    from recbole_text.data.atomic import write_atomic_file

    rng = np.random.default_rng(0)
    weights = 1 / np.arange(1, items + 1)
    drawn = rng.choice(items, size=(users, length), p=weights / weights.sum()) + 1
    rows = [(f"u{u}", f"i{drawn[u, t]}", u * 100 + t) for u in range(users) for t in range(length)]
    write_atomic_file(root / name / f"{name}.inter", [("user_id", "token"), ("item_id", "token"),
                                                      ("timestamp", "float")], rows)
    return root


def test_popularity_prior_adds_beta_log_training_counts_at_inference_only(tmp_path, in_tmp_cwd):
    from recbole_text.registry import get_model

    config = TextConfig("SeqSASRec", "skewed", config_dict={**FAST, "data_path": str(write_skewed_dataset(tmp_path)),
                                                            "popularity_prior": 0.5})
    train, _, _ = data_preparation(config, create_dataset(config))
    model, batch = get_model("SeqSASRec")(config, train._dataset).eval(), next(iter(train))
    counts = torch.bincount(train._dataset.inter_feat["item_id"], minlength=model.n_items).float()
    assert counts[1:].max() > 3 * counts[1:].min() and torch.equal(model.log_popularity, torch.log1p(counts))
    assert "log_popularity" not in model.state_dict()  # the dataset's, not the checkpoint's
    with torch.no_grad():
        full, picked, loss = model.full_sort_predict(batch), model.predict(batch), model.calculate_loss(batch)
        model.popularity_prior = 0.0
        assert torch.allclose(full, model.full_sort_predict(batch) + 0.5 * torch.log1p(counts), atol=1e-5)
        assert torch.equal(model.calculate_loss(batch), loss)  # training does not see the prior
    assert torch.allclose(picked, full[torch.arange(len(picked)), batch["item_id"]], atol=1e-5)


def test_auto_popularity_prior_is_chosen_on_validation_in_one_pass(tmp_path, in_tmp_cwd):
    from recbole_text.job import build_job
    from recbole_text.trainer import PRIOR_GRID

    settings = {**FAST, "data_path": str(write_skewed_dataset(tmp_path)), "popularity_prior": "auto", "epochs": 2}
    job = build_job("SeqSASRec", "skewed", config_dict=settings, log=False)
    job.trainer.fit(job.train_data, job.valid_data, saved=False)
    assert job.model.popularity_prior == 0.0  # auto trains and validates without the prior
    found = job.trainer.choose_popularity_prior(job.valid_data)
    assert list(found) == list(PRIOR_GRID) and len(set(found.values())) > 1  # β changes the ranking here
    best = job.model.popularity_prior
    assert found[best] == max(found.values()) and best == min(b for b, v in found.items() if v == found[best])
    for beta in (0.0, best, 3.0):  # the one pass gives what evaluate() gives at each β
        job.model.popularity_prior = beta
        assert job.trainer.evaluate(job.valid_data, load_best_model=False)["ndcg@10"] == pytest.approx(found[beta],
                                                                                                       abs=1e-4)
    result = run("SeqSASRec", "skewed", config_dict=settings, result_file=str(tmp_path / "run.json"))
    recorded = result["popularity_prior"]  # of the best epoch's weights
    assert (tmp_path / "run-prior.png").stat().st_size > 0
    assert list(recorded["valid"]) == list(PRIOR_GRID)
    assert recorded["valid"][recorded["beta"]] == max(recorded["valid"].values()) > recorded["valid"][0.0]
    from recbole_text.compat import load_checkpoint
    from recbole_text.recommend import Recommender

    assert load_checkpoint(result["checkpoint"])["settings"]["popularity_prior"] == recorded["beta"]
    served = Recommender.from_checkpoint(result["checkpoint"])  # scores as the test did
    assert served.model.popularity_prior == recorded["beta"] and served.model.log_popularity.max() > 0


def test_a_sweep_best_trial_chooses_the_prior_as_run_does(tmp_path, in_tmp_cwd):
    from recbole_text.tune import evaluate_best

    settings = {**FAST, "data_path": str(write_skewed_dataset(tmp_path)), "popularity_prior": "auto", "epochs": 2}
    ran = run("SeqSASRec", "skewed", config_dict={**settings, "popularity_prior": 0.0})  # its checkpoint keeps β = 0
    spec = {"model": "SeqSASRec", "dataset": "skewed", "config_files": None, "overrides": settings}
    best = evaluate_best(spec, {}, ran["checkpoint"])
    chosen = best["popularity_prior"]
    assert chosen["beta"] > 0 and chosen["valid"][chosen["beta"]] > chosen["valid"][0.0] == ran["best_valid_score"]
    assert best["valid_result"]["ndcg@10"] == pytest.approx(chosen["valid"][chosen["beta"]], abs=1e-4)
    assert best["test_result"]["ndcg@10"] != pytest.approx(ran["test_result"]["ndcg@10"], abs=1e-4)


@pytest.mark.parametrize("bad", [-0.5, "high", True, float("nan")])
def test_a_popularity_prior_that_is_not_a_weight_or_auto_is_refused(bad, tiny_data):
    from recbole_text.config import ConfigError

    with pytest.raises(ConfigError, match=r"popularity_prior=.* must be a number ≥ 0 or auto"):
        TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "popularity_prior": bad})


def test_train_popularity_prior_is_the_softmax_loss_of_prior_adjusted_scores(tmp_path, in_tmp_cwd):
    from recbole_text.registry import get_model

    settings = {**FAST, "data_path": str(write_skewed_dataset(tmp_path)), "train_strategy": "prefix",
                "train_popularity_prior": 0.75, "popularity_prior": "auto"}
    config = TextConfig("SeqSASRec", "skewed", config_dict=settings)
    train, _, _ = data_preparation(config, create_dataset(config))
    model, batch = get_model("SeqSASRec")(config, train._dataset).eval(), next(iter(train))
    assert model.popularity_prior == 0.75  # auto validates with the training loss's β until it chooses
    with torch.no_grad():
        adjusted = model.full_sort_predict(batch)  # score + 0.75·log(1 + n_i)
        adjusted[:, 0] = float("-inf")
        expected = F.cross_entropy(adjusted, batch["item_id"])
        assert model.calculate_loss(batch) == pytest.approx(float(expected), abs=1e-5)
        model.train_popularity_prior = 0.0
        assert model.calculate_loss(batch) != pytest.approx(float(expected), abs=1e-3)  # the prior mattered


@pytest.mark.parametrize("bad", [-1, "auto", False])
def test_a_train_popularity_prior_that_is_not_a_weight_is_refused(bad, tiny_data):
    from recbole_text.config import ConfigError

    with pytest.raises(ConfigError, match=r"train_popularity_prior=.* must be a number ≥ 0"):
        TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "train_popularity_prior": bad})
