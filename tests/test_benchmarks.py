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


def test_seed_variation_summarises_each_group_against_the_baseline(tmp_path):
    def record(seed, ndcg, recall):
        flag = f" --seed={seed}" if seed != 2020 else ""
        return {"test_result": {"ndcg@10": ndcg, "recall@10": recall}, "command": f"python run_recbole_text.py{flag}",
                "date": "2026-11-25", "machine": "test box"}

    (tmp_path / "results.json").write_text(json.dumps({"A": record(2020, 0.05, 0.10), "B": record(2020, 0.06, 0.09)}))
    (tmp_path / "a2.json").write_text(json.dumps(record(2, 0.07, 0.12)))
    (tmp_path / "b2.json").write_text(json.dumps(record(2, 0.04, 0.07)))
    out = tmp_path / "seeds"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_variation.py"), "--out", str(out),
                           "--baseline", "A", "--group", "A", f"{tmp_path}/results.json:A", str(tmp_path / "a2.json"),
                           "--group", "B", f"{tmp_path}/results.json:B", str(tmp_path / "b2.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["A"]["seeds"] == [2020, 2] and summary["B"]["ndcg@10"]["values"] == [0.06, 0.04]
    assert abs(summary["A"]["ndcg@10"]["mean"] - 0.06) < 1e-12 and abs(summary["A"]["ndcg@10"]["sd"] - 0.01414) < 1e-4
    assert abs(summary["B"]["mean_minus_baseline"]["recall@10"] - (-0.03)) < 1e-12
    markdown = out.with_suffix(".md").read_text()
    assert "| B | 2020 2 | 0.0600 0.0400 | 0.0500 ± 0.0141 | -0.0100 |" in markdown
    assert out.with_suffix(".png").stat().st_size > 1000
