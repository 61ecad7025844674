"""The benchmark harness: runs models through the CLI and records metrics, timings and memory."""
import json
import subprocess
import sys

import pytest

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
        test = record["test_result"]  # the harness asks every run for the coverage and popularity metrics
        assert 0 < test["itemcoverage@10"] <= 1 and 0 <= test["giniindex@10"] < 1 and test["averagepopularity@10"] > 0
        assert "--metrics=[Recall,NDCG,MRR,ItemCoverage,GiniIndex,AveragePopularity]" in record["command"]
    markdown = (results / "tiny.md").read_text()
    assert "| SASRec | SASRec |" in markdown and "| GRU4Rec | GRU4Rec |" in markdown
    assert "Time to reach SASRec's best validation" in markdown
    assert "| itemcoverage@10 | giniindex@10 | averagepopularity@10 |" in markdown
    sasrec_row = next(line for line in markdown.splitlines() if line.startswith("| SASRec | SASRec |"))
    assert "—" not in sasrec_row and "nan" not in sasrec_row


def test_table_shows_a_dash_for_metrics_a_committed_run_did_not_record():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run import render_markdown

    legacy = {"model": "SASRec", "test_result": {"recall@10": 0.1188, "ndcg@10": 0.0552}, "epochs_run": 12,
              "best_epoch": 7, "stopped_by": "time_budget", "time_to_best_s": 1038.0, "seconds_per_epoch": 129.5,
              "valid_seconds_per_epoch": 0.2, "process_wall_s": 1562.0, "process_peak_rss_mb": 4498.0,
              "command": "python run_recbole_text.py", "machine": "test box", "date": "2026-11-25",
              "best_valid_score": 0.06, "valid_metric": "ndcg@10", "history": []}
    new = dict(legacy, test_result={**legacy["test_result"], "itemcoverage@10": 0.41234, "giniindex@10": 0.8,
                                    "averagepopularity@10": 251.26})
    markdown = render_markdown("ml-100k-text", {"SASRec": legacy, "gSASRec": new})
    rows = [line for line in markdown.splitlines() if " | SASRec | " in line]  # the metrics table's rows
    dash = " — |"
    assert rows[0].startswith("| SASRec | SASRec | 0.1188 | 0.0552 |" + dash * 7 + " 12 | 7 |")
    assert rows[1].startswith("| gSASRec | SASRec | 0.1188 | 0.0552 |" + dash * 4 + " 0.4123 | 0.8000 | 251.3 | 12 |")


def test_wall_of_a_run_resumed_over_sittings_is_their_sum():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run import wall_cell

    assert wall_cell({"process_wall_s": 1562.4}) == "1562"  # a record from before sittings were kept
    assert wall_cell({"process_wall_s": 1562.4, "sittings_s": [1560.0]}) == "1562"
    # the harness's process wall replaces the last sitting's in-process wall
    assert wall_cell({"process_wall_s": 900.0, "sittings_s": [8000.0, 890.0]}) == "8900 (2 sittings)"


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


def test_sweep_report_keeps_trial_ids_that_look_like_numbers(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from tune_sweep import render

    row = {"trial": "4e551_00001", "status": "TERMINATED", "stopped_by": "epochs", "epochs_run": "60",
           "best_epoch": "13", "best_valid_ndcg@10": "0.060212", "rss_alpha": "0.7", "s_per_epoch": "1.99123"}
    record = {"metric": "valid_ndcg@10", "model": "SeqSASRec", "dataset": "tiny", "command": "python x",
              "machine": "test box", "load_average_before": [0.1, 0.1, 0.1], "load_average_after": [2.0, 2.0, 2.0],
              "date": "2026-11-25", "scheduler": "asha", "cpus_per_trial": 1, "trials": 1,
              "statuses": {"TERMINATED": 1}, "default_trial": None, "default_config": {}, "sweep_wall_s": 60.0,
              "epochs_run": 60,
              "epochs_budgeted": 60, "epochs_saved_fraction": 0.0,
              "best": {"best_valid_ndcg@10": 0.060212, "trial": "4e551_00001", "best_epoch": 13, "epochs_run": 60,
                       "config": {"rss_alpha": 0.7}},
              "search_space": {"rss_alpha": {"kind": "choice", "args": [[0.7, 0.8]]}}, "rows": [row]}
    markdown = render(record, "tiny-SeqSASRec-sweep")
    assert "| 4e551_00001 | TERMINATED | epochs | 60 | 13 | 0.06021 | 0.7 | 1.991 |" in markdown
    assert "inf" not in markdown


def test_recformer_cpu_benchmark_times_both_precisions_and_writes_its_report(text_data, tmp_path, in_tmp_cwd):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import recformer_cpu

    root, bert = text_data
    record = recformer_cpu.main(recformer_cpu.parse([
        "--dataset=c", f"--data_path={root}", f"--plm_name={bert}", "--tokens", "32", "48", "--steps", "2",
        f"--results={tmp_path}", "--emulated_bf16"]))
    assert set(record["steps"]) == {"32", "48"}
    assert all(step["fp32_s"] > 0 and step["bf16_s"] > 0 for step in record["steps"].values())
    for step in record["steps"].values():  # the phases split the step: of 2 steps the median is the mean, so
        for dtype in ("fp32", "bf16"):      # the phases' medians add up to the step's
            phases = step[f"{dtype}_phases_s"]
            assert set(phases) == {"forward", "backward", "optimizer"} and min(phases.values()) > 0
            assert sum(phases.values()) == pytest.approx(step[f"{dtype}_s"], rel=1e-6)
    assert record["item_table"]["items"] == 49 and record["item_table"]["cosine_mean"] > 0.9  # items seen in c
    assert record["epoch_estimate_bf16_s"] > 0 and record["peak_rss_mb"] > 0
    report = (tmp_path / "recformer-cpu.md").read_text()
    assert "| 48 |" in report and "bf16 autocast" in report
    assert "| forward (loss) | backward | AdamW step |" in report and "| 48 | bf16 |" in report
    assert all(min(step["encoder_fp32_s"].values()) > 0 for step in record["steps"].values())
    assert set(record["steps"]["48"]["encoder_fp32_s"]) == {"full", "cls_only"} and "| [CLS] alone |" in report


def test_recformer_cpu_benchmark_times_fp32_only_where_bf16_is_emulated(text_data, tmp_path, in_tmp_cwd,
                                                                        monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import recformer_cpu

    from recbole_text.text import encoder as encoder_module

    root, bert = text_data
    args = ["--dataset=c", f"--data_path={root}", f"--plm_name={bert}", "--tokens", "32", "--steps", "1",
            f"--results={tmp_path}"]
    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: True)
    native = recformer_cpu.main(recformer_cpu.parse(args))
    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: False)
    emulated = recformer_cpu.main(recformer_cpu.parse(args))
    assert native["steps"]["32"]["bf16_s"] > 0 and native["bf16_native"]
    assert emulated["steps"]["32"]["fp32_s"] > 0 and emulated["steps"]["32"]["bf16_s"] is None
    assert emulated["item_table"]["bf16_s"] is None and emulated["epoch_estimate_bf16_s"] is None
    report = (tmp_path / "recformer-cpu.md").read_text()  # both runs, the latest (emulated) first
    assert report.index(": no native bf16") < report.index(": native bf16")
    assert "bf16 not timed" in report and "| — | — |" in report
