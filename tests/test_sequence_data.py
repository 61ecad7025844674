"""Sequence/RSS training data straight from the interaction table, checked against RecBole's prefix rows.

For ``train_strategy`` sequence/rss, :class:`TextSequentialDataset` never builds RecBole's prefix rows; these
tests build RecBole's own ``SequentialDataset`` on the same config and data and require the same evaluation
rows, the same training rows (minus their history lists) and the same flat training sequences.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.data.dataset import SequentialDataset

from recbole_text.config import TextConfig
from recbole_text.data import create_dataset, data_preparation, sequence_data
from recbole_text.data.atomic import write_atomic_file
from recbole_text.data.sequence_data import full_histories, interaction_histories, prefix_rows
from recbole_text.data.text_dataset import TextSequentialDataset

from conftest import FAST, REPO, write_tiny_dataset

MAX_LEN = 4


def write_ragged_dataset(root: Path, name: str = "ragged") -> Path:
    """Users with 1..16 interactions (some shorter than a leave-one-out split needs, most longer than
    MAX_LEN + 1), timestamp ties inside a user, rows out of time order and a float ``rating`` field."""
    rng = np.random.default_rng(5)
    rows = []
    for user in range(40):
        n = user % 16 + 1
        times = np.sort(rng.integers(0, 8, n)) + user * 100  # ties: several interactions at one timestamp
        for step, t in enumerate(times):
            rows.append((f"u{user}", f"i{rng.integers(1, 30)}", float(t), float(rng.integers(1, 6))))
    order = rng.permutation(len(rows))  # the file is not sorted: RecBole's sort decides
    write_atomic_file(root / name / f"{name}.inter",
                      [("user_id", "token"), ("item_id", "token"), ("timestamp", "float"), ("rating", "float")],
                      [rows[i] for i in order])
    return root


def config_for(data_path: Path, name: str, model: str = "SeqSASRec", **overrides):
    settings = {**FAST, "data_path": str(data_path), "MAX_ITEM_LIST_LENGTH": MAX_LEN,
                "load_col": {"inter": ["user_id", "item_id", "timestamp", "rating"]}, **overrides}
    return TextConfig(model, name, config_dict=settings)


def assert_same_rows(ours, recboles, fields=None):
    ours, recboles = ours.inter_feat, recboles.inter_feat
    fields = list(recboles.interaction) if fields is None else fields
    assert [f for f in ours.interaction if f in fields] == fields  # same columns, same order
    for field in fields:
        assert ours[field].dtype == recboles[field].dtype, field
        assert torch.equal(ours[field], recboles[field]), field


SPLITS = [{"LS": "valid_and_test"}, {"LS": "valid_only"}, {"LS": "test_only"}, {"RS": [0.6, 0.2, 0.2]}]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: "-".join(map(str, [*s, *s.values()])))
@pytest.mark.parametrize("strategy", ["sequence", "rss"])
def test_splits_equal_recboles_prefix_rows(split, strategy, tmp_path, in_tmp_cwd):
    """Validation/test rows are RecBole's (every field, ``item_id_list``/``timestamp_list``/``rating_list``,
    dtype and row order); training rows are RecBole's without their lists; the flat training sequences are
    ``full_histories`` of RecBole's training rows."""
    data = write_ragged_dataset(tmp_path)
    config = config_for(data, "ragged", train_strategy=strategy,
                        eval_args={"split": split, "order": "TO", "group_by": "user", "mode": "full"})
    ours = TextSequentialDataset(config)
    assert ours._flat_training()
    train, *evaluation = ours.build()
    reference_train, *reference_evaluation = SequentialDataset(config).build()
    for part, reference in zip(evaluation, reference_evaluation):
        assert_same_rows(part, reference)
    assert sum(len(part) for part in evaluation) > 0
    lists = [f for f in reference_train.inter_feat.interaction if f.endswith(config["LIST_SUFFIX"])]
    assert set(lists) == {"item_id_list", "timestamp_list", "rating_list"}
    assert not set(lists) & set(train.inter_feat.interaction)  # no history lists for training rows
    assert_same_rows(train, reference_train, [f for f in reference_train.inter_feat.interaction if f not in lists])
    for got, want in zip(train.flat_sequences, full_histories(reference_train, "item_id", "_list", "item_length")):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_leave_one_out_rows_are_the_last_two_recbole_rows_of_each_user(tmp_path, in_tmp_cwd):
    """LS valid_and_test: one validation and one test row per user (with ≥ 4 interactions), the last
    MAX_ITEM_LIST_LENGTH items before the target; training sequences hold everything before the valid target."""
    data = write_ragged_dataset(tmp_path)
    config = config_for(data, "ragged", train_strategy="sequence")
    train, valid, test = TextSequentialDataset(config).build()
    prefix = SequentialDataset(config)
    prefix._change_feat_format()  # RecBole's prefix rows, sorted by user and time
    rows = prefix.inter_feat
    uid = rows["user_id"].numpy()
    last = np.flatnonzero(np.r_[uid[1:] != uid[:-1], True])  # each user's last row
    with_test = last[(last >= 1) & (uid[np.maximum(last - 1, 0)] == uid[last])]  # users with ≥ 2 rows
    with_valid = last[(last >= 2) & (uid[np.maximum(last - 2, 0)] == uid[last])]  # ≥ 3 rows
    assert 0 < len(with_valid) < len(with_test) < len(last)  # the data has users of every kind
    for part, index in ((test, with_test), (valid, with_valid - 1)):
        assert len(part) == len(index)
        order = np.argsort(part.inter_feat["user_id"].numpy(), kind="stable")
        for field in rows.interaction:
            assert torch.equal(part.inter_feat[field][order], rows[field][index]), field
    users, flat, offsets = train.flat_sequences
    sequences = {int(u): flat[offsets[k]:offsets[k + 1]].tolist() for k, u in enumerate(users)}
    for k in with_valid:
        user = int(uid[k])
        begin = np.flatnonzero(uid == user)[0]
        whole = [int(rows["item_id_list"][begin][0])] + rows["item_id"][begin:k + 1].tolist()
        assert sequences[user] == whole[:-2]  # s1 .. s(n−2): all but the valid and test targets


