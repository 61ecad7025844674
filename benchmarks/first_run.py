"""What ``make run`` prints after training: this run's test metrics next to a stored benchmark row.

    python benchmarks/first_run.py saved/first_run.json            # against stock SASRec on ml-100k-text

The stored row comes from ``benchmarks/results/<dataset>.json`` (``--reference``), written by
``benchmarks/run.py``; the table says so, with that run's date and command.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = ("ndcg@10", "recall@10", "mrr@10")


def comparison(run: dict, stored: dict, stored_label: str, source: str) -> str:
    rows = [(f"{run['model']} (this run)", run["test_result"], f"{run['wall_time_s']:.0f} s, "
             f"{run['epochs_run']} epochs ({run['stopped_by']})"),
            (f"stock RecBole {stored_label} (from {source})", stored["test_result"],
             f"{stored['wall_time_s']:.0f} s, {stored['epochs_run']} epochs, run {stored.get('date', '?')[:10]}")]
    lines = [f"test metrics on {run['dataset']}:", "",
             "| model | " + " | ".join(SHOWN) + " | training |", "|---|" + "---|" * (len(SHOWN) + 1)]
    for label, metrics, cost in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics.get(m, float('nan')):.4f}" for m in SHOWN)
                     + f" | {cost} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run record (--result_file) of the run to show")
    parser.add_argument("--reference", default=None, help="benchmark results JSON. Default: "
                        "benchmarks/results/<the run's dataset>.json")
    parser.add_argument("--label", default="SASRec", help="row of the reference to compare with. Default: SASRec")
    args = parser.parse_args(argv)
    run = json.loads(Path(args.run).read_text())
    reference = Path(args.reference) if args.reference else RESULTS / f"{run['dataset']}.json"
    stored = json.loads(reference.read_text())
    if args.label not in stored:
        parser.error(f"{reference} has no row {args.label!r} (rows: {', '.join(stored)})")
    try:
        source = reference.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        source = reference
    print(comparison(run, stored[args.label], args.label, str(source)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
