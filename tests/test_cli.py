"""The CLI and run(): RecBole's trainer/evaluator end to end, safe checkpoints, resume, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recbole_text.cli import build_parser, main, parse_overrides
from recbole_text.quick_start import run

from conftest import FAST, FAST_ARGS, REPO, run_cli


def test_help_documents_options():
    text = build_parser().format_help()
    for option in ("--model", "--dataset", "--config_files", "--resume", "--result_file", "--epochs",
                   "--exclude_seen_items", "--data_path", "--benchmark_filename"):
        assert option in text


def test_parse_overrides_types():
    assert parse_overrides(["--epochs=3", "--learning_rate=1e-3", "--topk=[10,50]", "--use_gpu=False"]) == {
        "epochs": 3, "learning_rate": 0.001, "topk": [10, 50], "use_gpu": False}
    with pytest.raises(SystemExit):
        parse_overrides(["epochs=3"])


def test_cli_trains_and_prints_test_metrics(tiny_data, in_tmp_cwd, capsys):
    result_file = in_tmp_cwd / "out" / "run.json"
    code = main(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_data}", f"--result_file={result_file}",
                 *FAST_ARGS, "--epochs=3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "test:" in out and "ndcg@10" in out
    record = json.loads(result_file.read_text())
    assert set(record["test_result"]) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (10, 50)}
    assert all(0.0 <= v <= 1.0 for v in record["test_result"].values())
    assert [r["epoch"] for r in record["history"]] == [0, 1, 2]
    assert record["epochs_run"] == 3 and record["stopped_by"] == "epochs"
    assert record["peak_rss_mb"] > 0 and record["seconds_per_epoch"] > 0
    assert result_file.with_suffix(".png").stat().st_size > 1000
    # the checkpoint is plain data: loads with weights_only=True, config is a dict of JSON-able values
    checkpoint = torch.load(record["checkpoint"], weights_only=True)
    assert checkpoint["model"] == "SASRec" and isinstance(checkpoint["config"], dict)
    json.dumps(checkpoint["config"])


def test_pattern_is_learned_and_resume_continues(tiny_data, in_tmp_cwd):
    """On the tiny data the next item is always the previous + 1: a working pipeline finds it."""
    first = run("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "epochs": 25,
                                                "learning_rate": 0.01})
    assert first["test_result"]["recall@10"] > 0.9  # random ranking gives 10/60
    resumed = run("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "epochs": 27},
                  resume=first["checkpoint"])
    assert [r["epoch"] for r in resumed["history"]] == [25, 26]
    assert resumed["test_result"]["recall@10"] > 0.9


class Interrupted(Exception):
    pass


def interrupt_at(stage: str, epoch: int):
    """An epoch callback that stops a run at the validation of ``epoch`` of ``stage`` (before its resume point)."""
    def callback(record):
        if record["stage"] == stage and record["epoch"] == epoch:
            raise Interrupted
    return callback


def only_resume_point(folder) -> str:
    points = sorted(str(p) for p in (folder / "saved").glob("*-resume.pth"))
    assert len(points) == 1, points
    return points[0]


def test_an_interrupted_run_resumes_from_its_resume_point_as_if_never_stopped(tiny_data, in_tmp_cwd):
    """The resume point restores weights, optimizer, linear schedule, early stopping, history and random
    states: the resumed run's epochs and test metrics are the uninterrupted run's, and the point is removed."""
    config = {**FAST, "data_path": str(tiny_data), "epochs": 4, "stopping_step": 10, "lr_scheduler": "linear",
              "warmup_steps": 2, "train_strategy": "rss", "rss_pct": 0.5, "dropout_prob": 0.3}
    full = run("SeqSASRec", "tiny", config_dict=config)
    assert not list((in_tmp_cwd / "saved").glob("*-resume.pth"))  # a finished run leaves none
    with pytest.raises(Interrupted):
        run("SeqSASRec", "tiny", config_dict=config, epoch_callbacks=[interrupt_at("train", 2)])
    point_file = only_resume_point(in_tmp_cwd)
    point = torch.load(point_file, weights_only=True)
    assert point["epoch"] == 1 and point["resume_point"]["stage"] == "train"
    resumed = run("SeqSASRec", "tiny", config_dict=config, resume=point_file)
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2, 3]
    for got, want in zip(resumed["history"], full["history"]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-6)
        assert got["valid_score"] == pytest.approx(want["valid_score"], abs=1e-6)
    assert resumed["test_result"] == pytest.approx(full["test_result"], abs=1e-6)
    assert not Path(point_file).exists()
    # the compute of both sittings: the first up to its resume point, then this one
    assert len(full["sittings_s"]) == 1 and full["total_wall_s"] == full["wall_time_s"]
    first_sitting = point["resume_point"]["sittings_s"]
    assert len(first_sitting) == 1 and first_sitting[0] > 0
    assert resumed["sittings_s"] == pytest.approx([first_sitting[0], resumed["wall_time_s"]])
    assert resumed["total_wall_s"] == pytest.approx(first_sitting[0] + resumed["wall_time_s"])


def test_a_resume_point_of_another_stage_is_refused(tiny_data, in_tmp_cwd):
    from recbole_text.compat import CheckpointError

    config = {**FAST, "data_path": str(tiny_data), "epochs": 2}
    with pytest.raises(Interrupted):
        run("SASRec", "tiny", config_dict=config, epoch_callbacks=[interrupt_at("train", 1)])
    point_file = only_resume_point(in_tmp_cwd)
    point = torch.load(point_file, weights_only=True)
    point["resume_point"]["stage"] = "stage2"
    torch.save(point, point_file)
    with pytest.raises(CheckpointError, match="stage 'stage2', not one of this run's stages"):
        run("SASRec", "tiny", config_dict=config, resume=point_file)


@pytest.mark.parametrize("model", ["GRU4Rec", "BERT4Rec"])
def test_recbole_baselines_run_through_the_same_cli(model, tiny_data, in_tmp_cwd):
    result = run(model, "tiny", config_dict={**FAST, "data_path": str(tiny_data), "epochs": 1})
    assert result["model"] == model
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_exclude_seen_items_removes_history_from_the_ranking(tiny_data, in_tmp_cwd):
    from recbole_text.config import TextConfig
    from recbole_text.data import create_dataset, data_preparation
    from recbole_text.registry import get_model, get_trainer

    config = TextConfig("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data),
                                                      "exclude_seen_items": True})
    train, _, test = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    trainer.tot_item_num = test._dataset.item_num  # set by evaluate() before it scores batches
    batch = next(iter(test))
    interaction, scores, _, _ = trainer._full_sort_batch_eval(batch)
    history = interaction["item_id_list"]
    seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, history, True)
    seen[:, 0] = False
    assert seen.any()
    assert torch.isinf(scores[seen]).all()
    assert torch.isfinite(scores[:, 1:][~seen[:, 1:]]).all()


def test_checkpoint_of_another_model_is_refused(tiny_data, in_tmp_cwd, capsys):
    first = run("GRU4Rec", "tiny", config_dict={**FAST, "data_path": str(tiny_data)})
    code = main(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_data}", f"--resume={first['checkpoint']}",
                 *FAST_ARGS])
    err = capsys.readouterr().err
    assert code == 2
    assert first["checkpoint"] in err and "GRU4Rec" in err and "SASRec" in err


def test_checkpoint_of_another_configuration_is_refused(tiny_data, in_tmp_cwd, capsys):
    first = run("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data)})
    args = [a for a in FAST_ARGS if not a.startswith("--hidden_size")]
    code = main(["--model=SASRec", "--dataset=tiny", f"--data_path={tiny_data}", f"--resume={first['checkpoint']}",
                 "--hidden_size=32", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert first["checkpoint"] in err and "do not fit" in err and "Traceback" not in err


def test_runs_started_in_the_same_second_keep_separate_checkpoints(tiny_data, in_tmp_cwd):
    from recbole_text.config import TextConfig
    from recbole_text.data import create_dataset, data_preparation
    from recbole_text.registry import get_model, get_trainer

    config = TextConfig("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data)})
    train, _, _ = data_preparation(config, create_dataset(config))
    trainer_class = get_trainer(config["MODEL_TYPE"], "SASRec")
    files = {trainer_class(config, get_model("SASRec")(config, train._dataset)).saved_model_file for _ in range(3)}
    assert len(files) == 3


def test_missing_dataset_prints_the_converter_command(in_tmp_cwd):
    done = run_cli("--model=SASRec", "--dataset=Scientific", f"--data_path={in_tmp_cwd / 'nowhere'}",
                   cwd=in_tmp_cwd)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "python -m recbole_text.data.converters unisrec" in done.stderr
    assert str(in_tmp_cwd / "nowhere" / "Scientific") in done.stderr


def test_unknown_model_is_one_clear_error(in_tmp_cwd):
    done = run_cli("--model=NoSuchModel", cwd=in_tmp_cwd)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "NoSuchModel" in done.stderr


def test_embedded_default_is_built_on_first_use(in_tmp_cwd):
    """ml-100k-text comes from RecBole's wheel: no download, built into data_path when missing."""
    result = run("GRU4Rec", "ml-100k-text", config_dict={**FAST, "data_path": str(in_tmp_cwd / "data"),
                                                          "MAX_ITEM_LIST_LENGTH": 5, "train_batch_size": 4096})
    assert (in_tmp_cwd / "data" / "ml-100k-text" / "ml-100k-text.itemtext").is_file()
    assert result["test_result"]["recall@10"] > 0.0


