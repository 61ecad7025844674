"""Cold-start protocol: hold a seeded random share of the catalogue out of training.

With ``cold_start_items: 0.1`` a random 10 % of the items (drawn with ``cold_start_seed``) never occurs in
training: every training interaction with one of them is removed, both as a target and inside a history.
Validation and test are untouched, so their histories and targets still hold the held-out items. Test rows
whose target was held out are the *unseen* group of ``test_by_target``
(:func:`recbole_text.evaluation.target_groups.seen_in_training`): an ID model has never trained their
embeddings, a text model still knows their text.

Applied to the training split only, in the two forms it takes: RecBole's rows (a target and its history lists,
prefix training or pre-split ``benchmark_filename`` data) and the flat per-user sequences of
``train_strategy`` sequence / rss (:mod:`recbole_text.data.sequence_data`).
"""
from __future__ import annotations

import numpy as np
import torch
from recbole.data.interaction import Interaction


def held_out_items(n_items: int, fraction: float, seed: int) -> torch.Tensor:
    """(n_items,) bool: ``round(fraction · (n_items − 1))`` items drawn uniformly; id 0 (padding) never."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"cold_start_items={fraction} must be in [0, 1)")
    held = torch.zeros(n_items, dtype=torch.bool)
    count = int(round(fraction * (n_items - 1)))
    order = torch.randperm(n_items - 1, generator=torch.Generator().manual_seed(int(seed))) + 1
    held[order[:count]] = True
    return held


def without_items_flat(flat_sequences, held: torch.Tensor):
    """``(users, flat, offsets)`` with every held-out item removed from each sequence (order kept)."""
    users, flat, offsets = flat_sequences
    keep = ~held.numpy()[flat]
    user_of = np.repeat(np.arange(len(users)), np.diff(offsets))
    kept_per_user = np.bincount(user_of[keep], minlength=len(users))
    return users, flat[keep], np.r_[0, np.cumsum(kept_per_user)].astype(np.int64)


def without_items_rows(rows: Interaction, held: torch.Tensor, item_field: str, list_suffix: str,
                       length_field: str) -> Interaction:
    """RecBole's training rows without held-out items: rows whose target is held out are dropped, held-out
    items are cut out of every history (each ``<field>_list`` column keeps the entries of the kept items,
    left-aligned, 0-padded) and ``length_field`` counts what is left; rows left with an empty history go."""
    item_list = rows[item_field + list_suffix]  # (R, L)
    length = rows[length_field]
    inside = torch.arange(item_list.shape[1])[None, :] < length[:, None]
    keep = inside & ~held[item_list]  # (R, L)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept positions first, in order
    new_length = keep.sum(dim=1)
    filled = torch.arange(item_list.shape[1])[None, :] < new_length[:, None]  # (R, L)
    columns = {}
    for field, values in rows.interaction.items():
        if field.endswith(list_suffix) and values.dim() >= 2 and values.shape[:2] == item_list.shape:
            index = order.reshape(order.shape + (1,) * (values.dim() - 2)).expand_as(values)
            packed = torch.gather(values, 1, index)
            columns[field] = packed * filled.reshape(filled.shape + (1,) * (values.dim() - 2)).to(packed.dtype)
        else:
            columns[field] = values
    columns[length_field] = new_length.to(length.dtype)
    survivors = ~held[rows[item_field]] & (new_length > 0)
    return Interaction(columns)[survivors]
