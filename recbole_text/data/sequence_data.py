"""Sequence-level training data: each user's sequence is one training example per epoch.

Stock RecBole turns a user with n interactions into n−1 prefix rows and trains on every one of them each
epoch. Models that take a loss at every position learn the same from the whole sequence at once, so
:class:`SequenceTrainDataLoader` yields each training sequence once per epoch (shuffled every epoch) with one
of two strategies (``train_strategy``):

``sequence``
    ``item_id_list`` = ``s[:-1]`` and ``target_id_list`` = ``s[1:]`` (left-aligned, 0 = padding): a loss at
    every position (SASRec/gSASRec's shifted-sequence training). A history longer than
    ``MAX_ITEM_LIST_LENGTH + 1`` is cut into windows from its end, so every training interaction is a target
    once per epoch (``train_windows: last`` keeps only the most recent window).
``rss``
    Recency Sampling of Sequences (Petrov & Macdonald, RecSys'22). From a sequence of length n draw
    ``max(1, ⌊rss_pct·n⌋)`` positions with replacement, ``P(i) ∝ rss_alpha^(n−i)`` (i = 1..n, so the most
    recent item has weight 1); duplicates collapse. ``rss_targets`` holds the drawn items (0-padded) and the
    input ``item_id_list`` is the sequence with the drawn positions removed, cut to the most recent
    ``MAX_ITEM_LIST_LENGTH`` items. Targets are resampled every epoch. The sequence is the user's whole
    training history (``rss_history: full``, the paper's n; the input holds the most recent
    ``MAX_ITEM_LIST_LENGTH`` items that were not drawn) or only its last ``MAX_ITEM_LIST_LENGTH + 1`` items
    (``recent``). ``full`` measured better: ml-100k SeqSASRec-RSS test NDCG@10 0.0447 vs 0.0393 (users average
    106 interactions, so ``recent`` saw half of them), Scientific 0.0502 vs 0.0490.

``sampled_prefix``
    One (prefix, next item) pair per user per epoch: the target position t is drawn uniformly from
    ``max(1, ⌊sampled_prefix_start·n⌋) … n−1`` (0-based; 0.5 = the second half, Recformer's pretraining pairs),
    ``item_id`` = ``s[t]`` and the input is ``s[:t]`` cut to its last ``MAX_ITEM_LIST_LENGTH`` items (never
    empty, never a later item). Drawn again every epoch.

Validation and test stay RecBole's leave-one-out full-ranking loaders; only training changes.
Everything is vectorised over the batch (no Python loop over users or items).

Where the training sequences come from: with one chronological ``.inter`` file,
:class:`~recbole_text.data.text_dataset.TextSequentialDataset` never builds RecBole's prefix rows for these
strategies. It splits RecBole's way on rows *without* history lists (:func:`prefix_rows`), gives only the
validation/test rows their ``item_id_list`` (:func:`history_lists`, the rows RecBole's full-sort evaluation
reads) and hands the loader each user's training sequence straight from the interaction table
(:func:`interaction_histories`, kept as ``train_dataset.flat_sequences``). Memory is O(interactions), never
interactions × ``MAX_ITEM_LIST_LENGTH``. Pre-split ``benchmark_filename`` data keeps its rows, rebuilt into
sequences by :func:`full_histories`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from recbole.data.interaction import Interaction

TARGETS = "target_id_list"
RSS_TARGETS = "rss_targets"
SEQUENCE_STRATEGIES = ("sequence", "rss", "sampled_prefix")  # the strategies this module's loader serves


def prefix_rows(uid: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """RecBole's prefix rows of a table sorted by user then time, without their history lists.

    ``uid`` is (N,), one entry per interaction, each user's interactions contiguous and in time order. Row r
    predicts interaction ``target[r]`` from the ``length[r]`` interactions just before it (the user's earlier
    ones, at most ``max_len``): every interaction but a user's first is a target, as in
    ``SequentialDataset.data_augmentation``. Returns ``target`` (R,) int64 indices into the table and
    ``length`` (R,) int64.
    """
    n = len(uid)
    first = np.ones(n, dtype=bool)
    first[1:] = uid[1:] != uid[:-1]
    user_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, dtype=np.int64)
    target = np.flatnonzero(~first).astype(np.int64)
    return target, np.minimum(target - user_start[target], max_len).astype(np.int64)


def history_lists(values: torch.Tensor, target: torch.Tensor, length: torch.Tensor, shape) -> torch.Tensor:
    """Row r holds ``values[target[r] − length[r] : target[r]]`` left-aligned, the rest 0.

    ``values`` is one field of the interaction table, (N, ...); ``shape`` is the result's shape,
    (R, max_len, ...) as RecBole sizes its ``<field>_list`` columns. Used for the evaluation rows only.
    """
    out = torch.zeros(shape, dtype=values.dtype)
    position = torch.arange(shape[1])[None, :]
    inside = position < length[:, None]  # (R, max_len)
    source = (target - length)[:, None] + position
    out[inside] = values[source[inside]]
    return out


def interaction_histories(uid: np.ndarray, target: np.ndarray, length: np.ndarray, items: np.ndarray):
    """Each user's training sequence from its (history-less) training rows → ``(users, flat, offsets)``.

    ``uid``, ``target``, ``length`` (R,) describe the training rows (:func:`prefix_rows`), ``items`` (N,) is the
    item column of the table ``target`` indexes. Like :func:`full_histories`: the first row's history followed
    by every row's target, rows of a user in time order; ``users`` (U,) ascending, ``flat`` (T,) int64,
    ``offsets`` (U + 1,) with user ``users[u]``'s items at ``flat[offsets[u]:offsets[u + 1]]``.
    """
    order = np.argsort(uid, kind="stable")  # rows of a user keep their (time) order
    sorted_uid = uid[order]
    starts = np.flatnonzero(np.r_[True, sorted_uid[1:] != sorted_uid[:-1]]) if len(order) else np.zeros(0, np.int64)
    rows_per_user = np.diff(np.r_[starts, len(order)])
    first_rows = order[starts]
    history_len = length[first_rows]  # (U,)
    history_begin = target[first_rows] - history_len  # where the first row's history starts in `items`
    offsets = np.r_[0, np.cumsum(history_len + rows_per_user)].astype(np.int64)
    flat = np.zeros(offsets[-1], dtype=np.int64)
    in_history = np.arange(history_len.sum()) - np.repeat(np.cumsum(history_len) - history_len, history_len)
    flat[np.repeat(offsets[:-1], history_len) + in_history] = items[np.repeat(history_begin, history_len) + in_history]
    rank_in_user = np.arange(len(order)) - np.repeat(starts, rows_per_user)
    flat[np.repeat(offsets[:-1] + history_len, rows_per_user) + rank_in_user] = items[target[order]]
    return sorted_uid[starts], flat, offsets


def full_histories(dataset, item_field: str, list_suffix: str, length_field: str):
    """Each user's whole training sequence, rebuilt from RecBole's training rows → ``(users, flat, offsets)``.

    Rows of a user are taken shortest history first (RecBole's own rows are in time order already; UniSRec's
    pre-split files list them longest first), so the sequence is the first row's history followed by every row's target: prefix rows ``[s1]→s2, [s1 s2]→s3, …`` give
    ``s1..sn``; one pre-split row ``[s1..s_{n−1}]→s_n`` gives itself. User ``u``'s items are
    ``flat[offsets[u]:offsets[u + 1]]``.
    """
    feat = dataset.inter_feat
    uid = feat[dataset.uid_field].numpy()
    # rows of a user shortest history first (pre-split files may list them in any order), ties in file order
    order = np.lexsort((feat[length_field].numpy(), uid))
    sorted_uid = uid[order]
    starts = np.flatnonzero(np.r_[True, sorted_uid[1:] != sorted_uid[:-1]])  # first row of each user in `order`
    rows_per_user = np.diff(np.r_[starts, len(order)])
    first_rows = order[starts]
    history_len = feat[length_field].numpy()[first_rows]  # (U,)
    histories = feat[item_field + list_suffix].numpy()[first_rows]  # (U, max_len)
    seq_len = history_len + rows_per_user
    offsets = np.r_[0, np.cumsum(seq_len)]
    flat = np.zeros(offsets[-1], dtype=np.int64)
    in_history = np.arange(histories.shape[1])[None, :] < history_len[:, None]
    flat[(offsets[:-1, None] + np.arange(histories.shape[1])[None, :])[in_history]] = histories[in_history]
    rank_in_user = np.arange(len(order)) - np.repeat(starts, rows_per_user)
    flat[np.repeat(offsets[:-1] + history_len, rows_per_user) + rank_in_user] = feat[item_field].numpy()[order]
    return sorted_uid[starts], flat, offsets


def training_windows(users, flat, offsets, max_len: int, all_windows: bool = True):
    """Cut each sequence into windows of ``max_len + 1`` items from its end → ``(users, windows, lengths)``.

    Consecutive windows overlap by one item, so every item after a user's first is a next-item target exactly
    once per epoch. ``all_windows=False`` keeps only each user's most recent window. ``windows`` is
    (n_windows, max_len + 1), left-aligned, 0-padded; sequences shorter than 2 items are dropped.
    """
    seq_len = np.diff(offsets)
    keep = seq_len >= 2
    users, starts, seq_len = users[keep], offsets[:-1][keep], seq_len[keep]
    count = -(-(seq_len - 1) // max_len) if all_windows else np.ones_like(seq_len)  # ceil((n − 1) / max_len)
    window_user = np.repeat(np.arange(len(users)), count)
    back = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # 0 = most recent window
    end = seq_len[window_user] - back * max_len  # exclusive, within the user's sequence
    begin = np.maximum(end - max_len - 1, 0)
    lengths = torch.as_tensor(end - begin)
    windows = padded_rows(torch.as_tensor(flat), torch.as_tensor(starts[window_user] + begin), lengths)
    return torch.as_tensor(users[window_user]), windows, lengths


def padded_rows(flat: torch.Tensor, begin: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Rows ``flat[begin[r]:begin[r] + lengths[r]]``, left-aligned and 0-padded: (rows, max(lengths))."""
    width = torch.arange(int(lengths.max()))[None, :]
    inside = width < lengths[:, None]
    return torch.where(inside, flat[(begin[:, None] + width) * inside], 0)


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
    # at most n−1 draws, so at least one item is left as input (rss_pct ≥ 1 could otherwise draw them all)
    draws = torch.minimum(torch.clamp((lengths.double() * pct).floor().long(), min=1), (lengths - 1).clamp(min=1))
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