def test_no_arguments_runs_the_short_embedded_default(monkeypatch, capsys):
    import recbole_text.quick_start as quick_start

    calls = []

    def fake_run(**kwargs):
        calls.append(kwargs)
        return {"model": kwargs["model"], "dataset": kwargs["dataset"], "epochs_run": 2, "best_epoch": 1,
                "wall_time_s": 1.0, "best_valid_result": {"ndcg@10": 0.1}, "test_result": {"ndcg@10": 0.1}}

    monkeypatch.setattr(quick_start, "run", fake_run)
    assert main([]) == 0
    assert calls[0]["model"] == "gSASRec" and calls[0]["dataset"] == "ml-100k-text"
    assert calls[0]["config_dict"] == {"stopping_step": 10}  # the first-run profile
    assert main(["--result_file=first.json"]) == 0 and calls[1]["config_dict"] == {"stopping_step": 10}
    assert main(["--epochs=7"]) == 0 and calls[2]["config_dict"] == {"epochs": 7}  # a setting: no profile
    assert main(["--model=SASRec"]) == 0 and calls[3]["config_dict"] == {}
    assert "ndcg@10" in capsys.readouterr().out


def _resident_mb() -> float:
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def test_release_free_memory_returns_the_freed_heap_to_the_os():
    from recbole_text.trainer import release_free_memory
    if not release_free_memory():  # False off Linux and on non-glibc C libraries
        pytest.skip("needs glibc's malloc_trim")
    blocks = [bytearray(2000) for _ in range(50_000)]  # ~100 MB of malloc'd chunks
    pinned = blocks[-1]  # the heap's top stays in use, so free() alone cannot shrink it
    del blocks
    before = _resident_mb()
    assert release_free_memory()
    assert before - _resident_mb() > 50
    assert len(pinned) == 2000


