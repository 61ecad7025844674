"""Benchmark: Ray Train data-parallel throughput, 1 vs 2 workers on CPU (gloo), and single-process reference.

    python benchmarks/distributed_throughput.py --model SeqSASRec --dataset Scientific --epochs 3 --workers 1 2

Each configuration runs as its own ``run_recbole_text.py`` process (``--num_workers=W``; each worker gets 1 CPU
and 1 torch thread), on the same seed and settings, for a fixed number of epochs. Writes
``benchmarks/results/ray-train-throughput.json`` and ``.md``: training seconds per epoch, training sequences
(rows) per second, speed-up over 1 worker, and the test metrics (which should agree within noise).
``--single`` adds plain single-process training (torch's default threads) as a reference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from run import log_tail, run_logged  # benchmarks/run.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"


def run_config(label: str, args, extra: list[str], workers: int | None) -> dict:
    record_path = RUNS / f"ray-train-{args.model}-{args.dataset}-{label}.json"
    command = [sys.executable, "run_recbole_text.py", f"--model={args.model}", f"--dataset={args.dataset}",
               f"--epochs={args.epochs}", f"--stopping_step={args.epochs}", "--show_progress=False",
               f"--result_file={record_path}", *extra]
    if workers:
        command += [f"--num_workers={workers}", f"--experiment_dir={RUNS / 'ray_results'}"]
    log_path = record_path.with_suffix(".log")
    load_before = os.getloadavg()
    code, wall, _ = run_logged(command, log_path)
    if code != 0:
        raise RuntimeError(f"{label} failed:\n" + log_tail(log_path))
    record = json.loads(record_path.read_text())
    train_s = [h["train_s"] for h in record["history"]]
    warm = train_s[1:] or train_s  # the first epoch also pays for warm-up
    rows = record.get("train_rows") or args.rows
    return {
        "label": label,
        "workers": workers,
        "threads_per_worker": record.get("threads_per_worker"),
        "train_s_per_epoch": sum(train_s) / len(train_s),
        "train_s_per_epoch_after_first": sum(warm) / len(warm),
        "train_s": train_s,
        # rank 0's CPU seconds per training epoch over its wall seconds: the share of a core it really got
        "cpu_share": (sum(record["train_cpu_s"][1:] or record["train_cpu_s"]) / sum(warm)
                      if record.get("train_cpu_s") else None),
        "valid_s_per_epoch": record["valid_seconds_per_epoch"],
        "train_rows": rows,
        "rows_per_s": rows / (sum(warm) / len(warm)) if rows else None,
        "test_result": record["test_result"],
        "best_valid_score": record["best_valid_score"],
        "train_loss": [h["train_loss"] for h in record["history"]],
        "process_wall_s": wall,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "command": " ".join(["python"] + command[1:]).replace(str(ROOT) + "/", ""),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="SeqSASRec")
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--single", action="store_true", help="also run plain single-process training")
    parser.add_argument("--rows", type=int, default=None, help="training rows, if the record lacks them")
    parser.add_argument("--results_dir", type=Path, default=RESULTS)
    parser.add_argument("--note", default=None, help="a remark to keep with the results (e.g. on machine load)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args, extra = parser.parse_known_args(argv)
    json_path = args.results_dir / "ray-train-throughput.json"
    if args.render:
        record = json.loads(json_path.read_text())
        if args.note:
            record["note"] = args.note
            json_path.write_text(json.dumps(record, indent=2))
        (args.results_dir / "ray-train-throughput.md").write_text(render(record))
        return 0
    extra = [a for a in extra if a != "--"]
    RUNS.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from recbole_text.quick_start import machine_description

    runs = [run_config(f"{w}-worker{'s' if w > 1 else ''}", args, extra, w) for w in args.workers]
    if args.single:
        single = run_config("single-process", args, extra, None)
        if single["train_rows"] is None and runs[0]["train_rows"]:  # run()'s record does not count them
            single["train_rows"] = runs[0]["train_rows"]
            single["rows_per_s"] = single["train_rows"] / single["train_s_per_epoch_after_first"]
        runs.append(single)
    base = next((r for r in runs if r["workers"] == 1), runs[0])
    for r in runs:
        r["speedup_vs_1_worker"] = base["train_s_per_epoch_after_first"] / r["train_s_per_epoch_after_first"]
    record = {"model": args.model, "dataset": args.dataset, "epochs": args.epochs, "runs": runs,
              "machine": machine_description(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "benchmarks/distributed_throughput.py", *(argv or sys.argv[1:])]),
              "note": args.note}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "ray-train-throughput.json").write_text(json.dumps(record, indent=2))
    (args.results_dir / "ray-train-throughput.md").write_text(render(record))
    print(f"[bench] wrote {args.results_dir / 'ray-train-throughput.md'}")
    return 0


def render(record: dict) -> str:
    lines = [
        f"# Ray Train data-parallel throughput: {record['model']} on {record['dataset']} (CPU, gloo)",
        "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']} (shared with other jobs: see the load averages)",
        f"- date: {record['date']}",
        f"- {record['epochs']} epochs per configuration, same seed and settings; each Ray Train worker has 1 CPU "
        "and 1 torch thread; the global batch (train_batch_size) is the same for every configuration, split "
        "between the workers",
        "",
        "CPU share: rank 0's CPU seconds over its wall seconds while training (1.0 = a full core; lower = "
        "waiting for the other worker or for a core).",
        "",
        "| configuration | train s/epoch (after the 1st) | train rows/s | speed-up vs 1 worker | CPU share of rank 0 | "
        "valid s/epoch | test NDCG@10 | test Recall@10 | load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["runs"]:
        rows_per_s = f"{r['rows_per_s']:.0f}" if r["rows_per_s"] else ""
        lines.append(
            f"| {r['label']} | {r['train_s_per_epoch_after_first']:.1f} | {rows_per_s} | "
            f"{r['speedup_vs_1_worker']:.2f}× | {'' if r.get('cpu_share') is None else format(r['cpu_share'], '.2f')} | "
            f"{r['valid_s_per_epoch']:.1f} | {r['test_result']['ndcg@10']:.4f} | "
            f"{r['test_result']['recall@10']:.4f} | {r['load_average_before'][0]:.1f} → "
            f"{r['load_average_after'][0]:.1f} |")
    lines += ["", "Commands:", ""] + [f"- {r['label']}: `{r['command']}`" for r in record["runs"]] + [""]
    if record.get("note"):
        lines += [f"Note: {record['note']}", ""]
    lines += ["Training seconds of every epoch: " + "; ".join(
        f"{r['label']} {', '.join(f'{s:.1f}' for s in r['train_s'])}" for r in record["runs"]), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
