"""Calibration report: is σ(score) the probability that an item is the user's next item?

gSASRec (Petrov & Macdonald, RecSys'23) argues that a model trained with the gBCE loss (calibration
parameter t = 0.75) scores items so that σ(score) is a calibrated estimate of P(item is next), while plain
BCE with k sampled negatives (t = 0) is overconfident. This module measures it on a trained model:

* :func:`collect_full_scores` runs a sequential model over a RecBole ``FullSortEvalDataLoader`` and returns
  the full (users, n_items) logit matrix (padding and, optionally, seen items set to ``-inf``) and the
  true next item of every row;
* :func:`calibration_table` ranks the items of each user by score and, for each rank bucket (ranks 1,
  2-5, 6-10, ...), compares the mean predicted probability σ(score) of the slots in the bucket with the
  observed hit rate (the share of those slots holding the user's true next item);
* :func:`calibration_summary` condenses a table: slot-weighted ECE and the top-1 numbers;
* :func:`write_calibration_report` writes ``<prefix>.json``, ``<prefix>.md`` and a reliability diagram
  ``<prefix>.png``.

For a calibrated model a bucket's ``mean_predicted`` ≈ ``observed_hit_rate``; an overconfident model has
``mean_predicted`` > ``observed_hit_rate``.

Note: the slot-weighted ECE is dominated by the long tail (most slots are deep ranks with tiny
probabilities), so read it together with the per-bucket rows and the top-1 numbers.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import torch

from recbole_text.data.atomic import atomic_write

#: Inclusive, 1-based rank ranges; ``None`` as the upper end means "to the end of the catalogue".
DEFAULT_BUCKETS = ((1, 1), (2, 5), (6, 10), (11, 50), (51, 100), (101, 500), (501, None))


def _check_buckets(buckets: Iterable[Sequence]) -> list[tuple[int, int | None]]:
    checked = []
    for bucket in buckets:
        if len(bucket) != 2:
            raise ValueError(f"a bucket is (first rank, last rank or None), got {bucket!r}")
        first, last = bucket
        if int(first) != first or first < 1:
            raise ValueError(f"bucket {bucket!r}: the first rank must be an integer >= 1")
        if last is not None and (int(last) != last or last < first):
            raise ValueError(f"bucket {bucket!r}: the last rank must be None or an integer >= the first")
        checked.append((int(first), None if last is None else int(last)))
    return checked


def _rank_label(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def calibration_table(scores: torch.Tensor, targets: torch.Tensor, buckets=DEFAULT_BUCKETS) -> list[dict]:
    """Predicted probability vs observed hit rate per rank bucket.

    ``scores``: (users, n_items) raw logits; ``-inf`` marks an excluded item (padding id 0, seen items),
    which is ranked last and is not a slot. ``targets``: (users,) the true next item id of each user.

    Each user's items are ranked by descending score (a stable sort: ties keep the item-id order). A
    *slot* is one (user, rank) pair over a non-excluded item. For each bucket ``(first, last)`` of
    inclusive 1-based ranks, the row holds:

    * ``ranks``: the label, e.g. ``"1"``, ``"2-5"``; an open or too long last bucket ends at the largest
      number of non-excluded items of any user, e.g. ``"501-4385"``;
    * ``first_rank``, ``last_rank``: the ranks the label names;
    * ``slots``: the number of slots in the bucket (users with fewer non-excluded items contribute fewer);
    * ``hits``: the slots that hold the user's target;
    * ``mean_predicted``: the mean of σ(score) over the slots;
    * ``observed_hit_rate``: ``hits / slots``.

    A user whose target is excluded (score ``-inf``) contributes slots but no hit. Buckets that start
    beyond every user's catalogue are dropped.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (users, n_items), got shape {tuple(scores.shape)}")
    targets = torch.as_tensor(targets).reshape(-1).to(device=scores.device, dtype=torch.long)
    users, n_items = scores.shape
    if targets.numel() != users:
        raise ValueError(f"{targets.numel()} targets for {users} users")
    if users and (int(targets.min()) < 0 or int(targets.max()) >= n_items):
        raise ValueError(f"target item ids must lie in [0, {n_items})")
    scores = scores.detach().float()
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    buckets = _check_buckets(buckets)
    if users == 0 or n_items == 0:
        return []

    # One sort for everything; -inf (excluded) items end up behind every non-excluded item.
    sorted_scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    n_valid = (scores != float("-inf")).sum(dim=1)  # non-excluded items per user
    catalogue = int(n_valid.max())
    # 0-based position of each user's target in its ranking (order is a permutation: one match per row).
    target_pos = (order == targets.unsqueeze(1)).nonzero()[:, 1]
    target_valid = target_pos < n_valid  # an excluded target is never a hit

    rows = []
    for first, last in buckets:
        if first > catalogue:
            continue
        end = catalogue if last is None else min(last, catalogue)
        start = first - 1  # 0-based, the bucket is [start, end)
        per_user = (n_valid.clamp(max=end) - start).clamp(min=0)
        slots = int(per_user.sum())
        if slots == 0:
            continue
        # σ(-inf) = 0 exactly, so summing over the whole column range adds nothing for excluded items.
        predicted = float(torch.sigmoid(sorted_scores[:, start:end]).sum(dtype=torch.float64))
        hits = int((target_valid & (target_pos >= start) & (target_pos < end)).sum())
        rows.append({
            "ranks": _rank_label(first, end),
            "first_rank": first,
            "last_rank": end,
            "slots": slots,
            "hits": hits,
            "mean_predicted": predicted / slots,
            "observed_hit_rate": hits / slots,
        })
    return rows