def test_trainer_releases_free_memory_after_each_training_and_validation_epoch(tiny_data, in_tmp_cwd,
                                                                               monkeypatch):
    import recbole_text.trainer as trainer_module
    calls = []
    monkeypatch.setattr(trainer_module, "release_free_memory", lambda: calls.append(1) or True)
    run("SASRec", "tiny", config_dict={**FAST, "data_path": str(tiny_data), "epochs": 3})
    assert len(calls) == 6


def test_help_answers_without_importing_torch_recbole_or_ray():
    import subprocess
    import sys

    probe = ("import sys, runpy; sys.argv = ['run_recbole_text.py', '--help']\n"
             "try:\n    runpy.run_path('run_recbole_text.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in ('torch', 'recbole', 'ray', 'numpy', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "usage: run_recbole_text.py" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"


def test_first_run_prints_the_stock_figure_and_where_it_comes_from(tmp_path, capsys):
    import json
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from first_run import main as first_run

    run_record = {"model": "gSASRec", "dataset": "ml-100k-text", "wall_time_s": 95.0, "epochs_run": 40,
                  "stopped_by": "early_stopping", "test_result": {"ndcg@10": 0.0612, "recall@10": 0.125, "mrr@10": 0.04}}
    (tmp_path / "run.json").write_text(json.dumps(run_record))
    assert first_run([str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    stock = json.loads((REPO / "benchmarks" / "results" / "ml-100k-text.json").read_text())["SASRec"]
    assert "| gSASRec (this run) | 0.0612 | 0.1250 | 0.0400 |" in out
    assert "| stock RecBole SASRec (from " in out and "benchmarks/results/ml-100k-text.json" in out
    assert f"{stock['test_result']['ndcg@10']:.4f}" in out
