"""Every RecBole ranking metric through RecBole's Collector + Evaluator (as patched by recbole_text.compat),
against values computed by hand from each metric's definition, and end to end on the tiny dataset."""
from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recbole_text import compat  # importing it patches RecBole's evaluator (before RecBole is imported here)
from recbole.evaluator import Collector, Evaluator

from conftest import FAST

# pytest resets the warning filters around every test, dropping those compat installs at import: apply them here.

NEG = float("-inf")
RANKING_METRICS = ["Recall", "MRR", "NDCG", "Hit", "MAP", "Precision", "GAUC", "ItemCoverage", "AveragePopularity",
                   "GiniIndex", "ShannonEntropy", "TailPercentage"]
BEYOND_ACCURACY = ["ItemCoverage", "AveragePopularity", "GiniIndex", "ShannonEntropy", "TailPercentage"]

# ------------------------------------------------------------------ the hand-made case
# Items 1..6 (0 is RecBole's padding id, scored -inf by full-sort evaluation); 4 users in 2 batches.
# Full-sort rankings (best first) and each user's positives:
#   u0: 1 2 4 5 3 6      positives {2}      (rank 2)
#   u1: 4 3 1 5 6 2      positives {4, 5}   (ranks 1 and 4)
#   u2: 2 1 3 4 5        positives {5}      (rank 5; item 6 is a seen item scored -inf, as exclude_seen_items does)
#   u3: 4 5 6 1 2 3      positives {1}      (rank 4)
SCORES = torch.tensor([
    [NEG, 0.9, 0.8, 0.1, 0.3, 0.2, 0.05],
    [NEG, 0.5, 0.1, 0.7, 0.9, 0.3, 0.2],
    [NEG, 0.6, 0.95, 0.4, 0.2, 0.1, NEG],
    [NEG, 0.3, 0.2, 0.1, 0.9, 0.8, 0.7],
])
POSITIVES = [[2], [4, 5], [5], [1]]
# How many training rows have each item as their target; item 6 has none (absent from RecBole's Counter).
TRAIN_COUNTS = {1: 5, 2: 3, 3: 1, 4: 8, 5: 2}
TOPK = [1, 3]

# top-1: u0 1, u1 4, u2 2, u3 4.  top-3: u0 {1,2,4}, u1 {4,3,1}, u2 {2,1,3}, u3 {4,5,6}.
# Recommendations per item in the top-3 lists: 1:3 2:2 3:2 4:3 5:1 6:1 (12 in all); in the top-1: 1:1 2:1 4:2 (4).
LOG2_3 = math.log2(3)
EXPECTED = {
    # HR@K: share of users with a positive in their top K.  @1: u1.  @3: u0, u1.
    "hit@1": 1 / 4, "hit@3": 2 / 4,
    # Recall@K: mean |top K ∩ positives| / |positives|.  @1: u1 1/2.  @3: u0 1/1, u1 1/2.
    "recall@1": (1 / 2) / 4, "recall@3": (1 + 1 / 2) / 4,
    # Precision@K: mean |top K ∩ positives| / K.  @3: u0 1/3, u1 1/3.
    "precision@1": 1 / 4, "precision@3": (1 / 3 + 1 / 3) / 4,
    # MRR@K: mean 1 / rank of the first positive within K.  @3: u0 1/2, u1 1/1.
    "mrr@1": 1 / 4, "mrr@3": (1 / 2 + 1) / 4,
    # NDCG@K: DCG / ideal DCG over min(|positives|, K) positions.
    #   @3: u0 (1/log2 3) / 1; u1 (1/log2 2) / (1/log2 2 + 1/log2 3); u2, u3 0.
    "ndcg@1": 1 / 4, "ndcg@3": ((1 / LOG2_3) + 1 / (1 + 1 / LOG2_3)) / 4,
    # MAP@K: mean of sum over hits j <= K of Precision@j, divided by min(|positives|, K).
    #   @1: u1 1/min(2, 1).  @3: u0 (1/2)/1, u1 (1/1)/2.
    "map@1": 1 / 4, "map@3": (1 / 2 + 1 / 2) / 4,
    # GAUC: per user, the share of (positive, negative) pairs over the candidates (finite scores, padding and
    # excluded items left out) ranked the right way, weighted by |positives|.
    #   u0 4/5 (the positive beats 4 of 5 negatives); u1 (4 + 2)/(2 x 4); u2 0/4 (5 candidates); u3 2/5.
    "gauc": (1 * 4 / 5 + 2 * 6 / 8 + 1 * 0 / 4 + 1 * 2 / 5) / 5,
    # ItemCoverage@K: |union of the top-K lists| / |catalogue| (6 items; the padding id is not an item).
    "itemcoverage@1": 3 / 6, "itemcoverage@3": 6 / 6,
    # AveragePopularity@K: mean over users of the mean training count of their top K.
    #   @1: 5, 8, 3, 8.  @3: (5+3+8)/3, (8+1+5)/3, (3+5+1)/3, (8+2+0)/3.
    "averagepopularity@1": (5 + 8 + 3 + 8) / 4, "averagepopularity@3": (16 / 3 + 14 / 3 + 9 / 3 + 10 / 3) / 4,
    # GiniIndex@K: sum_i (2i - n - 1) P(i) / (n sum_i P(i)), P ascending over all n = 6 catalogue items.
    #   @1: P = 0 0 0 1 1 2.  @3: P = 1 1 2 2 3 3.
    "giniindex@1": (1 * 1 + 3 * 1 + 5 * 2) / (6 * 4),
    "giniindex@3": (-5 * 1 - 3 * 1 - 1 * 2 + 1 * 2 + 3 * 3 + 5 * 3) / (6 * 12),
    # ShannonEntropy@K: -sum_i p(i) ln p(i), p(i) = item i's share of all top-K recommendations.
    "shannonentropy@1": -sum(p * math.log(p) for p in (1 / 4, 1 / 4, 2 / 4)),
    "shannonentropy@3": -sum(p * math.log(p) for p in (3 / 12, 2 / 12, 2 / 12, 3 / 12, 1 / 12, 1 / 12)),
    # TailPercentage@K (tail_ratio unset: 0.1): the tail is the least popular max(int(6 x 0.1), 1) = 1 item of
    # the catalogue, item 6 (0 training rows). Mean share of tail items in the top K: @3 only u3 has one.
    "tailpercentage@1": 0.0, "tailpercentage@3": (1 / 3) / 4,
}


