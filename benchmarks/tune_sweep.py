"""Benchmark: a real Ray Tune sweep through the CLI, and what ASHA saved.

    python benchmarks/tune_sweep.py --model gSASRec --dataset Scientific --num_samples 9 --epochs 30 \\
        --grace_period 3 -- --stopping_step=30

runs ``run_recbole_text.py --tune ... --include_default`` (the first trial is the configured default, the
others are sampled from ``properties/tune/<model>.yaml`` or ``--search_space``), with the experiment folder
under ``benchmarks/runs/ray_results/``, and writes ``benchmarks/results/<dataset>-<model>-sweep.json`` and
``.md`` (best validation metric vs the default config's, test metrics of the best checkpoint, total wall time,
epochs run vs epochs budgeted, every trial; machine, command, date) with the learning curves
(``-sweep.png``) and the metric against each hyper-parameter (``-sweep-hparams.png``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from run import log_tail, run_logged  # benchmarks/run.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"
VERBATIM_COLUMNS = ("trial", "status", "stopped_by", "epochs_run", "best_epoch")  # printed as recorded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gSASRec")
    parser.add_argument("--dataset", default="Scientific")
    parser.add_argument("--search_space", default=None)
    parser.add_argument("--num_samples", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=30, help="ASHA's max epochs per trial")
    parser.add_argument("--grace_period", type=int, default=3)
    parser.add_argument("--reduction_factor", type=float, default=3)
    parser.add_argument("--cpus_per_trial", type=float, default=1)
    parser.add_argument("--name", default=None, help="experiment name (default <model>-<dataset>-sweep-<time>)")
    parser.add_argument("--label_suffix", default="", help="results stem <dataset>-<model><suffix>-sweep, e.g. -RSS")
    parser.add_argument("--results_dir", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="continue the experiment --name")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    parser.add_argument("--note", default=None, help="with --render: a remark to keep with the results")
    args, extra = parser.parse_known_args(argv)
    stem = args.results_dir / f"{args.dataset}-{args.model}{args.label_suffix}-sweep"
    if args.render:
        record = json.loads(Path(f"{stem}.json").read_text())
        if args.note:
            record["note"] = args.note
            Path(f"{stem}.json").write_text(json.dumps(record, indent=2))
        Path(f"{stem}.md").write_text(render(record, stem.name))
        return 0
    extra = [a for a in extra if a != "--"]
    name = args.name or f"{args.model}-{args.dataset}-sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    experiment_dir = RUNS / "ray_results"
    command = [sys.executable, "run_recbole_text.py", "--tune", f"--model={args.model}", f"--dataset={args.dataset}",
               f"--num_samples={args.num_samples}", f"--epochs={args.epochs}", f"--grace_period={args.grace_period}",
               f"--reduction_factor={args.reduction_factor:g}", f"--cpus_per_trial={args.cpus_per_trial:g}",
               "--include_default", f"--experiment_dir={experiment_dir}", f"--experiment_name={name}",
               "--show_progress=False", *extra]
    if args.search_space:
        command.append(f"--search_space={args.search_space}")
    if args.resume:
        command.append("--resume")
    RUNS.mkdir(parents=True, exist_ok=True)
    log_path = RUNS / f"{name}.log"
    load_before = os.getloadavg()
    code, wall, _ = run_logged(command, log_path)
    if code != 0:
        print(log_tail(log_path), file=sys.stderr)
        return code
    experiment = experiment_dir / name
    record = summarize(experiment, args, command, wall, load_before)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for source, suffix in (("learning_curves.png", ".png"), ("metric_vs_hyperparameters.png", "-hparams.png")):
        if (experiment / source).is_file():
            shutil.copy(experiment / source, f"{stem}{suffix}")
    Path(f"{stem}.json").write_text(json.dumps(record, indent=2))
    Path(f"{stem}.md").write_text(render(record, stem.name))
    print(f"[bench] wrote {stem}.json and .md")
    return 0


def summarize(experiment: Path, args, command: list[str], wall: float, load_before) -> dict:
    sys.path.insert(0, str(ROOT))
    from recbole_text.quick_start import machine_description

    best = json.loads((experiment / "best.json").read_text())
    spec = json.loads((experiment / "sweep.json").read_text())
    with open(experiment / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metric = best["metric"]
    names = [n for n, d in spec["search_space"].items() if d["kind"] != "value"]
    default_point = spec["default_point"]

    def is_default(row):
        return all(_same(row.get(n), default_point.get(n)) for n in names)

    default = next((r for r in rows if is_default(r)), None)
    return {
        "model": args.model,
        "dataset": args.dataset,
        "metric": metric,
        "scheduler": f"ASHA (max {spec['max_epochs']} epochs, grace period {spec['grace_period']}, "
                     f"reduction factor {spec['reduction_factor']:g})" if spec["scheduler"] == "asha" else spec["scheduler"],
        "trials": best["trials"],
        "statuses": best["statuses"],
        "best": best["best"],
        "default_config": {n: default_point.get(n) for n in names},
        "default_trial": None if default is None else {
            "trial": default["trial"], f"best_{metric}": _float(default[f"best_{metric}"]),
            "epochs_run": int(default["epochs_run"]), "stopped_by": default["stopped_by"],
            "best_epoch": default["best_epoch"]},
        "epochs_run": best["epochs_run"],
        "epochs_budgeted": best["epochs_budgeted"],
        "epochs_saved_fraction": best["epochs_saved_fraction"],
        "sweep_wall_s": best["wall_time_s"],
        "process_wall_s": wall,
        "search_space": spec["search_space"],
        "cpus_per_trial": spec["cpus_per_trial"],
        "rows": rows,
        "experiment": str(experiment),
        "machine": machine_description(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "command": " ".join(["python"] + command[1:]).replace(str(ROOT) + "/", ""),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _same(csv_value, value) -> bool:
    if value is None:
        return False
    number = _float(csv_value)
    if isinstance(value, (int, float)) and number is not None:
        return abs(number - value) <= 1e-9 * max(1.0, abs(value))
    return str(csv_value) == str(value)


def _rungs(record: dict) -> list[int]:
    """ASHA's milestones for the recorded max epochs, grace period and reduction factor."""
    import re

    found = re.search(r"max (\d+) epochs, grace period (\d+), reduction factor ([\d.]+)", record["scheduler"])
    if not found:
        return []
    max_t, grace, factor = int(found.group(1)), int(found.group(2)), float(found.group(3))
    rungs, t = [], grace
    while t < max_t:
        rungs.append(int(t))
        t *= factor
    return rungs