def calibration_summary(rows: Sequence[dict]) -> dict:
    """``ece``: slot-weighted mean |mean_predicted − observed_hit_rate| over the rows;
    ``mean_predicted_top1`` / ``hit_rate_top1``: the rank-1 bucket's numbers (``None`` without one);
    ``slots`` / ``hits``: totals."""
    slots = sum(row["slots"] for row in rows)
    gap = sum(row["slots"] * abs(row["mean_predicted"] - row["observed_hit_rate"]) for row in rows)
    top1 = next((row for row in rows if row["ranks"] == "1"), None)
    return {
        "ece": gap / slots if slots else None,
        "mean_predicted_top1": top1["mean_predicted"] if top1 else None,
        "hit_rate_top1": top1["observed_hit_rate"] if top1 else None,
        "slots": slots,
        "hits": sum(row["hits"] for row in rows),
    }


def collect_full_scores(model, eval_data, device, exclude_seen: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-sort logits of a sequential model over a RecBole ``FullSortEvalDataLoader``.

    Returns CPU tensors ``scores`` (rows, n_items), float32, with column 0 (padding) set to ``-inf`` and,
    with ``exclude_seen``, every item of the row's history ``interaction[model.ITEM_SEQ]`` too; and
    ``targets`` (rows,), the true next item per row, in loader order.
    """
    n_items = int(eval_data._dataset.item_num)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    all_scores, all_targets = [], []
    try:
        with torch.no_grad():
            for interaction, history_index, positive_u, positive_i in eval_data:
                if history_index is not None:
                    raise ValueError("collect_full_scores needs a sequential model's loader "
                                     "(history_index is None, one target per row)")
                interaction = interaction.to(device)
                scores = model.full_sort_predict(interaction).reshape(-1, n_items).float()
                rows = scores.shape[0]
                positive_u = torch.as_tensor(positive_u).reshape(-1).long().cpu()
                positive_i = torch.as_tensor(positive_i).reshape(-1).long().cpu()
                if positive_u.numel() != rows or positive_i.numel() != rows or not torch.equal(
                        torch.sort(positive_u).values, torch.arange(rows)):
                    raise ValueError(f"expected exactly one target per row ({rows} rows), got "
                                     f"{positive_u.numel()} positives")
                targets = torch.empty(rows, dtype=torch.long)
                targets[positive_u] = positive_i
                mask = torch.zeros(rows, n_items, dtype=torch.bool, device=scores.device)
                mask[:, 0] = True
                if exclude_seen:
                    history = interaction[model.ITEM_SEQ].long().to(scores.device).reshape(rows, -1)
                    mask.scatter_(1, history, True)  # padding entries (0) hit column 0, already masked
                # Out of place: never write into a tensor the model may still hold.
                all_scores.append(scores.masked_fill(mask, float("-inf")).cpu())
                all_targets.append(targets)
    finally:
        if was_training:
            model.train()
    if not all_scores:
        return torch.empty(0, n_items), torch.empty(0, dtype=torch.long)
    return torch.cat(all_scores), torch.cat(all_targets)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _markdown(tables: dict, summaries: dict, title: str) -> str:
    lines = [f"# {title}", ""] if title else []
    for label, rows in tables.items():
        s = summaries[label]
        lines += [
            f"## {label}",
            "",
            f"ECE (slot-weighted): {_fmt(s['ece'])} · top-1 mean predicted: {_fmt(s['mean_predicted_top1'])}"
            f" · top-1 hit rate: {_fmt(s['hit_rate_top1'])} · slots: {s['slots']} · hits: {s['hits']}",
            "",
            "| ranks | slots | hits | mean predicted | observed hit rate |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| {row['ranks']} | {row['slots']} | {row['hits']} | {_fmt(row['mean_predicted'])} | "
                  f"{_fmt(row['observed_hit_rate'])} |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _reliability_png(tables: dict, title: str) -> bytes:
    # The object API with an explicit Agg canvas: no pyplot, no global backend switch, no window.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = [v for rows in tables.values() for row in rows for v in (row["mean_predicted"], row["observed_hit_rate"])]
    positive = [v for v in values if v > 0]
    floor = min(positive) / 3 if positive else 1e-6  # where zeros go on the log axes

    fig = Figure(figsize=(7, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    clipped = False
    for label, rows in tables.items():
        if not rows:
            continue
        xs = [max(row["mean_predicted"], floor) for row in rows]
        ys = [max(row["observed_hit_rate"], floor) for row in rows]
        (line,) = ax.plot(xs, ys, marker="o", linewidth=1.2, label=label)
        zeros = [(x, y) for row, x, y in zip(rows, xs, ys) if row["observed_hit_rate"] <= 0]
        if zeros:  # hollow markers: no hit at all, drawn at the clip floor
            clipped = True
            ax.scatter(*zip(*zeros), s=40, facecolors="white", edgecolors=line.get_color(), zorder=3)
        for row, x, y in zip(rows, xs, ys):
            ax.annotate(row["ranks"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    low = floor if not positive else min(floor, min(positive))
    ax.plot([low, 1.0], [low, 1.0], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean predicted probability σ(score)")
    ax.set_ylabel("observed hit rate")
    ax.set_title(title or "Calibration by rank bucket")
    if clipped:
        ax.text(0.99, 0.01, f"hollow markers: 0 hits (drawn at {floor:.2g})", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="grey")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def write_calibration_report(tables: dict[str, list[dict]], out_prefix, title: str = "") -> dict[str, str]:
    """Write ``<out_prefix>.json`` (tables and summaries), ``<out_prefix>.md`` (a table per label) and
    ``<out_prefix>.png`` (reliability diagram, log-log), each atomically; return ``{"json", "md", "png"}``
    → path."""
    prefix = str(out_prefix)  # not Path.with_suffix: a prefix such as "runs/t=0.75" holds a dot
    paths = {"json": f"{prefix}.json", "md": f"{prefix}.md", "png": f"{prefix}.png"}
    tables = {str(label): [dict(row) for row in rows] for label, rows in tables.items()}
    summaries = {label: calibration_summary(rows) for label, rows in tables.items()}
    for label, rows in tables.items():
        for row in rows:
            for key in ("mean_predicted", "observed_hit_rate"):
                if not math.isfinite(row[key]):
                    raise ValueError(f"{label} ranks {row['ranks']}: {key} is {row[key]}")

    png = _reliability_png(tables, title)  # render first: a plotting error leaves no partial report
    document = {"title": title, "tables": {label: {"rows": tables[label], "summary": summaries[label]}
                                           for label in tables}}
    with atomic_write(paths["json"]) as f:
        json.dump(document, f, indent=2, allow_nan=False)
        f.write("\n")
    with atomic_write(paths["md"]) as f:
        f.write(_markdown(tables, summaries, title))
    with atomic_write(paths["png"], mode="wb", encoding=None) as f:
        f.write(png)
    return {kind: str(Path(path)) for kind, path in paths.items()}