def make_config(metrics, tail_ratio=None) -> dict:
    """What RecBole's Collector, Register and metrics read from a Config."""
    return {"metrics": list(metrics), "topk": TOPK, "device": torch.device("cpu"), "metric_decimal_place": 4,
            "eval_args": {"mode": {"valid": "full", "test": "full"}}, "ITEM_ID_FIELD": "item_id",
            "USER_ID_FIELD": "user_id", "tail_ratio": tail_ratio}


class TinyTrainDataset:
    """What ``Collector.data_collect`` reads from ``train_data.dataset`` (a RecBole Dataset)."""

    def num(self, field):
        return {"item_id": 7, "user_id": 5}[field]  # ids 0 (padding) .. 6, as RecBole counts them

    @property
    def item_counter(self):
        return Counter({np.int64(item): count for item, count in TRAIN_COUNTS.items()})  # RecBole's key type

    @property
    def user_counter(self):
        return Counter({np.int64(user): 3 for user in range(1, 5)})


def collect(config, batches=((0, 2), (2, 4))) -> Collector:
    """A Collector fed as RecBole's Trainer feeds it: data_collect once, then one call per evaluation batch."""
    collector = Collector(config)
    collector.data_collect(SimpleNamespace(dataset=TinyTrainDataset()))
    for start, stop in batches:
        users = [u for u in range(start, stop) for _ in POSITIVES[u]]
        rows = torch.tensor([u - start for u in users])
        items = torch.tensor([i for u in range(start, stop) for i in POSITIVES[u]])
        collector.eval_batch_collect(SCORES[start:stop].clone(), None, rows, items)
    return collector


def evaluate(metrics, tail_ratio=None) -> dict:
    config = make_config(metrics, tail_ratio)
    return dict(Evaluator(config).evaluate(collect(config).get_data_struct()))


@pytest.fixture(scope="module")
def all_results() -> dict:
    return evaluate(RANKING_METRICS)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_metric_matches_the_hand_computed_value(all_results, key):
    assert all_results[key] == pytest.approx(EXPECTED[key], abs=6e-5)  # RecBole rounds to 4 decimals


def test_every_ranking_metric_of_recbole_is_covered(all_results):
    from recbole.evaluator.register import metric_types
    from recbole.utils import EvaluatorType

    ranking = {name for name, kind in metric_types.items() if kind == EvaluatorType.RANKING}
    assert ranking == {m.lower() for m in RANKING_METRICS}
    assert set(all_results) == set(EXPECTED)


