"""Sequence-level training data: each user's sequence is one training example per epoch.

Stock RecBole turns a user with n interactions into n−1 prefix rows and trains on every one of them each
epoch. Models that take a loss at every position learn the same from the whole sequence at once, so
:class:`SequenceTrainDataLoader` yields each training sequence once per epoch (shuffled every epoch) with one
of two strategies (``train_strategy``):

``sequence``
    ``item_id_list`` = ``s[:-1]`` and ``target_id_list`` = ``s[1:]`` (left-aligned, 0 = padding): a loss at
    every position (SASRec/gSASRec's shifted-sequence training).
``rss``
    Recency Sampling of Sequences (Petrov & Macdonald, RecSys'22). From a sequence of length n draw
    ``max(1, ⌊rss_pct·n⌋)`` positions with replacement, ``P(i) ∝ rss_alpha^(n−i)`` (i = 1..n, so the most
    recent item has weight 1); duplicates collapse. ``rss_targets`` holds the drawn items (0-padded) and the
    input ``item_id_list`` is the sequence with the drawn positions removed, cut to the most recent
    ``MAX_ITEM_LIST_LENGTH`` items. Targets are resampled every epoch.

Validation and test stay RecBole's leave-one-out full-ranking loaders; only training changes.
Everything is vectorised over the batch (no Python loop over users or items).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from recbole.data.interaction import Interaction

TARGETS = "target_id_list"
RSS_TARGETS = "rss_targets"
STRATEGIES = ("prefix", "sequence", "rss")


def training_sequences(dataset, item_field: str, list_suffix: str, length_field: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each user's longest training prefix row + its target → ``(users, sequences, lengths)``.

    ``sequences`` is (users, max_len + 1), left-aligned, 0-padded; it holds the most recent
    ``MAX_ITEM_LIST_LENGTH + 1`` training items of each user (the history of the last prefix row, then its
    target). Works for augmented and for pre-split training rows alike.
    """
    feat = dataset.inter_feat
    uid = feat[dataset.uid_field].numpy()
    lengths = feat[length_field].numpy()
    histories = feat[item_field + list_suffix]
    order = np.lexsort((lengths, uid))  # by user, then by history length
    last_of_user = order[np.r_[uid[order][1:] != uid[order][:-1], True]]
    rows = torch.as_tensor(last_of_user)
    history, history_len = histories[rows], torch.as_tensor(lengths[last_of_user])
    sequences = torch.cat([history, torch.zeros(len(rows), 1, dtype=history.dtype)], dim=1)
    sequences[torch.arange(len(rows)), history_len] = feat[item_field][rows]
    return torch.as_tensor(uid[last_of_user]), sequences, history_len + 1


def shifted_batch(sequences: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs ``s[:-1]`` and targets ``s[1:]`` for every position; both (batch, max_len)."""
    input_lengths = lengths - 1
    inside = torch.arange(sequences.shape[1] - 1)[None, :] < input_lengths[:, None]
    inputs = sequences[:, :-1] * inside  # the last item of each sequence is only a target
    return {"inputs": inputs, "targets": sequences[:, 1:].clone(), "input_lengths": input_lengths}


def rss_draw(lengths: torch.Tensor, max_len: int, alpha: float, pct: float, generator=None) -> torch.Tensor:
    """Boolean (batch, max_len) mask of target positions, drawn with ``P(i) ∝ alpha^(n−i)``."""
    batch = len(lengths)
    positions = torch.arange(max_len).expand(batch, max_len)
    valid = positions < lengths[:, None]
    exponent = (lengths[:, None] - 1 - positions).clamp(min=0).double()  # n−i with i 1-based
    weights = torch.where(valid, torch.pow(torch.tensor(alpha, dtype=torch.float64), exponent), 0.0)
    draws = torch.clamp((lengths.double() * pct).floor().long(), min=1)
    picked = torch.multinomial(weights, int(draws.max()), replacement=True, generator=generator)
    keep_draw = torch.arange(picked.shape[1]).expand_as(picked) < draws[:, None]
    mask = torch.zeros(batch, max_len, dtype=torch.bool)
    mask[torch.arange(batch)[:, None].expand_as(picked)[keep_draw], picked[keep_draw]] = True
    return mask


def compact_left(values: torch.Tensor, keep: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept entries of each row moved to the left (order kept), cut to the last ``width``; 0-padded."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    packed = torch.gather(values, 1, order)
    counts = keep.sum(dim=1)
    start = (counts - width).clamp(min=0)
    index = (torch.arange(width)[None, :] + start[:, None]).clamp(max=values.shape[1] - 1)
    out = torch.gather(packed, 1, index)
    out[torch.arange(width)[None, :] >= (counts - start)[:, None]] = 0
    return out, counts - start


def rss_batch(sequences, lengths, max_len, alpha, pct, generator=None) -> dict[str, torch.Tensor]:
    """RSS example per row: input without the targets (last ``max_len`` items) and the target set."""
    valid = torch.arange(sequences.shape[1])[None, :] < lengths[:, None]
    targets_mask = rss_draw(lengths, sequences.shape[1], alpha, pct, generator)
    inputs, input_lengths = compact_left(sequences, valid & ~targets_mask, max_len)
    targets, _ = compact_left(sequences, targets_mask, int(targets_mask.sum(1).max()))
    return {"inputs": inputs, "targets": targets, "input_lengths": input_lengths}


class SequenceTrainDataLoader:
    """Iterable of :class:`Interaction` batches, one row per user, reshuffled and resampled every epoch.

    Fields: ``user_id``, ``item_id_list`` (batch, max_len), ``item_length`` and either ``target_id_list``
    (strategy ``sequence``) or ``rss_targets`` (strategy ``rss``). Also ``item_id`` = the last target, so
    prefix-style losses still find a positive.
    """

    def __init__(self, config, dataset, shuffle: bool = True):
        from recbole_text.config import ConfigError

        self.config, self.dataset, self._dataset = config, dataset, dataset
        self.strategy = config["train_strategy"]
        if self.strategy not in ("sequence", "rss"):
            raise ConfigError(f"train_strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        self.shuffle = shuffle
        self.batch_size = config["train_batch_size"]
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        self.item_field, self.uid_field = config["ITEM_ID_FIELD"], dataset.uid_field
        self.list_field = self.item_field + config["LIST_SUFFIX"]
        self.length_field = config["ITEM_LIST_LENGTH_FIELD"]
        self.users, self.sequences, self.lengths = training_sequences(
            dataset, self.item_field, config["LIST_SUFFIX"], self.length_field
        )
        self.alpha, self.pct = float(config["rss_alpha"]), float(config["rss_pct"])
        self.generator = torch.Generator().manual_seed(int(config["seed"]))
        keep = self.lengths >= 2  # a single item has nothing to predict from
        self.users, self.sequences, self.lengths = self.users[keep], self.sequences[keep], self.lengths[keep]

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.users), generator=self.generator) if self.shuffle else torch.arange(len(self.users))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield self.make_batch(rows)

    def make_batch(self, rows: torch.Tensor) -> Interaction:
        sequences, lengths = self.sequences[rows], self.lengths[rows]
        if self.strategy == "sequence":
            parts, target_field = shifted_batch(sequences, lengths), TARGETS
        else:
            parts = rss_batch(sequences, lengths, self.max_len, self.alpha, self.pct, self.generator)
            target_field = RSS_TARGETS
        return Interaction({
            self.uid_field: self.users[rows],
            self.list_field: parts["inputs"],
            self.length_field: parts["input_lengths"],
            target_field: parts["targets"],
            self.item_field: sequences[torch.arange(len(rows)), lengths - 1],
        })