def test_no_interactions_by_history_tensor_is_built(tmp_path, in_tmp_cwd, monkeypatch):
    """RecBole's augmentation never runs; the only history lists built are the evaluation rows' (2 per user)."""
    write_tiny_dataset(tmp_path, users=50, length=30)
    config = TextConfig("gSASRec", "tiny", config_dict={**FAST, "data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 20})

    def refuse(self):
        raise AssertionError("RecBole's data_augmentation ran")

    monkeypatch.setattr(SequentialDataset, "data_augmentation", refuse)
    shapes, real = [], sequence_data.history_lists
    monkeypatch.setattr("recbole_text.data.text_dataset.history_lists",
                        lambda values, target, length, shape: shapes.append(shape) or real(values, target, length,
                                                                                          shape))
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    assert sorted(shapes) == sorted([(50, 20)] * 4)  # item_id_list and timestamp_list of valid and test
    for feat, rows in ((dataset.inter_feat, 50 * 29), (train.dataset.inter_feat, 50 * 27)):
        assert len(feat) == rows and all(v.dim() == 1 for v in feat.interaction.values())
    users, flat, offsets = train.dataset.flat_sequences
    assert len(flat) == 50 * 28 and len(users) == 50 and np.array_equal(np.diff(offsets), np.full(50, 28))


def old_and_new(config, monkeypatch):
    """(loader built from RecBole's prefix rows, loader built from the interaction table) on one config."""
    new = data_preparation(config, create_dataset(config))
    with monkeypatch.context() as patch:
        patch.setattr(TextSequentialDataset, "_flat_training", lambda self: False)
        old = data_preparation(config, create_dataset(config))
    assert not hasattr(old[0].dataset, "flat_sequences") and "item_id_list" in old[0].dataset.inter_feat
    return old, new


@pytest.mark.parametrize("strategy, extra", [("sequence", {}), ("sequence", {"train_windows": "last"}),
                                             ("rss", {}), ("rss", {"rss_history": "recent"}),
                                             ("sampled_prefix", {})])
def test_training_batches_equal_the_prefix_row_path(strategy, extra, tmp_path, in_tmp_cwd, monkeypatch):
    """Same windows / RSS sequences, same user order, same batches (RSS draws included) on one seed."""
    data = write_ragged_dataset(tmp_path)
    config = config_for(data, "ragged", train_strategy=strategy, train_batch_size=8, **extra)
    (old, old_valid, old_test), (new, new_valid, new_test) = old_and_new(config, monkeypatch)
    names = ("users", "sequences", "lengths") if strategy == "sequence" else ("users", "flat", "begin", "lengths")
    for name in names:
        assert torch.equal(getattr(old, name), getattr(new, name)), name
    for old_batch, new_batch in zip(old, new, strict=True):
        assert list(old_batch.interaction) == list(new_batch.interaction)
        for field in old_batch.interaction:
            assert torch.equal(old_batch[field], new_batch[field]), field
    for old_part, new_part in ((old_valid, new_valid), (old_test, new_test)):
        assert_same_rows(new_part._dataset, old_part._dataset)


def test_sampled_prefix_pairs_a_prefix_with_a_target_from_the_second_half():
    sequences = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 0, 0, 0, 0, 0, 0], [11, 12, 13, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([8, 2, 3])
    seen = [set(), set(), set()]
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = sequence_data.sampled_prefix_batch(sequences, lengths, 3, 0.5, generator)
        for row in range(3):
            t = int(batch["input_lengths"][row])
            target = int(batch["target"][row])
            position = int((sequences[row] == target).nonzero())
            seen[row].add(position)
            # the input is the (at most 3) items right before the target, left-aligned, never empty
            want = sequences[row, max(0, position - 3):position]
            assert t == len(want) >= 1 and torch.equal(batch["inputs"][row, :t], want)
            assert not batch["inputs"][row, t:].any()
    assert seen == [{4, 5, 6, 7}, {1}, {1, 2}]  # uniform over ⌊0.5·n⌋ … n−1, and position 0 never a target


def test_prefix_strategy_and_presplit_data_keep_recboles_rows(tmp_path, in_tmp_cwd):
    """``train_strategy: prefix`` (RecBole's models) builds RecBole's prefix rows, histories included."""
    data = write_ragged_dataset(tmp_path)
    config = config_for(data, "ragged", model="SASRec", train_strategy="prefix")
    ours = TextSequentialDataset(config)
    assert not ours._flat_training()
    for part, reference in zip(ours.build(), SequentialDataset(config).build()):
        assert_same_rows(part, reference)
        assert not hasattr(part, "flat_sequences")


def test_presplit_data_trains_from_its_rows(tmp_path, in_tmp_cwd):
    """``benchmark_filename`` data keeps RecBole's rows; the sequence loader rebuilds sequences from them."""
    sequences = {f"u{u}": [f"i{(u * 3 + k) % 25 + 1}" for k in range(u % 5 + 4)] for u in range(30)}
    header = [("user_id", "token"), ("item_id_list", "token_seq"), ("item_id", "token")]
    parts = {"train": [], "valid": [], "test": []}
    for user, seq in sequences.items():
        parts["train"] += [(user, " ".join(seq[:t]), seq[t]) for t in range(1, len(seq) - 2)]
        parts["valid"].append((user, " ".join(seq[:-2]), seq[-2]))
        parts["test"].append((user, " ".join(seq[:-1]), seq[-1]))
    for part, rows in parts.items():
        write_atomic_file(tmp_path / "pre" / f"pre.{part}.inter", header, rows)
    config = TextConfig("SeqSASRec", "pre", config_dict={**FAST, "data_path": str(tmp_path), "train_strategy": "rss",
                                                         "benchmark_filename": ["train", "valid", "test"]})
    dataset = create_dataset(config)
    assert not dataset._flat_training()
    train, _, test = data_preparation(config, dataset)
    assert len(test._dataset) == 30 and not hasattr(train.dataset, "flat_sequences")
    for user, begin, length in zip(train.users.tolist(), train.begin.tolist(), train.lengths.tolist()):
        token = dataset.id2token("user_id", user)
        assert dataset.id2token("item_id", train.flat[begin:begin + length].numpy()).tolist() == sequences[token][:-2]


def test_interaction_histories_matches_full_histories_of_prefix_rows():
    """The two sequence builders agree on random users (lengths 1..30, shuffled rows, long histories cut)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 30, 50)
    uid = np.repeat(rng.permutation(np.arange(1, 51)), lengths)  # contiguous users, not in id order
    items = rng.integers(1, 100, len(uid))
    target, length = prefix_rows(uid, 6)
    assert np.array_equal(length, np.minimum(target - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)[target], 6))

    rank = target - np.repeat(np.r_[0, np.cumsum(lengths)[:-1]], lengths)[target]  # 1 = a user's first row
    interleaved = np.lexsort((uid[target], rank))  # users' rows interleaved, each user's in time order
    target, length = target[interleaved], length[interleaved]
    history = np.zeros((len(target), 6), dtype=np.int64)  # RecBole-style prefix rows with their (cut) histories
    for r, (t, n) in enumerate(zip(target, length)):
        history[r, :n] = items[t - n:t]
    rows = SimpleNamespace(uid_field="user_id", inter_feat={
        "user_id": torch.as_tensor(uid[target]), "item_id": torch.as_tensor(items[target]),
        "item_length": torch.as_tensor(length), "item_id_list": torch.as_tensor(history)})
    got = interaction_histories(uid[target], target, length, items)
    want = full_histories(rows, "item_id", "_list", "item_length")
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    users, flat, offsets = got
    for k, user in enumerate(users):
        assert flat[offsets[k]:offsets[k + 1]].tolist() == items[uid == user].tolist()  # the whole sequence


@pytest.fixture(scope="module")
def ml100k_data(tmp_path_factory) -> Path:
    """A data_path where ml-100k-text is built once for the tests below (on first use, from RecBole's wheel)."""
    return tmp_path_factory.mktemp("ml100k")


@pytest.mark.parametrize("model, extra", [("gSASRec", {"num_negatives": 64}),
                                          ("SeqSASRec", {"train_strategy": "rss", "loss_type": "CE"})])
def test_ml100k_test_metrics_equal_the_prefix_row_path(model, extra, ml100k_data, in_tmp_cwd, monkeypatch):
    """One epoch on ml-100k-text from the interaction table and from RecBole's prefix rows: identical metrics."""
    from recbole_text.quick_start import run

    settings = {"data_path": str(ml100k_data), "epochs": 1, "show_progress": False, "state": "WARNING",
                "hidden_size": 32, "inner_size": 64, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 50,
                "train_batch_size": 256, **extra}
    new = run(model, "ml-100k-text", config_dict=settings, saved=False)
    with monkeypatch.context() as patch:
        patch.setattr(TextSequentialDataset, "_flat_training", lambda self: False)
        old = run(model, "ml-100k-text", config_dict=settings, saved=False)
    assert new["test_result"] == old["test_result"] and new["best_valid_result"] == old["best_valid_result"]
    assert new["test_result"]["recall@50"] > 0


def test_synthetic_dataset_generator(tmp_path, in_tmp_cwd):
    """The benchmark's generator: seeded, the requested shape, readable as a dataset with item text."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from synthetic_dataset import write_dataset
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    folder = write_dataset(tmp_path / "a", "syn", users=80, items=50, mean_length=30, seed=3)
    again = write_dataset(tmp_path / "b", "syn", users=80, items=50, mean_length=30, seed=3)
    for suffix in ("inter", "itemtext"):
        assert (folder / f"syn.{suffix}").read_bytes() == (again / f"syn.{suffix}").read_bytes()
    config = TextConfig("gSASRec", "syn", config_dict={**FAST, "data_path": str(tmp_path / "a")})
    dataset = create_dataset(config)
    assert dataset.user_num - 1 == 80 and dataset.inter_num >= 80 * 20
    assert dataset.items_without_text == 0 and dataset.item_text(1).startswith("title: The ")
    counts = np.array(list(dataset.item_counter.values()))
    assert counts.max() > 5 * np.median(counts)  # popularity skew