@pytest.mark.parametrize("tail_ratio, expected", [
    (0.34, (0 + 1 / 3 + 1 / 3 + 1 / 3) / 4),  # int(6 x 0.34) = 2 least popular: items 6 (0 rows) and 3 (1 row)
    (0.5, (0 + 1 / 3 + 1 / 3 + 2 / 3) / 4),   # 3 least popular: 6, 3, 5
    (2, (0 + 1 / 3 + 1 / 3 + 2 / 3) / 4),     # > 1: items with at most 2 training rows: 6, 3, 5
    (1, 1.0),                                  # the whole catalogue
])
def test_tail_percentage_follows_tail_ratio(tail_ratio, expected):
    result = evaluate(["TailPercentage"], tail_ratio=tail_ratio)
    assert result["tailpercentage@3"] == pytest.approx(expected, abs=6e-5)


def test_training_statistics_survive_each_evaluation():
    """Validation after validation, then test: the same collector evaluates every time (RecBole's Trainer)."""
    config = make_config(BEYOND_ACCURACY)
    collector, evaluator = collect(config), Evaluator(config)
    first = dict(evaluator.evaluate(collector.get_data_struct()))
    assert "rec.items" not in collector.data_struct  # this evaluation's lists are dropped ...
    assert collector.data_struct["data.num_items"] == 6  # ... the training statistics kept
    for start, stop in ((0, 2), (2, 4)):
        rows = torch.tensor([u - start for u in range(start, stop) for _ in POSITIVES[u]])
        items = torch.tensor([i for u in range(start, stop) for i in POSITIVES[u]])
        collector.eval_batch_collect(SCORES[start:stop].clone(), None, rows, items)
    assert dict(evaluator.evaluate(collector.get_data_struct())) == first


def test_catalogue_statistics_leave_out_the_padding_id_and_list_unseen_items():
    collector = collect(make_config(["ItemCoverage", "AveragePopularity"]))
    assert collector.data_struct["data.num_items"] == 6
    assert dict(collector.data_struct["data.count_items"]) == {**TRAIN_COUNTS, 6: 0}


def test_recbole_own_get_data_struct_is_the_crash():
    """The root cause: RecBole calls .cpu() on every collected value, the int data.num_items included."""
    original = compat._ORIGINALS["Collector.get_data_struct"]
    assert original.__module__ == "recbole.evaluator.collector"
    with pytest.raises(AttributeError, match="'int' object has no attribute 'cpu'"):
        original(collect(make_config(["ItemCoverage"])))


def test_recbole_own_shannon_entropy_divides_by_the_distinct_items():
    original = compat._ORIGINALS["ShannonEntropy.get_entropy"]
    top3 = np.array([[1, 2, 4], [4, 3, 1], [2, 1, 3], [4, 5, 6]])
    assert original(None, top3) == pytest.approx(EXPECTED["shannonentropy@3"] / 6)


@pytest.mark.parametrize("tail_ratio", [None, 0.5, 3])
def test_vectorised_tail_and_popularity_equal_recbole_own(tail_ratio):
    from recbole.evaluator import metrics

    rng = np.random.default_rng(7)
    top = rng.integers(1, 40, size=(30, 10))
    counts = {item: int(rng.integers(0, 9)) for item in range(1, 40) if item % 5}  # some items have no entry
    tail = metrics.TailPercentage(make_config(["TailPercentage"], tail_ratio))
    np.testing.assert_array_equal(tail.get_tail(top, counts),
                                  compat._ORIGINALS["TailPercentage.get_tail"](tail, top, counts))
    popularity = metrics.AveragePopularity(make_config(["AveragePopularity"]))
    np.testing.assert_array_equal(popularity.get_pop(top, counts),
                                  compat._ORIGINALS["AveragePopularity.get_pop"](popularity, top, counts))


def test_patch_is_installed_once_and_idempotent():
    from recbole.evaluator import metrics

    compat.install()
    compat.install()
    assert Collector.get_data_struct is compat._collector_get_data_struct
    assert Collector.data_collect is compat._collector_data_collect
    assert metrics.ShannonEntropy.get_entropy is compat._shannon_entropy
    assert metrics.TailPercentage.get_tail is compat._tail_indicator
    assert metrics.AveragePopularity.get_pop is compat._popularity
    assert len(compat._ORIGINALS) == 5
    assert all(f.__module__.startswith("recbole.evaluator") for f in compat._ORIGINALS.values())


