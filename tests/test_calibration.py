"""Tests of recbole_text.evaluation.calibration: rank-bucket tables, ECE summary, score collection, report."""
from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_text.evaluation.calibration import (
    DEFAULT_BUCKETS,
    calibration_summary,
    calibration_table,
    collect_full_scores,
    write_calibration_report,
)

NEG = float("-inf")


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def tiny_case():
    """4 users × 6 items; item 0 is padding (-inf) everywhere.

    user 0: ranking 1(2) 4(1) 2(0) 3(-1) 5(-2); target 4 → rank 2
    user 1: item 3 excluded; ranking 2(3) 4(1) 1(0) 5(-1); target 2 → rank 1
    user 2: ranking 5(1) 3(0.5) 1(-1) 4(-2) 2(-3); target 2 → rank 5 (the lowest score)
    user 3: items 2, 3 excluded; ranking 1(1) 4(0) 5(0); target 2 is excluded → no hit anywhere
    """
    scores = torch.tensor([
        [NEG, 2.0, 0.0, -1.0, 1.0, -2.0],
        [NEG, 0.0, 3.0, NEG, 1.0, -1.0],
        [NEG, -1.0, -3.0, 0.5, -2.0, 1.0],
        [NEG, 1.0, NEG, NEG, 0.0, 0.0],
    ])
    targets = torch.tensor([4, 2, 2, 2])
    return scores, targets


def test_tiny_case_custom_buckets_by_hand():
    scores, targets = tiny_case()
    rows = calibration_table(scores, targets, buckets=((1, 1), (2, 3), (4, None)))
    assert [r["ranks"] for r in rows] == ["1", "2-3", "4-5"]  # open bucket ends at the largest catalogue (5)
    r1, r23, r45 = rows

    assert r1["slots"] == 4 and r1["hits"] == 1  # user 1's target is its top item
    assert r1["observed_hit_rate"] == pytest.approx(1 / 4)
    assert r1["mean_predicted"] == pytest.approx((sig(2) + sig(3) + sig(1) + sig(1)) / 4)

    assert r23["slots"] == 8 and r23["hits"] == 1  # user 0 at rank 2
    assert r23["observed_hit_rate"] == pytest.approx(1 / 8)
    expected = (sig(1) + sig(0)) + (sig(1) + sig(0)) + (sig(0.5) + sig(-1)) + (sig(0) + sig(0))
    assert r23["mean_predicted"] == pytest.approx(expected / 8)

    # user 0: 2 slots, user 1: 1 (item 3 excluded), user 2: 2, user 3: 0 (only 3 non-excluded items)
    assert r45["slots"] == 5 and r45["hits"] == 1  # user 2 at rank 5
    assert r45["observed_hit_rate"] == pytest.approx(1 / 5)
    expected = (sig(-1) + sig(-2)) + sig(-1) + (sig(-2) + sig(-3))
    assert r45["mean_predicted"] == pytest.approx(expected / 5)
    assert (r45["first_rank"], r45["last_rank"]) == (4, 5)

    # -inf items are no slots: 5 + 4 + 5 + 3 non-excluded items; the excluded target of user 3 is no hit
    assert sum(r["slots"] for r in rows) == 17
    assert sum(r["hits"] for r in rows) == 3

    summary = calibration_summary(rows)
    gap = sum(r["slots"] * abs(r["mean_predicted"] - r["observed_hit_rate"]) for r in rows) / 17
    assert summary["ece"] == pytest.approx(gap)
    assert summary["mean_predicted_top1"] == pytest.approx(r1["mean_predicted"])
    assert summary["hit_rate_top1"] == pytest.approx(0.25)
    assert (summary["slots"], summary["hits"]) == (17, 3)


def test_default_buckets_drop_those_beyond_the_catalogue():
    scores, targets = tiny_case()
    rows = calibration_table(scores, targets)  # DEFAULT_BUCKETS; the catalogue has 5 items
    assert [r["ranks"] for r in rows] == ["1", "2-5"]
    assert [r["slots"] for r in rows] == [4, 13]
    assert [r["hits"] for r in rows] == [1, 2]  # "2-5": user 0 at rank 2 and user 2 at rank 5


