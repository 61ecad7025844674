"""Length-grouped training batches (``group_by_length``) and one worker's share of every batch."""
from __future__ import annotations

import pytest
import torch

from recbole_text.config import ConfigError, TextConfig
from recbole_text.data import create_dataset, data_preparation
from recbole_text.data.batching import TrainBatches, length_grouped_batches
from recbole_text.job import build_job

from conftest import FAST
from test_recformer import settings


def padded(widths: torch.Tensor, batches) -> int:
    return sum(int(widths[rows].max()) * len(rows) for rows in batches)


def test_grouped_batches_hold_every_row_once_and_pad_less_than_random_ones():
    widths = torch.randint(2, 129, (1000,), generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    first = length_grouped_batches(widths, 16, generator, megabatch=10)
    second = length_grouped_batches(widths, 16, generator, megabatch=10)
    for batches in (first, second):
        assert sorted(torch.cat(batches).tolist()) == list(range(1000))
        assert [len(b) for b in batches].count(16) == len(batches) - 1  # 1000 = 62·16 + 8
    assert [b.tolist() for b in first] != [b.tolist() for b in second]  # a new order every epoch
    random = padded(widths, torch.randperm(1000, generator=generator).split(16))
    assert padded(widths, first) < 0.75 * random
    # a megabatch that holds every row sorts them all: the least padding there can be
    everything = length_grouped_batches(widths, 16, generator, megabatch=100)
    assert padded(widths, everything) == padded(widths, widths.argsort(descending=True).split(16))


def test_grouped_batches_sort_within_megabatches_of_shuffled_rows():
    widths = torch.randint(0, 30, (64,), generator=torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(3)
    shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(3))  # the order the function draws first
    batches = length_grouped_batches(widths, 4, generator, megabatch=2)  # megabatches of 8 shuffled rows
    expected = set()
    for megabatch in shuffled.split(8):
        longest_first = megabatch[torch.argsort(-widths[megabatch], stable=True)]
        expected |= {tuple(rows.tolist()) for rows in longest_first.split(4)}
    assert {tuple(rows.tolist()) for rows in batches} == expected and len(batches) == 16


def test_recformer_trains_on_every_prefix_row_once_per_epoch_in_grouped_batches(text_data, in_tmp_cwd):
    grouped = build_job("Recformer", "c", config_dict=settings(text_data, group_by_length=True, train_batch_size=8),
                        log=False)
    plain = build_job("Recformer", "c", config_dict=settings(text_data, group_by_length=False, train_batch_size=8),
                      log=False)
    assert isinstance(grouped.train_data, TrainBatches) and not isinstance(plain.train_data, TrainBatches)
    model = grouped.model

    def epoch(loader):
        rows, tokens = [], 0
        for batch in loader:
            widths = model.input_widths(batch["item_id_list"], batch["item_length"])
            tokens += int(widths.max()) * len(widths)
            rows += list(zip(batch["user_id"].tolist(), batch["item_length"].tolist(), batch["item_id"].tolist()))
        return sorted(rows), tokens

    (grouped_rows, grouped_tokens), (plain_rows, plain_tokens) = epoch(grouped.train_data), epoch(plain.train_data)
    assert grouped_rows == plain_rows and len(grouped.train_data) == len(plain.train_data)
    assert grouped_tokens < plain_tokens
    grouped.trainer.fit(grouped.train_data, grouped.valid_data, saved=False)  # it trains through RecBole's loop
    assert grouped.trainer.steps_done == len(grouped.train_data)


def test_workers_share_each_grouped_batch(tiny_data):
    config = TextConfig("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "train_batch_size": 10})
    train = data_preparation(config, create_dataset(config))[0]
    widths = torch.randint(1, 50, (train.sample_size,), generator=torch.Generator().manual_seed(0))
    whole = TrainBatches(train, 5, widths=widths)
    shards = [TrainBatches(train, 5, rank, 2, widths) for rank in (0, 1)]
    for rows, mine, theirs in zip(whole.global_batches(), *(s.global_batches() for s in shards)):
        assert torch.equal(rows, mine) and torch.equal(rows, theirs)  # the same grouped order on every worker
        assert sorted(shards[0].shard(rows).tolist() + shards[1].shard(rows).tolist()) == sorted(rows.tolist())


def test_group_by_length_needs_a_model_with_input_widths_and_a_bool(tiny_data, in_tmp_cwd):
    with pytest.raises(ConfigError, match="group_by_length=True: SASRec pads no input"):
        build_job("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "group_by_length": True},
                  log=False, with_trainer=False)
    with pytest.raises(ConfigError, match="group_by_length='yes' must be True or False"):
        TextConfig("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "group_by_length": "yes"})


def test_resumed_workers_draw_rss_targets_anew_from_the_restored_state(tiny_data):
    def rss_loader():
        config = TextConfig("SeqSASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data),
                                                              "train_strategy": "rss", "train_batch_size": 16})
        return data_preparation(config, create_dataset(config))[0]

    first_sitting = TrainBatches(rss_loader(), 5, 0, 2)
    list(first_sitting)  # one epoch, then the resume point keeps the order's state
    state = first_sitting.generator.get_state()
    draws = []
    for rank in (0, 1, 1):
        worker = TrainBatches(rss_loader(), 5, rank, 2)
        at_start = worker.loader.generator.get_state()
        worker.restore_random_state(state)
        assert torch.equal(worker.generator.get_state(), state)
        assert not torch.equal(worker.loader.generator.get_state(), at_start)  # not seed + rank again
        draws.append([batch["rss_targets"].tolist() for batch in worker])
    assert draws[0] != draws[1] and draws[1] == draws[2]  # each rank its own draws, reproducibly
