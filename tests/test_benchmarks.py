"""The benchmark harness: runs models through the CLI and records metrics, timings and memory."""
import json
import subprocess
import sys

from conftest import FAST, REPO


def test_harness_records_each_model_and_compares_with_the_baseline(tiny_data, tmp_path):
    results = tmp_path / "results"
    settings = [f"--{k}={v}" for k, v in FAST.items()] + [f"--data_path={tiny_data}", "--epochs=2"]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--dataset", "tiny",
                           "--models", "SASRec", "GRU4Rec", "--results_dir", str(results), "--", *settings],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads((results / "tiny.json").read_text())
    assert set(records) == {"SASRec", "GRU4Rec"}
    for label, record in records.items():
        assert record["epochs_run"] == 2 and len(record["history"]) == 2
        assert record["process_peak_rss_mb"] > 50 and record["seconds_per_epoch"] > 0
        assert record["time_to_best_s"] is not None and record["machine"] and record["date"]
        assert (results / f"tiny-{label}.png").is_file()
    markdown = (results / "tiny.md").read_text()
    assert "| SASRec | SASRec |" in markdown and "| GRU4Rec | GRU4Rec |" in markdown
    assert "Time to reach SASRec's best validation" in markdown
