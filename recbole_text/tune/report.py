"""What a finished sweep leaves: ``trials.csv``, ``trials.md``, ``best.json``, the best checkpoint and the plots."""
from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

from recbole_text.tune.search_space import searched
from recbole_text.tune.trial import BEST_WEIGHTS, evaluate_best


def _last_error_line(trial_path: Path) -> str | None:
    """The exception line of the latest failure in Tune's ``error.txt`` (one line, for tables)."""
    text = _read(trial_path / "error.txt")
    if not text:
        return None
    block = text.rsplit("Failure # ", 1)[-1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:300]
    return lines[-1][:300] if lines else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _trial_rows(grid, spec: dict, events: dict) -> list[dict]:
    metric, mode = spec["metric"], spec["mode"]
    better = max if mode == "max" else min
    names = searched(spec["search_space"])
    rows = []
    for result in grid:
        path = Path(result.path)
        frame = result.metrics_dataframe
        history = []
        if frame is not None and len(frame) and metric in frame:
            columns = ("epochs_done", "stage", metric, "train_loss", "early_stopped", "train_s", "start_epoch")
            keep = [c for c in columns if c in frame]
            history = frame[keep].to_dict("records")  # every epoch trained, repeats after a resume included
        scores = [h[metric] for h in history if h.get(metric) is not None and not math.isnan(h[metric])]
        best_value = better(scores) if scores else None
        best_at = next((h["epochs_done"] for h in history if h.get(metric) == best_value), None)
        error_text = _read(path / "error.txt") or ""
        failures = error_text.count("Failure # ")
        if result.error is not None:
            status = "ERROR"
        elif events.get(path.name) == "TERMINATED" or (history and history[-1].get("early_stopped")):
            status = "TERMINATED"
        else:
            status = "INCOMPLETE"
        last = history[-1] if history else {}
        epochs_run = int(max((h["epochs_done"] for h in history), default=0))
        if status == "ERROR":
            stopped_by = "error"
        elif status == "INCOMPLETE":
            stopped_by = "not finished"
        elif last.get("early_stopped"):
            stopped_by = "early_stopping"
        elif epochs_run >= spec["max_epochs"]:
            stopped_by = "epochs"
        else:
            stopped_by = "scheduler"
        train_s = [h["train_s"] for h in history if h.get("train_s") is not None]
        rows.append({
            "trial": _trial_label(path.name),
            "trial_dir": str(path),
            "status": status,
            "stopped_by": stopped_by,
            "retries": failures if status != "ERROR" else max(0, failures - 1),
            "failures": failures,
            "epochs_run": epochs_run,
            "epochs_trained": len(history),  # more than epochs_run when a retry or resume repeated epochs
            "best_epoch": best_at,
            f"best_{metric}": best_value,
            f"last_{metric}": last.get(metric),
            **{n: (result.config or {}).get(n) for n in names},
            "s_per_epoch": sum(train_s) / len(train_s) if train_s else None,
            "error": (_last_error_line(path) or "") if failures else "",
            "history": history,
            "checkpoint": result.checkpoint,
        })
    return rows


def _trial_label(folder: str) -> str:
    """``train_trial_1a2b3_00004_4_learning_rate=...`` → ``1a2b3_00004`` (Tune's trial id)."""
    found = re.search(r"(?:^|_)([0-9a-f]{5}_[0-9]{5})(?:_|$)", folder)
    return found.group(1) if found else folder


