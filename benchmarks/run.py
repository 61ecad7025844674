"""Benchmark harness: run models on a dataset through the CLI and record what each run cost and scored.

    python benchmarks/run.py --dataset ml-100k-text --models SASRec BERT4Rec -- --epochs=50

Each model runs as its own ``run_recbole_text.py`` process (so its peak RSS is its own). Results accumulate in
``benchmarks/results/<dataset>.json`` (keyed by label, default the model name) and are rendered to
``<dataset>.md`` with the machine, command and date; each run's training curve is saved as
``benchmarks/results/<dataset>-<label>.png``.

Every run also records RecBole's coverage and popularity metrics (``RUN_METRICS``; a ``--metrics=...`` after
``--`` replaces them); the table shows ItemCoverage@10, GiniIndex@10 and AveragePopularity@10, and "—" for runs
recorded before they were collected.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("recall@10", "ndcg@10", "mrr@10", "recall@50", "ndcg@50", "mrr@50")
# Beyond accuracy: share of the catalogue in some user's top 10, how unevenly the top-10 slots are spread over the
# catalogue (0 even, 1 all on one item), mean training count of the top-10 items.
BEYOND_ACCURACY = ("itemcoverage@10", "giniindex@10", "averagepopularity@10")
TABLE_METRICS = METRICS + BEYOND_ACCURACY
# What each run computes (at every validation, so its s/valid includes them), passed before the user's overrides.
RUN_METRICS = "[Recall,NDCG,MRR,ItemCoverage,GiniIndex,AveragePopularity]"
MISSING = "—"


def format_metric(test: dict, metric: str) -> str:
    """A table cell: 4 decimals (a count with 1: averagepopularity); "—" where the run did not record it."""
    value = test.get(metric)
    if value is None:
        return MISSING
    return f"{value:.1f}" if metric.startswith("averagepopularity") else f"{value:.4f}"


def run_logged(command: list[str], log_path: Path) -> tuple[int, float, float]:
    """Run ``command`` from the repository root, its output into ``log_path`` → (exit code, wall s, peak RSS MB)."""
    print(f"[bench] {' '.join(command)}  (log: {log_path})", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage.ru_maxrss / 1024


def log_tail(log_path: Path, lines: int = 20) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def run_one(model: str, dataset: str, label: str, overrides: list[str], results: Path = RESULTS) -> dict:
    runs = results.parent / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    record_path = runs / f"{dataset}-{label}.json"
    log_path = runs / f"{dataset}-{label}.log"
    command = [sys.executable, "run_recbole_text.py", f"--model={model}", f"--dataset={dataset}",
               f"--result_file={record_path}", "--show_progress=False", f"--metrics={RUN_METRICS}", *overrides]
    code, wall, peak_rss_mb = run_logged(command, log_path)
    if code != 0:
        raise RuntimeError(f"{model} on {dataset} failed:\n" + log_tail(log_path, 15))
    record = json.loads(record_path.read_text())
    record.update(label=label, process_wall_s=wall, process_peak_rss_mb=peak_rss_mb,
                  command=" ".join(["python"] + command[1:]))
    record_path.write_text(json.dumps(record, indent=2))  # the run's own copy, for --rebuild
    png = record_path.with_suffix(".png")
    if png.exists():
        shutil.copy(png, results / f"{dataset}-{label}.png")
    prior_png = record_path.with_name(record_path.stem + "-prior.png")  # popularity_prior: auto
    if prior_png.exists():
        shutil.copy(prior_png, results / f"{dataset}-{label}-prior.png")
    return record


def time_to_reach(record: dict, score: float) -> float | None:
    """Training wall time (s) at the first validation whose score reached ``score`` (None if never)."""
    for epoch in record["history"]:
        if epoch["valid_score"] is not None and epoch["valid_score"] >= score:
            return epoch["elapsed_s"]
    return None


def baseline_comparison(records: dict, baseline: str) -> list[str]:
    if baseline not in records:
        return []
    base = records[baseline]
    target, base_time = base["best_valid_score"], base["time_to_best_s"]
    lines = [f"## Time to reach {baseline}'s best validation {base['valid_metric']} ({target:.4f})", "",
             f"{baseline} reached it after {base_time:.0f} s of training.", "",
             "| label | reached at (s) | fraction of baseline's time | test NDCG@10 vs baseline | test Recall@10 vs baseline |",
             "|---|---|---|---|---|"]
    for label, r in sorted(records.items()):
        if label == baseline:
            continue
        reached = time_to_reach(r, target)
        fraction = f"{reached / base_time:.3f}" if reached is not None and base_time else "never"
        delta = {m: (f"{r['test_result'][m] - base['test_result'][m]:+.4f}"
                     if m in r["test_result"] and m in base["test_result"] else MISSING) for m in ("ndcg@10", "recall@10")}
        lines.append(f"| {label} | {reached if reached is None else round(reached, 1)} | {fraction} | "
                     f"{delta['ndcg@10']} | {delta['recall@10']} |")
    return lines + [""]


def number(value, decimals: int) -> str:
    return MISSING if value is None else f"{value:.{decimals}f}"


def wall_cell(record: dict) -> str:
    """The process's wall time; for a run resumed over several sittings, their sum and how many."""
    earlier = (record.get("sittings_s") or [None])[:-1]
    total = sum(earlier) + record["process_wall_s"]
    return number(total, 0) + (f" ({len(earlier) + 1} sittings)" if earlier else "")


