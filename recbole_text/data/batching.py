"""The order of training rows in batches: length-grouped batches and one worker's share of each batch.

:class:`TrainBatches` wraps a training loader (RecBole's interaction loaders, whose ``collate_fn`` turns row
indices into a batch, or this package's :class:`~recbole_text.data.sequence_data.SequenceTrainDataLoader`) and
decides which rows go into each batch:

* **length-grouped batches** (``group_by_length: True``). A model whose batches are padded to their longest row
  (Recformer: each row is as many tokens as its history's text) wastes the padding of short rows batched with
  long ones. Every epoch the rows are shuffled, cut into megabatches of ``MEGABATCH`` batches, each megabatch
  sorted by input width (longest first) and cut into batches, and the batches shuffled (Hugging Face's
  ``group_by_length``). Each row is still trained on once per epoch, and batches still mix users at random;
  only rows of similar width share a batch. On Scientific's prefix rows at 128 tokens, random batches of 16
  pad to 4.36 M token positions for 3.25 M real tokens (74 %); grouped ones to 3.28 M.
* **one worker's share** (Ray Train, ``world_size`` > 1): every worker draws the same order of global batches
  (same seed) and takes ``rows[rank::world_size]`` of each, so one epoch visits every row once in as many
  steps as one process would. A global batch too small to split lends its last row to the workers that would
  get none, so every worker takes the same number of steps (a DDP requirement).

Widths come from the model (``input_widths(item_seq, item_seq_len)``, computed once, in chunks); for the sequence
loader they are those of each user's most recent ``MAX_ITEM_LIST_LENGTH`` items (the rows it draws from them
change every epoch and are no longer).
"""
from __future__ import annotations

import math

import torch

from recbole_text.config import ConfigError

MEGABATCH = 50  # batches sorted together (Hugging Face's LengthGroupedSampler uses 50)
WIDTH_CHUNK = 8192  # rows whose widths are computed at once


def length_grouped_batches(widths: torch.Tensor, batch_size: int, generator: torch.Generator,
                           megabatch: int = MEGABATCH) -> list[torch.Tensor]:
    """One epoch's batches of row indices: shuffled, grouped by ``widths`` (R,) within megabatches of
    ``megabatch`` batches, the batches shuffled. Every row appears exactly once."""
    order = torch.randperm(len(widths), generator=generator)
    group = torch.arange(len(widths)) // (batch_size * megabatch)
    widest = int(widths.max()) + 1 if len(widths) else 1
    order = order[torch.argsort(group * widest + (widest - 1 - widths[order]), stable=True)]  # longest first
    batches = order.split(batch_size)
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def training_inputs(loader, chunk: int = WIDTH_CHUNK):
    """Yield ``(item_seq, item_seq_len)`` of ``loader``'s training rows, in row order, ``chunk`` rows at a time."""
    from recbole_text.data.sequence_data import SequenceTrainDataLoader, padded_rows

    if isinstance(loader, SequenceTrainDataLoader):
        if loader.strategy == "sequence":  # the windows: their inputs are all but the last item
            for start in range(0, len(loader.users), chunk):
                yield loader.sequences[start:start + chunk], loader.lengths[start:start + chunk] - 1
            return
        for start in range(0, len(loader.users), chunk):
            lengths = loader.lengths[start:start + chunk]
            recent = lengths.clamp(max=loader.max_len)
            yield padded_rows(loader.flat, loader.begin[start:start + chunk] + lengths - recent, recent), recent
        return
    config, feat = loader.config, loader._dataset.inter_feat
    item_lists, lengths = feat[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]], feat[config["ITEM_LIST_LENGTH_FIELD"]]
    for start in range(0, len(lengths), chunk):
        yield item_lists[start:start + chunk], lengths[start:start + chunk]


def input_widths(loader, model) -> torch.Tensor:
    """(R,) the input width of each of ``loader``'s training rows, from ``model.input_widths``."""
    measure = getattr(model, "input_widths", None)
    if measure is None:
        raise ConfigError(f"group_by_length=True: {type(model).__name__} pads no input to its batch's longest row "
                          "(models with text inputs do, e.g. Recformer); leave it False")
    with torch.no_grad():
        return torch.cat([measure(item_seq, lengths).cpu() for item_seq, lengths in training_inputs(loader)])


class TrainBatches:
    """A training loader whose batches are length-grouped (``widths`` given) and/or one worker's share of every
    global batch (``world_size`` > 1); see the module doc. Iterates like the loader it wraps and passes every
    other attribute through to it."""

    def __init__(self, loader, seed: int, rank: int = 0, world_size: int = 1, widths: torch.Tensor | None = None):
        from recbole_text.data.sequence_data import SequenceTrainDataLoader

        self.loader, self.rank, self.world_size, self.widths = loader, rank, world_size, widths
        self.generator = torch.Generator().manual_seed(int(seed))  # the same order on every worker
        self.shuffle = bool(getattr(loader, "shuffle", True))
        if isinstance(loader, SequenceTrainDataLoader):
            self.size, self.batch_size = len(loader.users), loader.batch_size
            self._make, self._draws = loader.make_batch, loader.generator
            self._draws.manual_seed(int(seed) + rank)  # RSS targets: each worker draws its own
        elif hasattr(loader, "collate_fn") and hasattr(loader, "sample_size") and hasattr(loader, "step"):
            self.size, self.batch_size = loader.sample_size, loader.step
            self._make, self._draws = (lambda rows: loader.collate_fn(rows.tolist())), None
        else:
            raise ConfigError(f"cannot arrange the batches of a {type(loader).__name__}; this works with RecBole's "
                              "interaction loaders and this package's sequence loader")
        if widths is not None and len(widths) != self.size:
            raise ValueError(f"{len(widths)} widths for {self.size} training rows")

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def restore_random_state(self, state: torch.Tensor) -> None:
        """Continue from a resume point's ``generator`` state (the common batch order). The wrapped sequence
        loader's own draws (RSS targets), which the resume point does not hold, are reseeded from that state and
        the rank, so a resumed worker does not draw again from ``seed + rank`` as at the start."""
        self.generator.set_state(state)
        if self._draws is not None:
            follow_on = int(torch.randint(2 ** 62, (), generator=torch.Generator().set_state(state)))
            self._draws.manual_seed(follow_on + self.rank)

    def global_batches(self):
        if self.widths is not None and self.shuffle:
            yield from length_grouped_batches(self.widths, self.batch_size, self.generator)
            return
        order = torch.randperm(self.size, generator=self.generator) if self.shuffle else torch.arange(self.size)
        yield from order.split(self.batch_size)

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        mine = rows[self.rank::self.world_size]
        return mine if len(mine) else rows[-1:]

    def __iter__(self):
        for rows in self.global_batches():
            yield self._make(self.shard(rows))

    def __getattr__(self, name):  # dataset, _dataset, get_model, ... of the wrapped loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


def arrange_batches(config, loader, model, rank: int = 0, world_size: int = 1):
    """The training loader as a job trains on it: ``loader`` itself, or through :class:`TrainBatches` when
    ``group_by_length`` is set or several workers share it."""
    widths = input_widths(loader, model) if config["group_by_length"] else None
    if widths is None and world_size == 1:
        return loader
    return TrainBatches(loader, config["seed"], rank, world_size, widths)
