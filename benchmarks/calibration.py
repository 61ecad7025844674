"""Combine the calibration tables of benchmark runs into one report (table + reliability plot).

    python benchmarks/run.py --dataset ml-100k-text --models gSASRec -- --calibration_report=True
    python benchmarks/run.py --dataset ml-100k-text --models gSASRec --label_suffix=-t0 -- --gbce_t=0 --calibration_report=True
    python benchmarks/calibration.py --dataset ml-100k-text --labels gSASRec gSASRec-t0

writes ``benchmarks/results/<dataset>-calibration.{json,md,png}``.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recbole_text.evaluation.calibration import write_calibration_report  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    args = parser.parse_args(argv)
    results = ROOT / "benchmarks" / "results"
    records = json.loads((results / f"{args.dataset}.json").read_text())
    tables = {}
    for label in args.labels:
        if "calibration" not in records.get(label, {}):
            raise SystemExit(f"error: {label} has no calibration table; run it with --calibration_report=True")
        t = records[label].get("gbce_t")
        tables[f"{label} (t={t})" if t is not None else label] = records[label]["calibration"]
    paths = write_calibration_report(tables, results / f"{args.dataset}-calibration",
                                     title=f"Calibration on {args.dataset}: σ(score) vs hit rate by rank")
    print("\n".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