def test_evaluating_without_training_statistics_names_the_missing_call():
    config = make_config(["Recall", "ItemCoverage", "GiniIndex"])
    collector = Collector(config)  # data_collect(train_data) never called
    collector.eval_batch_collect(SCORES[:2].clone(), None, torch.tensor([0, 1]), torch.tensor([2, 4]))
    with pytest.raises(RuntimeError, match=r"giniindex, itemcoverage need .*data_collect\(train_data\)"):
        collector.get_data_struct()


def test_accuracy_metrics_need_no_training_statistics():
    config = make_config(["Recall", "NDCG", "GAUC"])
    collector = Collector(config)
    collector.eval_batch_collect(SCORES[:2].clone(), None, torch.tensor([0, 1, 1]), torch.tensor([2, 4, 5]))
    result = Evaluator(config).evaluate(collector.get_data_struct())
    assert result["recall@3"] == pytest.approx((1 + 1 / 2) / 2, abs=6e-5)


# ------------------------------------------------------------------ metrics that cannot apply to ranking

@pytest.mark.parametrize("metrics", [["AUC"], ["LogLoss", "MAE"], ["Recall", "RMSE"]])
def test_value_metrics_are_refused_for_ranking_in_one_sentence(metrics):
    message = compat.metrics_error({"metrics": metrics, "eval_args": {"mode": "full"}})
    value = [m for m in metrics if m != "Recall"]
    assert message.startswith(f"metrics {', '.join(value)} are value metrics" if len(value) > 1 else
                              f"metric {value[0]} is a value metric")
    assert "cannot apply to ranking" in message and "GAUC" in message and "\n" not in message


def test_ranking_metrics_and_labelled_value_metrics_pass():
    assert compat.metrics_error({"metrics": RANKING_METRICS, "eval_args": {"mode": "full"}}) is None
    assert compat.metrics_error({"metrics": ["GAUC"], "eval_args": {"mode": {"valid": "uni100", "test": "full"}}}) \
        is None
    assert compat.metrics_error({"metrics": ["AUC", "LogLoss"], "eval_args": {"mode": "labeled"}}) is None


def test_value_metrics_are_refused_for_sequential_models_in_every_mode():
    from recbole.utils import ModelType

    labelled = {"metrics": ["AUC"], "eval_args": {"mode": "labeled"}, "MODEL_TYPE": ModelType.SEQUENTIAL}
    assert compat.metrics_error(labelled).startswith("metric AUC is a value metric")


def test_unknown_metric_is_named():
    message = compat.metrics_error({"metrics": ["Recall", "Coverage"]})
    assert message.startswith("unknown metric(s) Coverage;") and "ItemCoverage" in message


# ------------------------------------------------------------------ end to end

def test_beyond_accuracy_metrics_in_a_one_epoch_run(tiny_data, in_tmp_cwd):
    import recbole_text

    result = recbole_text.run(model="gSASRec", dataset="tiny", config_dict={
        **FAST, "data_path": str(tiny_data), "num_negatives": 16, "metrics": RANKING_METRICS, "topk": [5, 10],
        "valid_metric": "NDCG@10", "exclude_seen_items": True, "tail_ratio": 0.2})
    n_items, users = 60, 60
    for split in ("best_valid_result", "test_result"):
        values = result[split]
        assert set(values) == {f"{m.lower()}@{k}" for m in RANKING_METRICS if m != "GAUC" for k in (5, 10)} | {"gauc"}
        assert all(math.isfinite(v) for v in values.values()), values
        for k in (5, 10):
            for name in ("recall", "mrr", "ndcg", "hit", "map", "precision", "tailpercentage"):
                assert 0 <= values[f"{name}@{k}"] <= 1
            assert k / n_items <= values[f"itemcoverage@{k}"] <= 1  # a user's k items at least
            assert 0 <= values[f"giniindex@{k}"] < 1
            assert 0 < values[f"shannonentropy@{k}"] <= math.log(min(n_items, users * k)) + 1e-4
            assert 0 < values[f"averagepopularity@{k}"] <= 12  # no item is a training target more than 12 times
        assert values["itemcoverage@5"] <= values["itemcoverage@10"]
        assert 0 <= values["gauc"] <= 1
