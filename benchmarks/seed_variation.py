"""Seed-to-seed spread of test metrics: is the gap between two models larger than a change of seed?

    python benchmarks/seed_variation.py --out benchmarks/results/Scientific-seeds --baseline SASRec \\
        --group SASRec benchmarks/results/Scientific.json:SASRec runs/Scientific-SASRec-seed2.json \\
        --group gSASRec benchmarks/results/Scientific.json:gSASRec runs/Scientific-gSASRec-seed2.json

A run is a ``benchmarks/run.py`` record: a run file (``runs/<dataset>-<label>.json``) or ``<dataset>.json:<label>``
(one entry of a results file). Writes ``<out>.json``, ``<out>.md`` (every seed's test NDCG@10 / Recall@10, mean,
standard deviation, mean difference to the baseline group, and each run's command and date) and ``<out>.png``.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

METRICS = ("ndcg@10", "recall@10")


def load_record(spec: str) -> dict:
    path, _, label = spec.partition(".json:")
    if label:
        records = json.loads(Path(path + ".json").read_text())
        if label not in records:
            raise SystemExit(f"{path}.json has no run labelled {label!r} (it has {sorted(records)})")
        return records[label]
    return json.loads(Path(spec).read_text())


def seed_of(record: dict) -> int:
    found = re.search(r"--seed=(\d+)", record["command"])
    return int(found.group(1)) if found else 2020  # RecBole's default seed


def summarise(groups: dict[str, list[dict]], baseline: str) -> dict:
    summary = {}
    for name, records in groups.items():
        values = {m: [r["test_result"][m] for r in records] for m in METRICS}
        summary[name] = {
            "seeds": [seed_of(r) for r in records],
            **{m: {"values": v, "mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else None}
               for m, v in values.items()},
            "runs": [{"seed": seed_of(r), "command": r["command"], "date": r.get("date"), "machine": r.get("machine")}
                     for r in records],
        }
    if baseline in summary:
        for name, entry in summary.items():
            entry["mean_minus_baseline"] = {m: entry[m]["mean"] - summary[baseline][m]["mean"] for m in METRICS}
    return summary


def render_markdown(summary: dict, baseline: str, command: str, note: str = "") -> str:
    lines = ["# Seed-to-seed variation of test metrics", "", f"- command: `{command}`",
             "- metrics: test split, best-validation checkpoint, full ranking, leave-one-out",
             *([f"- note: {note}"] if note else []), "",
             "| group | seeds | NDCG@10 per seed | mean ± sd | vs baseline | Recall@10 per seed | mean ± sd | vs baseline |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in summary.items():
        cells = [name, " ".join(map(str, entry["seeds"]))]
        for m in METRICS:
            sd = entry[m]["sd"]
            delta = entry.get("mean_minus_baseline", {}).get(m)
            cells += [" ".join(f"{v:.4f}" for v in entry[m]["values"]),
                      f"{entry[m]['mean']:.4f}" + (f" ± {sd:.4f}" if sd is not None else ""),
                      "baseline" if name == baseline else ("" if delta is None else f"{delta:+.4f}")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Runs", ""]
    for name, entry in summary.items():
        for run in entry["runs"]:
            lines.append(f"- {name}, seed {run['seed']} ({run['date']}, {run['machine']}): `{run['command']}`")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.5))
    for ax, metric in zip(axes, METRICS):
        for x, (name, entry) in enumerate(summary.items()):
            ax.scatter([x] * len(entry[metric]["values"]), entry[metric]["values"], alpha=0.7)
            ax.hlines(entry[metric]["mean"], x - 0.25, x + 0.25, colors="black")
        ax.set_xticks(range(len(summary)), list(summary), rotation=20)
        ax.set_ylabel(f"test {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="path without suffix: <out>.json, <out>.md, <out>.png")
    parser.add_argument("--baseline", default="SASRec")
    parser.add_argument("--note", default="", help="a caveat to print under the command")
    parser.add_argument("--group", nargs="+", action="append", required=True, metavar=("NAME", "RUN"),
                        help="a group name, then its runs")
    args = parser.parse_args(argv)
    groups = {}
    for name, *specs in args.group:
        if not specs:
            raise SystemExit(f"group {name!r} names no runs")
        groups[name] = [load_record(spec) for spec in specs]
    summary = summarise(groups, args.baseline)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    command = "python benchmarks/seed_variation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out.with_suffix(".md").write_text(render_markdown(summary, args.baseline, command, args.note))
    plot(summary, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