def test_long_catalogue_labels():
    n = 600
    scores = torch.linspace(3, -3, n).repeat(2, 1)
    scores[:, 0] = NEG
    rows = calibration_table(scores, torch.tensor([1, 550]))
    assert [r["ranks"] for r in rows] == ["1", "2-5", "6-10", "11-50", "51-100", "101-500", "501-599"]
    assert [r["slots"] for r in rows] == [2, 8, 10, 80, 100, 800, 198]
    assert [r["hits"] for r in rows] == [1, 0, 0, 0, 0, 0, 1]  # item 550 is at rank 550 (item 1 ranks 1)
    assert DEFAULT_BUCKETS[-1] == (501, None)


def test_bad_input_is_rejected():
    scores, targets = tiny_case()
    with pytest.raises(ValueError, match="targets"):
        calibration_table(scores, targets[:3])
    with pytest.raises(ValueError, match="target item ids"):
        calibration_table(scores, torch.tensor([4, 2, 2, 6]))
    nan_scores = scores.clone()
    nan_scores[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        calibration_table(nan_scores, targets)
    with pytest.raises(ValueError, match="bucket"):
        calibration_table(scores, targets, buckets=((0, 1),))


def calibrated_population(users: int = 20000, items: int = 200, seed: int = 0):
    """Logits whose sigmoids sum to 1 per user; each target is drawn from that categorical, so
    P(target = item) = σ(logit) exactly. Column 0 is padding."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.softmax(2.0 * torch.randn(users, items, generator=gen, dtype=torch.float64), dim=1)
    p = p.clamp(1e-12, 1 - 1e-9)
    targets = torch.multinomial(p, 1, generator=gen).squeeze(1) + 1  # +1: column 0 is the padding
    logits = torch.full((users, items + 1), NEG, dtype=torch.float64)
    logits[:, 1:] = torch.log(p) - torch.log1p(-p)
    return logits.float(), targets


def test_calibrated_model_matches_and_overconfident_model_does_not():
    logits, targets = calibrated_population()
    rows = calibration_table(logits, targets)
    assert [r["ranks"] for r in rows] == ["1", "2-5", "6-10", "11-50", "51-100", "101-200"]
    assert sum(r["slots"] for r in rows) == 20000 * 200
    assert sum(r["hits"] for r in rows) == 20000  # every target is a non-excluded item
    for r in rows:
        expected_hits = r["mean_predicted"] * r["slots"]
        if expected_hits < 200:  # not well populated
            continue
        sd = math.sqrt(r["mean_predicted"] * (1 - r["mean_predicted"]) / r["slots"])
        assert abs(r["observed_hit_rate"] - r["mean_predicted"]) < 4 * sd + 1e-6, r
    calibrated = calibration_summary(rows)
    assert calibrated["ece"] < 5e-4
    assert calibrated["mean_predicted_top1"] == pytest.approx(calibrated["hit_rate_top1"], abs=0.02)

    over_rows = calibration_table(logits + 2.0, targets)  # same ranking, inflated probabilities
    assert [r["hits"] for r in over_rows] == [r["hits"] for r in rows]
    over = calibration_summary(over_rows)
    assert over["ece"] > 10 * calibrated["ece"]
    assert over["ece"] > 0.01
    top = over_rows[0]
    assert top["mean_predicted"] > top["observed_hit_rate"] + 0.1
    assert all(r["mean_predicted"] > r["observed_hit_rate"] for r in over_rows)


class FakeModel:
    """Scores row r, item i as 100 * user_id + i, returned flattened (so the caller must reshape)."""

    ITEM_SEQ = "item_id_list"

    def __init__(self, n_items: int):
        self.n_items = n_items
        self.training = True
        self.calls = []

    def eval(self):
        self.training = False
        return self

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def full_sort_predict(self, interaction):
        self.calls.append((self.training, torch.is_grad_enabled()))
        uid = interaction["user_id"].float()
        return (100 * uid[:, None] + torch.arange(self.n_items)).reshape(-1)


class FakeLoader:
    def __init__(self, batches, n_items: int):
        self._dataset = SimpleNamespace(item_num=n_items)
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


def fake_batches():
    first = Interaction({
        "user_id": torch.tensor([0, 1]),
        "item_id_list": torch.tensor([[1, 3, 0], [2, 0, 0]]),
    })
    second = Interaction({"user_id": torch.tensor([2]), "item_id_list": torch.tensor([[5, 5, 1]])})
    return [
        # positive_u permuted: row 1's target is 5, row 0's is 4
        (first, None, torch.tensor([1, 0]), torch.tensor([5, 4])),
        (second, None, torch.tensor([0]), torch.tensor([2])),
    ]


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_collect_full_scores_masks_and_orders(exclude_seen):
    n_items = 6
    model = FakeModel(n_items)
    scores, targets = collect_full_scores(model, FakeLoader(fake_batches(), n_items), "cpu",
                                          exclude_seen=exclude_seen)
    assert model.calls == [(False, False), (False, False)]  # eval mode, no autograd, one call per batch
    assert model.training  # restored afterwards
    assert targets.tolist() == [4, 5, 2]
    assert scores.shape == (3, n_items) and scores.dtype == torch.float32 and scores.device.type == "cpu"

    expected = (100 * torch.tensor([0.0, 1.0, 2.0])[:, None] + torch.arange(n_items)).clone()
    expected[:, 0] = NEG
    if exclude_seen:
        expected[0, [1, 3]] = NEG
        expected[1, 2] = NEG
        expected[2, [1, 5]] = NEG
    assert torch.equal(scores, expected)

    rows = calibration_table(scores, targets, buckets=((1, 1), (2, None)))
    # the fake ranks item 5 first; only row 1's target (5) is at rank 1 — unless it was seen (it was not)
    assert rows[0]["hits"] == 1
    assert sum(r["slots"] for r in rows) == (15 if not exclude_seen else 15 - 5)


def test_collect_full_scores_rejects_a_non_sequential_loader():
    inter = Interaction({"user_id": torch.tensor([0]), "item_id_list": torch.tensor([[1]])})
    loader = FakeLoader([(inter, (torch.tensor([0]), torch.tensor([1])), torch.tensor([0, 0]),
                          torch.tensor([2, 3]))], 4)
    with pytest.raises(ValueError, match="sequential"):
        collect_full_scores(FakeModel(4), loader, "cpu")


def report_tables():
    scores, targets = tiny_case()
    gen = torch.Generator().manual_seed(1)
    peaked = torch.randn(50, 120, generator=gen)
    peaked[:, 0] = NEG
    # every target is the top item: all deeper buckets have 0 hits (an observed rate of 0 on a log axis)
    top_rows = calibration_table(peaked, peaked.argmax(dim=1))
    return {"gBCE t=0.75": calibration_table(scores, targets), "BCE | t=0": top_rows}


def test_write_calibration_report(tmp_path):
    tables = report_tables()
    folder = tmp_path / "reports"
    prefix = folder / "calib.t0.75"  # a dot in the prefix must not be taken for a suffix
    paths = write_calibration_report(tables, prefix, title="Scientific: gBCE vs BCE")
    assert paths == {k: str(folder / f"calib.t0.75.{k}") for k in ("json", "md", "png")}
    assert sorted(os.listdir(folder)) == ["calib.t0.75.json", "calib.t0.75.md", "calib.t0.75.png"]  # no temps

    with open(paths["json"], encoding="utf-8") as f:
        document = json.load(f)
    assert document["title"] == "Scientific: gBCE vs BCE"
    assert list(document["tables"]) == list(tables)
    for label, rows in tables.items():
        assert document["tables"][label]["rows"] == rows
        assert document["tables"][label]["summary"] == calibration_summary(rows)
    assert document["tables"]["BCE | t=0"]["rows"][1]["hits"] == 0

    markdown = open(paths["md"], encoding="utf-8").read()
    assert markdown.startswith("# Scientific: gBCE vs BCE")
    for label, rows in tables.items():
        assert f"## {label}" in markdown
        section = markdown.split(f"## {label}", 1)[1].split("\n## ", 1)[0]
        data_lines = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| ranks")]
        assert [ln.split("|")[1].strip() for ln in data_lines] == [r["ranks"] for r in rows]
        assert [int(ln.split("|")[2]) for ln in data_lines] == [r["slots"] for r in rows]
        assert [int(ln.split("|")[3]) for ln in data_lines] == [r["hits"] for r in rows]
        assert "ECE (slot-weighted):" in section

    png = open(paths["png"], "rb").read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_write_calibration_report_leaves_nothing_on_bad_input(tmp_path):
    tables = report_tables()
    tables["gBCE t=0.75"][0]["mean_predicted"] = float("nan")
    with pytest.raises(ValueError, match="mean_predicted"):
        write_calibration_report(tables, tmp_path / "calib")
    assert os.listdir(tmp_path) == []
