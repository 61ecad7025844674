"""Which items a model saw in training, for metrics split by seen / unseen test targets (cold start).

An item is *seen* when it occurs anywhere in the training split: as a target or inside a history. 5-core data
leaves few unseen test targets; ``cold_start_items`` (see :mod:`recbole_text.data.sequence_data`) holds items out
of training on purpose.
"""
from __future__ import annotations

import torch


def seen_in_training(train_data) -> torch.Tensor:
    """(n_items,) bool: items that occur in the training split of ``train_data`` (any training loader)."""
    dataset = train_data._dataset
    seen = torch.zeros(dataset.item_num, dtype=torch.bool)
    flat = getattr(dataset, "flat_sequences", None)
    if flat is not None:  # sequence / RSS training read straight from the interaction table
        seen[torch.as_tensor(flat[1])] = True
    else:  # RecBole's rows: targets and their histories
        feat = dataset.inter_feat
        seen[feat[dataset.iid_field]] = True
        history = dataset.iid_field + dataset.config["LIST_SUFFIX"]
        if history in feat:
            seen[feat[history].flatten()] = True
    seen[0] = False  # padding
    return seen
