"""Cold-start protocol: a seeded share of the items is removed from training and only from training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_text.config import ConfigError
from recbole_text.data.cold_start import held_out_items, without_items_flat, without_items_rows
from recbole_text.evaluation.target_groups import seen_in_training
from recbole_text.job import build_job

from conftest import FAST


def test_held_out_items_is_seeded_sized_and_never_padding():
    held = held_out_items(101, 0.1, seed=7)
    assert held.sum() == 10 and not held[0]
    assert torch.equal(held, held_out_items(101, 0.1, seed=7))
    assert not torch.equal(held, held_out_items(101, 0.1, seed=8))
    assert held_out_items(101, 0.0, seed=7).sum() == 0
    with pytest.raises(ValueError, match="cold_start_items"):
        held_out_items(10, 1.0, seed=0)


def test_flat_sequences_lose_exactly_the_held_out_items_in_order():
    users = np.array([3, 5])
    flat = np.array([1, 2, 3, 4, 2, 5, 2])
    offsets = np.array([0, 4, 7])
    held = torch.zeros(6, dtype=torch.bool)
    held[2] = True
    out_users, out_flat, out_offsets = without_items_flat((users, flat, offsets), held)
    assert out_users.tolist() == [3, 5]
    assert out_flat.tolist() == [1, 3, 4, 5] and out_offsets.tolist() == [0, 3, 4]


def test_rows_drop_held_targets_and_compact_every_history_list():
    rows = Interaction({
        "item_id": torch.tensor([4, 2, 5, 6]),
        "item_id_list": torch.tensor([[1, 2, 3], [1, 3, 0], [2, 0, 0], [2, 3, 1]]),
        "timestamp_list": torch.tensor([[10., 20., 30.], [10., 30., 0.], [20., 0., 0.], [5., 6., 7.]]),
        "item_length": torch.tensor([3, 2, 1, 3]),
    })
    held = torch.zeros(7, dtype=torch.bool)
    held[2] = True
    out = without_items_rows(rows, held, "item_id", "_list", "item_length")
    # row 1 (target 2) dropped; row 2's only history item was 2, so it has no history left and goes too
    assert out["item_id"].tolist() == [4, 6]
    assert out["item_id_list"].tolist() == [[1, 3, 0], [3, 1, 0]]
    assert out["timestamp_list"].tolist() == [[10., 30., 0.], [6., 7., 0.]]  # aligned with the items
    assert out["item_length"].tolist() == [2, 2]


@pytest.mark.parametrize("model, strategy", [("gSASRec", "sequence"), ("SASRec", "prefix")])
def test_held_out_items_leave_training_and_only_training(model, strategy, tiny_data, in_tmp_cwd):
    settings = {**FAST, "data_path": str(tiny_data), "num_negatives": 8, "train_strategy": strategy}
    plain = build_job(model, "tiny", config_dict=settings, with_trainer=False, log=False)
    cold = build_job(model, "tiny", config_dict={**settings, "cold_start_items": 0.2}, with_trainer=False, log=False)
    held = cold.dataset.cold_start_held_out
    assert held.sum() == round(0.2 * (cold.dataset.item_num - 1))
    seen = seen_in_training(cold.train_data)
    assert not (seen & held).any()  # no held-out item anywhere in training
    assert seen_in_training(plain.train_data)[1:].all()
    assert torch.equal(seen | held, seen_in_training(plain.train_data) | held)  # nothing else was removed
    for split in ("valid_data", "test_data"):  # evaluation rows are untouched: histories and targets
        a, b = getattr(plain, split)._dataset.inter_feat, getattr(cold, split)._dataset.inter_feat
        assert torch.equal(a["item_id"], b["item_id"]) and torch.equal(a["item_id_list"], b["item_id_list"])
    assert held[cold.test_data._dataset.inter_feat["item_id"]].any()  # some test targets are cold


def test_cold_start_setting_is_checked_when_the_config_is_built(tiny_data, in_tmp_cwd):
    with pytest.raises(ConfigError, match="cold_start_items=1.5"):
        build_job("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "cold_start_items": 1.5},
                  loaders=False, with_trainer=False, log=False)
