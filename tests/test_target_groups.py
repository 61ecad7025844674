"""Metrics split by whether the test target was seen in training."""
from __future__ import annotations

import pytest
import torch

from recbole_text.evaluation.target_groups import seen_in_training
from recbole_text.job import build_job

from conftest import FAST


@pytest.mark.parametrize("model, strategy", [("gSASRec", "sequence"), ("SASRec", "prefix")])
def test_groups_partition_the_test_rows_and_average_to_the_whole(model, strategy, tiny_data, in_tmp_cwd):
    job = build_job(model, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "num_negatives": 8,
                                                 "train_strategy": strategy, "epochs": 2}, log=False)
    job.trainer.fit(job.train_data, job.valid_data, saved=False)
    whole = job.trainer.evaluate(job.test_data, load_best_model=False)
    seen = seen_in_training(job.train_data)
    assert seen[0].item() is False and seen[1:].all()  # every tiny item occurs in training
    pretend = seen.clone()
    pretend[torch.arange(1, len(seen), 3)] = False  # call every third item unseen
    groups = job.trainer.evaluate_by_target(job.test_data, pretend)
    n = groups["seen"]["rows"] + groups["unseen"]["rows"]
    assert n == len(job.test_data._dataset) and groups["unseen"]["rows"] > 0
    for metric in ("recall@10", "ndcg@10", "mrr@10"):
        mixed = (groups["seen"]["rows"] * groups["seen"][metric] + groups["unseen"]["rows"] * groups["unseen"][metric]) / n
        assert mixed == pytest.approx(whole[metric], abs=1e-3)
    together, again = job.trainer.evaluate_with_target_groups(job.test_data, pretend)
    assert dict(together) == pytest.approx(dict(whole), abs=1e-12) and again == groups  # one pass gives both
    everything = job.trainer.evaluate_by_target(job.test_data, seen)
    assert everything["unseen"] == {"rows": 0}
    assert everything["seen"]["recall@10"] == pytest.approx(whole["recall@10"], abs=1e-4)
