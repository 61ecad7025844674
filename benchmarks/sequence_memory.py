"""Peak memory of sequence-level training on an ML-1M-sized dataset, before vs after a code change.

    python benchmarks/sequence_memory.py --label after                       # this tree
    git -C . archive HEAD | tar -x -C /tmp/before
    python benchmarks/sequence_memory.py --label before --code_root /tmp/before

Generates ``synthetic-1M`` (``benchmarks/synthetic_dataset.py``: 6,040 users, 3,416 items, ≈ 1M interactions)
under ``--data_path`` if it is missing, then runs each model (default gSASRec and SeqSASRec, the CE loss) for
one epoch with ``MAX_ITEM_LIST_LENGTH=200`` as its own ``run_recbole_text.py`` process from ``--code_root``
(``PYTHONPATH=<code_root>``, so a frozen copy of older code runs its own package), one run at a time. Each run
record's ``peak_rss_mb`` (the process's own maximum RSS), its wall time, seconds per epoch and test metrics
accumulate in ``benchmarks/results/<results>.json`` keyed ``<label>/<model>`` and are rendered, before next to
after, to ``<results>.md``. ``--timeout_s`` kills a run that takes too long (the record then says so).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"
METRICS = ("recall@10", "ndcg@10", "mrr@10", "recall@50", "ndcg@50", "mrr@50")
SETTINGS = ["--MAX_ITEM_LIST_LENGTH=200", "--epochs=1", "--show_progress=False"]


def run_measured(command: list[str], cwd: Path, env: dict, log_path: Path, timeout_s: float) -> dict:
    """Run ``command``, output into ``log_path`` → exit code, wall seconds, the process's peak RSS (MB)."""
    print(f"[memory] {' '.join(command)}  (cwd {cwd}, log {log_path})", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                timed_out = True
            time.sleep(0.5)
    return {"exit_code": os.waitstatus_to_exitcode(status), "process_wall_s": time.perf_counter() - started,
            "process_peak_rss_mb": usage.ru_maxrss / 1024, "timed_out": timed_out}


LABEL_ORDER = ("before", "after")


def label_key(label: str):
    base, _, setting = label.partition("-")
    return (setting, LABEL_ORDER.index(base) if base in LABEL_ORDER else len(LABEL_ORDER), label)


def peak_of(record: dict) -> float:
    return record.get("peak_rss_mb") or record["process_peak_rss_mb"]


def render_markdown(records: dict, title: str) -> str:
    lines = [f"# {title}", "",
             "One epoch per run, `MAX_ITEM_LIST_LENGTH=200` unless its command says otherwise, each run its own "
             "process, one run at a time. Peak RSS is the run record's `peak_rss_mb` (the process's maximum resident "
             "set). *before*: a frozen copy of the code before the change (RecBole's prefix rows, rebuilt into "
             "sequences); *after*: training sequences read from the interaction table. A label suffix names the "
             "extra setting of those runs (`eval256`: `--eval_batch_size=256`). Wall times are from a 2-core machine "
             "shared with other work, so they are noisy; memory is not.", ""]
    pairs = {}
    for r in records.values():
        base, _, setting = r["label"].partition("-")
        pairs.setdefault((r["model"], setting), {})[base] = r
    summary = [(key, runs) for key, runs in sorted(pairs.items()) if {"before", "after"} <= set(runs)]
    if summary:
        lines += ["| model | setting | peak RSS before (MB) | peak RSS after (MB) | after / before | "
                  "same test metrics |", "|---|---|---|---|---|---|"]
        for (model, setting), runs in summary:
            before, after = peak_of(runs["before"]), peak_of(runs["after"])
            test = runs["after"].get("test_result")
            same = bool(test) and runs["before"].get("test_result") == test
            lines.append(f"| {model} | {setting or 'defaults'} | {before:.0f} | {after:.0f} | {after / before:.2f} | "
                         f"{'yes' if same else 'no'} |")
        lines.append("")
    lines += ["| label | model | strategy / loss | peak RSS (MB) | wall (s) | s/epoch (train) | s/valid | epochs | "
              "stopped by | " + " | ".join(METRICS) + " |", "|" + "---|" * (9 + len(METRICS))]
    for key, r in sorted(records.items(), key=lambda kv: (kv[1]["model"], label_key(kv[1]["label"]))):
        test = r.get("test_result") or {}
        seconds = [f"{r[k]:.1f}" if r.get(k) else "–" for k in ("seconds_per_epoch", "valid_seconds_per_epoch")]
        cells = [r["label"], r["model"], f"{r.get('train_strategy', '?')} / {r.get('loss_type', '?')}",
                 f"{peak_of(r):.0f}", f"{r.get('wall_time_s') or r['process_wall_s']:.0f}", *seconds,
                 str(r.get("epochs_run", "–")),
                 str(r.get("stopped_by") or ("killed: timeout" if r["timed_out"] else "–")),
                 *(f"{test[m]:.4f}" if m in test else "–" for m in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for key, r in sorted(records.items(), key=lambda kv: (kv[1]["model"], label_key(kv[1]["label"]))):
        lines += [f"## {key}", "", f"- command: `{r['command']}`", f"- code: {r['code_root']}",
                  f"- machine: {r.get('machine', '?')}", f"- date: {r['date']}",
                  f"- process peak RSS (wait4): {r['process_peak_rss_mb']:.0f} MB, "
                  f"process wall {r['process_wall_s']:.0f} s"]
        lines += [f"- note: {r['note']}", ""] if r.get("note") else [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="e.g. before / after")
    parser.add_argument("--code_root", default=str(ROOT), help="the tree whose run_recbole_text.py runs")
    parser.add_argument("--dataset", default="synthetic-1M")
    parser.add_argument("--data_path", default=str(ROOT / "dataset" / "data"))
    parser.add_argument("--models", nargs="+", default=["gSASRec", "SeqSASRec"])
    parser.add_argument("--results", default="synthetic-1M-memory", help="benchmarks/results/<results>.json/.md")
    parser.add_argument("--timeout_s", type=float, default=3600)
    parser.add_argument("--note", default="")
    parser.add_argument("--rebuild", action="store_true", help="only re-render <results>.md from <results>.json")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="after --: more --key=value settings")
    args = parser.parse_args(argv)
    overrides = [o for o in args.overrides if o != "--"]
    json_path = RESULTS / f"{args.results}.json"
    title = f"Sequence training memory on {args.dataset}"
    if args.rebuild:
        json_path.with_suffix(".md").write_text(render_markdown(json.loads(json_path.read_text()), title))
        return 0
    data_path, code_root = Path(args.data_path).resolve(), Path(args.code_root).resolve()
    if args.dataset == "synthetic-1M" and not (data_path / args.dataset / f"{args.dataset}.inter").is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from synthetic_dataset import write_dataset

        write_dataset(data_path, args.dataset)
    RUNS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code_root), "HF_HUB_OFFLINE": "1"}
    for model in args.models:
        stem = f"{args.results}-{args.label}-{model}"
        record_path, checkpoints = RUNS / f"{stem}.json", RUNS / f"{stem}-saved"
        record_path.unlink(missing_ok=True)
        command = [sys.executable, "run_recbole_text.py", f"--model={model}", f"--dataset={args.dataset}",
                   f"--data_path={data_path}", f"--checkpoint_dir={checkpoints}", f"--result_file={record_path}",
                   *SETTINGS, *overrides]
        measured = run_measured(command, code_root, env, RUNS / f"{stem}.log", args.timeout_s)
        record = json.loads(record_path.read_text()) if record_path.is_file() else {"model": model}
        record.pop("history", None)
        record.update(measured, label=args.label, code_root=str(code_root), note=args.note,
                      command=f"PYTHONPATH={code_root} python " + " ".join(command[1:]) + f"  (cwd {code_root})",
                      date=record.get("date") or datetime.now(timezone.utc).isoformat(timespec="seconds"))
        records = json.loads(json_path.read_text()) if json_path.exists() else {}
        records[f"{args.label}/{model}"] = record
        json_path.write_text(json.dumps(records, indent=2))
        json_path.with_suffix(".md").write_text(render_markdown(records, title))
        print(f"[memory] {args.label}/{model}: exit {record['exit_code']}, peak RSS {peak_of(record):.0f} MB, "
              f"{record['process_wall_s']:.0f} s, test {record.get('test_result')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