def write_results(grid, spec: dict, experiment: Path, events: dict) -> dict:
    """``trials.csv``, ``trials.md``, ``best.json`` and the plots; returns the summary."""
    metric, mode = spec["metric"], spec["mode"]
    rows = _trial_rows(grid, spec, events)
    scored = [r for r in rows if r[f"best_{metric}"] is not None]
    sign = 1 if mode == "max" else -1
    rows.sort(key=lambda r: (r[f"best_{metric}"] is None, -sign * (r[f"best_{metric}"] or 0.0)))
    best = None
    if scored:
        top = rows[0]
        params = {n: top[n] for n in searched(spec["search_space"])}
        best = {"trial": top["trial"], "config": params, f"best_{metric}": top[f"best_{metric}"],
                "best_epoch": top["best_epoch"], "epochs_run": top["epochs_run"], "trial_dir": top["trial_dir"]}
        if top["checkpoint"] is not None:
            keep = experiment / "best_checkpoint"
            with top["checkpoint"].as_directory() as folder:
                if (Path(folder) / BEST_WEIGHTS).is_file():
                    keep.mkdir(exist_ok=True)
                    shutil.copyfile(Path(folder) / BEST_WEIGHTS, keep / BEST_WEIGHTS)
            if (keep / BEST_WEIGHTS).is_file():
                best["checkpoint"] = str(keep / BEST_WEIGHTS)
                best.update(evaluate_best(spec, params, best["checkpoint"]))
    epochs_run = sum(r["epochs_trained"] for r in rows)
    budget = spec["num_trials"] * spec["max_epochs"]
    summary = {
        "model": spec["model"],
        "dataset": spec["dataset"],
        "metric": metric,
        "mode": mode,
        "scheduler": spec["scheduler"],
        "experiment": str(experiment),
        "trials": len(rows),
        "statuses": {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})},
        "epochs_run": epochs_run,
        "epochs_budgeted": budget,
        "epochs_saved_fraction": 1 - epochs_run / budget if budget else None,
        "wall_time_s": sum(s["wall_s"] for s in spec["sessions"]),
        "best": best,
        "rows": [{k: v for k, v in r.items() if k not in ("history", "checkpoint")} for r in rows],
        "search_space": spec["search_space"],
        "files": {},
    }
    files = summary["files"]
    files["csv"] = str(experiment / "trials.csv")
    _write_csv(summary["rows"], experiment / "trials.csv")
    files["best"] = str(experiment / "best.json")
    plots = write_plots(rows, spec, experiment)
    files.update(plots)
    files["markdown"] = str(experiment / "trials.md")
    (experiment / "trials.md").write_text(sweep_markdown(summary, spec, plots))
    (experiment / "best.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    summary["histories"] = {r["trial"]: r["history"] for r in rows}
    return summary


TABLE_FIXED = ("trial", "status", "stopped_by", "retries", "epochs_run", "best_epoch")


def _columns(rows: list[dict]) -> list[str]:
    if not rows:
        return list(TABLE_FIXED)
    rest = [k for k in rows[0] if k not in TABLE_FIXED and k not in ("trial_dir", "failures", "error")]
    return list(TABLE_FIXED) + rest + ["error"]


def _write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(rows) + ["trial_dir"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value).replace("|", "\\|").replace("\n", " ")


def sweep_markdown(summary: dict, spec: dict, plots: dict) -> str:
    metric = summary["metric"]
    best = summary["best"]
    lines = [
        f"# Sweep: {summary['model']} on {summary['dataset']}",
        "",
        f"- metric: `{metric}` ({summary['mode']}), scheduler: {summary['scheduler']}"
        + (f" (max {spec['max_epochs']} epochs, grace period {spec['grace_period']}, reduction factor "
           f"{spec['reduction_factor']})" if summary["scheduler"] == "asha" else ""),
        (f"- trials: {summary['trials']} ({', '.join(f'{v} {k}' for k, v in summary['statuses'].items())}), "
         f"retries on failure: up to {spec['max_failures']}"),
        f"- epochs trained: {summary['epochs_run']} of {summary['epochs_budgeted']} budgeted "
        f"({summary['trials']} trials × {spec['max_epochs']} epochs)"
        + (f", {100 * summary['epochs_saved_fraction']:.0f}% saved" if summary["epochs_saved_fraction"] is not None
           else ""),
        f"- wall time: {summary['wall_time_s']:.0f} s over {len(spec['sessions'])} session(s)",
        f"- resources per trial: {spec['cpus_per_trial']:g} CPU, {spec['gpus_per_trial']:g} GPU",
        "",
        "## Best trial",
        "",
    ]
    if best:
        lines += [(f"- trial: `{best['trial']}`, best {metric}: {best[f'best_{metric}']:.4f} at epoch "
                   f"{best['best_epoch']} of {best['epochs_run']}"),
                  f"- config: `{json.dumps(best['config'])}`"]
        if best.get("popularity_prior"):
            lines.append(f"- popularity_prior: auto chose β = {best['popularity_prior']['beta']} on validation")
        if best.get("test_result"):
            lines.append("- test (best checkpoint): " + ", ".join(f"{k} {v:.4f}" for k, v in best["test_result"].items()))
    else:
        lines.append("No trial reported a validation result.")
    columns = _columns(summary["rows"])
    lines += ["", "## All trials", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in summary["rows"]:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{k}]({Path(v).name})" for k, v in plots.items()]
    return "\n".join(lines) + "\n"


def write_plots(rows: list[dict], spec: dict, experiment: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = spec["metric"]
    out = {}
    with_history = [r for r in rows if r["history"]]
    if with_history:
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, row in enumerate(with_history):
            curve = {h["epochs_done"]: h[metric] for h in row["history"]}  # a repeated epoch: its last value
            xs, ys = list(curve), list(curve.values())
            ax.plot(xs, ys, marker=".", linewidth=2.5 if i == 0 else 1, alpha=1 if i == 0 else 0.6,
                    label=f"{row['trial']} ({row['stopped_by']})")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{spec['model']} on {spec['dataset']}: learning curves")
        if len(with_history) <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        out["learning_curves"] = str(experiment / "learning_curves.png")
        fig.savefig(out["learning_curves"], dpi=100)
        plt.close(fig)
    names = searched(spec["search_space"])
    scored = [r for r in rows if r[f"best_{metric}"] is not None]
    if names and scored:
        from matplotlib.ticker import NullFormatter

        columns = min(3, len(names))
        rows_n = math.ceil(len(names) / columns)
        fig, axes = plt.subplots(rows_n, columns, figsize=(4 * columns, 3.2 * rows_n), squeeze=False)
        ys = [r[f"best_{metric}"] for r in scored]
        colors = ["tab:red" if r is scored[0] else "tab:blue" for r in scored]  # rows are sorted best first
        for ax, name in zip(axes.flat, names):
            values = [r[name] for r in scored]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                ax.scatter(values, ys, c=colors)
                if spec["search_space"][name]["kind"] == "loguniform":
                    ax.set_xscale("log")
                    ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                labels = sorted({str(v) for v in values})
                ax.scatter([labels.index(str(v)) for v in values], ys, c=colors)
                ax.set_xticks(range(len(labels)), labels)
            ax.set(xlabel=name, ylabel=f"best {metric}")
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"{spec['model']} on {spec['dataset']}: best {metric} per trial (red: the best trial)")
        fig.tight_layout()
        out["metric_vs_hyperparameters"] = str(experiment / "metric_vs_hyperparameters.png")
        fig.savefig(out["metric_vs_hyperparameters"], dpi=100)
        plt.close(fig)
    return out