def render(record: dict, stem: str) -> str:
    metric, best, default = record["metric"], record["best"], record["default_trial"]
    lines = [
        f"# Ray Tune sweep: {record['model']} on {record['dataset']} (CPU)",
        "",
        f"- command: `{record['command']}`",
        f"- machine: {record['machine']}; load average before/after: "
        f"{', '.join(f'{x:.1f}' for x in record['load_average_before'])} / "
        f"{', '.join(f'{x:.1f}' for x in record['load_average_after'])} (after: the sweep's own trials included)",
        f"- date: {record['date']}",
        f"- scheduler: {record['scheduler']}; {record['cpus_per_trial']:g} CPU per trial (2 trials at a time)",
        f"- trials: {record['trials']} ({', '.join(f'{v} {k}' for k, v in record['statuses'].items())}); "
        "the first is the default config",
        "",
        "## Result",
        "",
        "| | value |",
        "|---|---|",
    ]
    if best:
        lines.append(f"| best {metric} | **{best[f'best_{metric}']:.4f}** (trial {best['trial']}, epoch "
                     f"{best['best_epoch']} of {best['epochs_run']}) |")
    if default:
        lines.append(f"| default config's {metric} | {default[f'best_{metric}']:.4f} (epoch "
                     f"{default['best_epoch']} of {default['epochs_run']}, stopped by {default['stopped_by']}) |")
        if best and default[f"best_{metric}"]:
            gain = best[f"best_{metric}"] / default[f"best_{metric}"] - 1
            lines.append(f"| best vs default | {best[f'best_{metric}'] - default[f'best_{metric}']:+.4f} "
                         f"({100 * gain:+.0f}%) |")
    if best and best.get("test_result"):
        lines.append("| best config, test (best checkpoint) | " + ", ".join(
            f"{k} {v:.4f}" for k, v in best["test_result"].items()) + " |")
    lines += [
        f"| total wall time | {record['sweep_wall_s']:.0f} s ({record['sweep_wall_s'] / 60:.1f} min) |",
        f"| epochs run / budgeted | {record['epochs_run']} / {record['epochs_budgeted']} "
        f"({record['trials']} trials × max epochs) |",
        f"| saved by ASHA (and early stopping) | {100 * (record['epochs_saved_fraction'] or 0):.0f}% of the epoch "
        "budget |",
        "",
    ]
    if best:
        lines += [f"Best config: `{json.dumps(best['config'])}`  ",
                  f"Default config: `{json.dumps(record['default_config'])}`", ""]
    lines += [
        "Reading it: epochs run counts every epoch trained (trials × max epochs is the budget without a "
        "scheduler). ASHA is asynchronous: a trial that reaches a rung (here epochs "
        + ", ".join(str(r) for r in _rungs(record)) + ") before others is promoted for lack of competition, so "
        "the first trials tend to run longest; the later ones are stopped once they fall below the top "
        "1/reduction-factor of the results recorded at that rung. The hyper-parameter plot shows each trial's "
        "best validation score whatever its number of epochs.",
        "",
        "GPU sweep: not run, this machine has no GPU (trials take GPUs from Ray with `--gpus_per_trial`).", ""]
    if record.get("note"):
        lines += [f"Note: {record['note']}", ""]
    names = [n for n, d in record["search_space"].items() if d["kind"] != "value"]
    space = ", ".join(f"{n}: {d['kind']} {d['args']}" for n, d in record["search_space"].items() if d["kind"] != "value")
    columns = ["trial", "status", "stopped_by", "epochs_run", "best_epoch", f"best_{metric}", *names, "s_per_epoch"]
    # s_per_epoch: training seconds per epoch (1 CPU, machine shared with other jobs)
    lines += ["## Trials", "", f"Search space: {space}", "",
              "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in record["rows"]:
        cells = []
        for c in columns:
            value = row.get(c, "")
            # trial ids stay text: Python reads "4e551_00001" as the float 4e55100001 (inf)
            number = None if c in VERBATIM_COLUMNS else _float(value)
            cells.append(f"{number:.4g}" if number is not None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Plots", "", f"![learning curves]({stem}.png)", "",
              f"![metric vs hyper-parameters]({stem}-hparams.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