def sampled_prefix_batch(sequences, lengths, max_len, start, generator=None) -> dict[str, torch.Tensor]:
    """One (prefix, next item) pair per row: target position t uniform in ``max(1, ⌊start·n⌋) … n−1``, input the
    last ``max_len`` items before it (left-aligned, 0-padded)."""
    low = torch.minimum((lengths.double() * start).floor().long().clamp(min=1), lengths - 1)  # (B,)
    t = low + (torch.rand(len(lengths), generator=generator, dtype=torch.float64) * (lengths - low)).long()  # (B,)
    first = (t - max_len).clamp(min=0)
    index = first[:, None] + torch.arange(max_len)[None, :]  # (B, max_len)
    inside = index < t[:, None]
    inputs = torch.gather(sequences, 1, index.clamp(max=sequences.shape[1] - 1)) * inside
    return {"inputs": inputs, "input_lengths": t - first, "target": sequences[torch.arange(len(t)), t]}


class SequenceTrainDataLoader:
    """Iterable of :class:`Interaction` batches, one row per window (``sequence``) or user (``rss``), reshuffled
    and resampled every epoch.

    Fields: ``user_id``, ``item_id_list`` (batch, max_len), ``item_length`` and either ``target_id_list``
    (strategy ``sequence``) or ``rss_targets`` (strategy ``rss``). Also ``item_id`` = the last target, so
    prefix-style losses still find a positive.
    """

    def __init__(self, config, dataset, shuffle: bool = True):
        self.config, self.dataset, self._dataset = config, dataset, dataset
        self.strategy = config["train_strategy"]  # sequence | rss (values are checked by the config)
        self.shuffle = shuffle
        self.batch_size = config["train_batch_size"]
        self.max_len = config["MAX_ITEM_LIST_LENGTH"]
        self.item_field, self.uid_field = config["ITEM_ID_FIELD"], dataset.uid_field
        self.list_field = self.item_field + config["LIST_SUFFIX"]
        self.length_field = config["ITEM_LIST_LENGTH_FIELD"]
        histories = getattr(dataset, "flat_sequences", None)  # from the interaction table (TextSequentialDataset)
        if histories is None:  # pre-split rows (benchmark_filename) or prefix rows: rebuilt from their histories
            histories = full_histories(dataset, self.item_field, config["LIST_SUFFIX"], self.length_field)
        if self.strategy == "sequence":
            all_windows = config["train_windows"] != "last"
            self.users, self.sequences, self.lengths = training_windows(*histories, self.max_len, all_windows)
        else:  # one example per user, drawn from its whole history or (rss_history: recent) its last items
            history = config["rss_history"] if self.strategy == "rss" else "full"
            history = history or "full"
            users, flat, offsets = histories
            lengths = np.diff(offsets)
            if history == "recent":
                lengths = np.minimum(lengths, self.max_len + 1)
            keep = lengths >= 2
            # kept ragged (flat + begin + length): a dense users × longest-history matrix can be huge
            self.users, self.flat = torch.as_tensor(users[keep]), torch.as_tensor(flat)
            self.begin, self.lengths = torch.as_tensor(offsets[1:][keep] - lengths[keep]), torch.as_tensor(lengths[keep])
        self.alpha, self.pct = float(config["rss_alpha"]), float(config["rss_pct"])
        self.prefix_start = float(config["sampled_prefix_start"] if config["sampled_prefix_start"] is not None else 0.5)
        self.generator = torch.Generator().manual_seed(int(config["seed"]))

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.users), generator=self.generator) if self.shuffle else torch.arange(len(self.users))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield self.make_batch(rows)

    def make_batch(self, rows: torch.Tensor) -> Interaction:
        lengths = self.lengths[rows]
        if self.strategy == "sequence":
            sequences = self.sequences[rows]
            parts, target_field = shifted_batch(sequences, lengths), TARGETS
        elif self.strategy == "sampled_prefix":
            sequences = padded_rows(self.flat, self.begin[rows], lengths)
            parts = sampled_prefix_batch(sequences, lengths, self.max_len, self.prefix_start, self.generator)
            return Interaction({self.uid_field: self.users[rows], self.list_field: parts["inputs"],
                                self.length_field: parts["input_lengths"], self.item_field: parts["target"]})
        else:
            sequences = padded_rows(self.flat, self.begin[rows], lengths)
            parts = rss_batch(sequences, lengths, self.max_len, self.alpha, self.pct, self.generator)
            target_field = RSS_TARGETS
        return Interaction({
            self.uid_field: self.users[rows],
            self.list_field: parts["inputs"],
            self.length_field: parts["input_lengths"],
            target_field: parts["targets"],
            self.item_field: sequences[torch.arange(len(rows)), lengths - 1],
        })
