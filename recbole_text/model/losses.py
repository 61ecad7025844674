"""Losses for next-item prediction, all on the same shapes.

``states`` (batch, positions, d) are the sequence representations, ``targets`` (batch, positions, T) the true
next items per position (0 = padding / no target). ``T`` is 1 for shifted-sequence training and the size of
the sampled target set for RSS.

* :func:`softmax_ce` — softmax cross-entropy over **all** items (SASRec-CE, BERT4Rec-style).
* :func:`full_bce` — binary cross-entropy over **all** items with the targets as positives (RSS's BCE).
* :func:`lambdarank` — LambdaRank over all items (RSS's other paired loss): a logistic loss on every
  (target, non-target) pair, weighted by how much swapping the two would change the row's NDCG,

  .. math::
      L = \\frac{1}{M}\\sum_{rows}\\sum_{i ∈ P}\\sum_{j ∉ P} |ΔNDCG_{ij}|\\;\\mathrm{softplus}(s_j − s_i),\\qquad
      |ΔNDCG_{ij}| = \\frac{|D(r_i) − D(r_j)|}{\\mathrm{IDCG}},\\ D(r) = \\frac{1}{\\log_2(r + 2)}

  with r the item's current 0-based rank in the row (the weights carry no gradient).
* :func:`gbce` — gSASRec's generalised BCE with ``k`` uniformly sampled negatives (memory independent of
  the catalogue size):

  .. math::
      α = k/(N − 1),\\quad β = α\\,(t(1 − 1/α) + 1/α) = 1 − t(1 − α)

      L = −\\frac{1}{k+1}\\Big[\\log σ(s^+)^β + \\sum_{j=1}^{k} \\log(1 − σ(s^-_j))\\Big]
        = \\frac{1}{k+1}\\Big[β\\,\\mathrm{softplus}(−s^+) + \\sum_j \\mathrm{softplus}(s^-_j)\\Big]

  ``t = 0`` gives β = 1, plain BCE with sampled negatives; ``t = 1`` is fully calibrated.
* :func:`in_batch_info_nce` — contrastive pretraining (UniSRec, Recformer): row b of ``anchors`` against row b
  of ``others``, the other rows negatives, except rows marked as the same (e.g. the same target item).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gbce_beta(num_negatives: int, catalogue_size: int, t: float) -> float:
    """β = 1 − t(1 − α), α = k / (N − 1)."""
    if catalogue_size < 2:
        raise ValueError("gBCE needs at least two items")
    alpha = num_negatives / (catalogue_size - 1)
    return 1.0 - t * (1.0 - alpha)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def scored_rows(states: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Only positions with a target: (M, d) states and (M, T) targets (padding positions cost nothing)."""
    rows = (targets > 0).any(-1)  # (B, P)
    return states[rows], targets[rows]