def target_group_table(records: dict) -> list[str]:
    """Test metrics split by whether the target item occurred in training (``test_by_target``); cold-start runs
    (``cold_start_items`` > 0) hold a share of the items out of training on purpose."""
    grouped = {label: r for label, r in sorted(records.items()) if r.get("test_by_target")}
    if not grouped:
        return []
    lines = ["## Seen / unseen test targets", "",
             "Test rows split by whether their target item occurs in the training split (labels ending in `-cold`: "
             "`--cold_start_items=0.1`, a seeded 10% of the items removed from training and kept in valid/test).", "",
             "| label | seen rows | seen ndcg@10 | seen recall@10 | unseen rows | unseen ndcg@10 | unseen recall@10 |",
             "|---|---|---|---|---|---|---|"]
    for label, r in grouped.items():
        seen, unseen = r["test_by_target"]["seen"], r["test_by_target"]["unseen"]
        lines.append(f"| {label} | {seen['rows']} | {format_metric(seen, 'ndcg@10')} | {format_metric(seen, 'recall@10')} "
                     f"| {unseen['rows']} | {format_metric(unseen, 'ndcg@10')} | {format_metric(unseen, 'recall@10')} |")
    return lines + [""]


def render_markdown(dataset: str, records: dict, baseline: str = "SASRec") -> str:
    lines = [f"# Benchmarks on {dataset}", ""]
    lines.append("Test metrics of the best-validation checkpoint (full ranking over all items, leave-one-out). "
                 "itemcoverage@10: share of the catalogue in some user's top 10; giniindex@10: how unevenly the "
                 "top-10 slots spread over the catalogue (0 even, 1 all on one item); averagepopularity@10: mean "
                 f"training count of the top-10 items; {MISSING}: not recorded by that run.")
    lines.append("")
    header = ["label", "model", *TABLE_METRICS, "epochs", "best epoch", "stopped by", "time to best (s)",
              "s/epoch (train)", "s/valid", "wall (s)", "peak RSS (MB)"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for label, r in sorted(records.items()):
        test = r["test_result"]
        row = [label, r["model"], *(format_metric(test, m) for m in TABLE_METRICS), str(r["epochs_run"]),
               str(r["best_epoch"]), str(r.get("stopped_by")), number(r["time_to_best_s"], 0),
               number(r["seconds_per_epoch"], 1), number(r["valid_seconds_per_epoch"], 1),
               wall_cell(r), number(r["process_peak_rss_mb"], 0)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += target_group_table(records)
    lines += baseline_comparison(records, baseline)
    for label, r in sorted(records.items()):
        lines += [f"## {label}", "", f"- command: `{r['command']}`", f"- machine: {r['machine']}",
                  f"- date: {r['date']}", f"- training curve: `{dataset}-{label}.png`"]
        lines += [f"- note: {r['note']}", ""] if r.get("note") else [""]
    return "\n".join(lines)


def load_run_records(runs: Path, dataset: str) -> dict:
    records = {}
    for path in sorted(runs.glob(f"{dataset}-*.json")):
        if path.stem.endswith("-calibration"):
            continue
        record = json.loads(path.read_text())
        label = record.get("label") or path.stem[len(dataset) + 1:]
        record.setdefault("label", label)
        record.setdefault("process_wall_s", record["wall_time_s"])
        record.setdefault("process_peak_rss_mb", record["peak_rss_mb"])
        record["command"] = record["command"] if record["command"].startswith("python") else "python " + record["command"]
        records[label] = record
    return records


def write_results(json_path: Path, records: dict, dataset: str, baseline: str) -> None:
    json_path.write_text(json.dumps(records, indent=2))
    json_path.with_suffix(".md").write_text(render_markdown(dataset, records, baseline))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="+", default=[])
    parser.add_argument("--label_suffix", default="", help="appended to each model name to form its label")
    parser.add_argument("--results_dir", default=str(RESULTS), help="where <dataset>.json/.md go")
    parser.add_argument("--baseline", default="SASRec", help="label the others are compared with")
    parser.add_argument("--rebuild", action="store_true", help="rebuild <dataset>.json/.md from benchmarks/runs/ "
                        "(the per-run records) instead of running anything")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="after --: --key=value settings for every run")
    args = parser.parse_args(argv)
    overrides = [o for o in args.overrides if o != "--"]

    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    json_path = results / f"{args.dataset}.json"
    if args.rebuild:
        records = load_run_records(results.parent / "runs", args.dataset)
        write_results(json_path, records, args.dataset, args.baseline)
        return 0
    for model in args.models:
        label = model + args.label_suffix
        record = run_one(model, args.dataset, label, overrides, results)
        record["recorded"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # re-read just before writing: other harness processes may have added their runs meanwhile
        records = json.loads(json_path.read_text()) if json_path.exists() else {}
        records[label] = record
        write_results(json_path, records, args.dataset, args.baseline)
        test = record["test_result"]
        print(f"[bench] {label}: " + ", ".join(f"{m}={format_metric(test, m)}" for m in TABLE_METRICS if m in test),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