def softmax_ce(states: torch.Tensor, targets: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean over (position, target) pairs of −log softmax(states · Eᵀ)[target]; padding id 0 never wins."""
    states, targets = scored_rows(states, targets)  # (M, d), (M, T)
    logits = states @ item_embeddings.T  # (M, N)
    logits[:, 0] = float("-inf")
    picked = torch.gather(torch.log_softmax(logits, dim=-1), 1, targets)  # (M, T)
    mask = targets > 0
    return -_masked_mean(torch.where(mask, picked, 0.0), mask)


def _real_item_logits(states, targets, item_embeddings):
    """Rows with a target → ``(logits, labels, targets)``: (M, N−1) scores of the real items (ids ≥ 1), their
    0/1 labels, and the (M, T) targets."""
    states, targets = scored_rows(states, targets)  # (M, d), (M, T)
    logits = (states @ item_embeddings.T)[:, 1:]  # (M, N−1)
    labels = torch.zeros_like(logits)
    # padding (0) maps to column 0 with value 0; "amax" keeps a real target's 1 written to the same column
    labels.scatter_reduce_(1, (targets - 1).clamp(min=0), (targets > 0).to(logits.dtype), reduce="amax")
    return logits, labels, targets


def full_bce(states: torch.Tensor, targets: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
    """BCE over all real items (ids ≥ 1): targets are positives, every other item a negative."""
    logits, labels, _ = _real_item_logits(states, targets, item_embeddings)
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1).mean()


def lambdarank(states: torch.Tensor, targets: torch.Tensor, item_embeddings: torch.Tensor) -> torch.Tensor:
    """LambdaRank over all real items: every (target, non-target) pair, weighted by |ΔNDCG| of their swap."""
    logits, labels, targets = _real_item_logits(states, targets, item_embeddings)
    with torch.no_grad():
        ranks = torch.empty_like(logits, dtype=torch.long)  # 0 = top of the row
        order = logits.argsort(dim=1, descending=True)
        ranks.scatter_(1, order, torch.arange(logits.shape[1], device=logits.device).expand_as(order))
        discount = 1.0 / torch.log2(ranks.to(logits.dtype) + 2.0)  # (M, N−1)
        positives = labels.sum(1, keepdim=True)  # (M, 1) distinct targets
        ideal = torch.cumsum(1.0 / torch.log2(torch.arange(logits.shape[1], device=logits.device) + 2.0), 0)
        idcg = ideal[positives.long() - 1]  # (M, 1)
        is_target = targets > 0
        # a target listed twice in a row's set counts once: keep its first slot only
        slots = torch.arange(targets.shape[1], device=targets.device)
        first = (targets[:, :, None] == targets[:, None, :]).to(torch.int8).argmax(-1) == slots
        is_target &= first
        target_col = (targets - 1).clamp(min=0)  # (M, T)
        weight = (discount.gather(1, target_col)[:, :, None] - discount[:, None, :]).abs() / idcg[:, :, None]
        weight = weight * (1 - labels)[:, None, :] * is_target[:, :, None]  # (M, T, N−1): target × non-target
    margin = logits.gather(1, target_col)[:, :, None] - logits[:, None, :]  # s_i − s_j
    return (weight * F.softplus(-margin)).sum((1, 2)).mean()


def sample_negatives(batch: int, k: int, num_items: int, device, generator=None) -> torch.Tensor:
    """(rows, k) item ids uniform over 1..num_items−1: a row is a sequence (its positions share them) or a position."""
    return torch.randint(1, num_items, (batch, k), device=device, generator=generator)


def gbce(states, targets, item_embeddings, negatives, beta: float) -> torch.Tensor:
    """gBCE with the given negatives (batch, k); a negative equal to a target of its position is ignored."""
    # F.embedding, not item_embeddings[ids]: its backward is an index_add, 3× faster on CPU than index_put
    pos_logits = (states[:, :, None, :] * F.embedding(targets, item_embeddings)).sum(-1)  # (B, P, T)
    neg_logits = states @ F.embedding(negatives, item_embeddings).transpose(1, 2)  # (B, P, k)
    target_mask = targets > 0
    collision = (negatives[:, None, None, :] == targets[..., None]).any(2)  # (B, P, k)
    pos_term = _row_mean(F.softplus(-pos_logits), target_mask)  # (B, P)
    neg_term = (F.softplus(neg_logits) * ~collision).sum(-1)  # (B, P)
    per_position = (beta * pos_term + neg_term) / (negatives.shape[1] + 1)
    return _masked_mean(per_position, target_mask.any(-1))


def _row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def in_batch_info_nce(anchors: torch.Tensor, others: torch.Tensor, same: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of cos(anchors[b], others[b]) / τ against the other rows of ``others``; ``same`` (B, B) marks
    pairs that are not negatives (another row with the same target), the diagonal always counts."""
    logits = F.normalize(anchors, dim=-1) @ F.normalize(others, dim=-1).T / temperature  # (B, B)
    eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
