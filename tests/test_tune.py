"""Ray Tune sweeps: search-space YAML, per-epoch reports reaching the scheduler, the results table and the best
trial's test metrics, retried and failed trials, resuming an interrupted sweep, and the CLI that drives them."""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from recbole_text.cli import main
from recbole_text.config import PROPERTIES, ConfigError, TextConfig
from recbole_text.tune import (load_search_space, make_scheduler, metric_and_mode, num_trials, to_param_space,
                               train_trial, trial_overrides)

from conftest import FAST, write_tiny_dataset
from ray_session import ray_session  # noqa: F401  (fixture)

PACKAGE_MODELS = ["gSASRec", "SeqSASRec", "SeqGRU4Rec", "UniSRec", "Recformer"]


# --- search space, metric, resources (no Ray session) ------------------------------------------------------
def test_search_space_yaml_becomes_tune_domains(tmp_path):
    from ray.tune.search.sample import Categorical, Float, Integer

    path = tmp_path / "space.yaml"
    path.write_text(
        "learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n"
        "hidden_dropout_prob: {uniform: [0.1, 0.5]}\n"
        "num_negatives: {choice: [64, 128]}\n"
        "train_batch_size: {quniform: [64, 256, 64]}\n"
        "gbce_t: {quniform: [0.25, 1.0, 0.25]}\n"
        "n_layers: {grid: [1, 2, 3]}\n"
        "MAX_ITEM_LIST_LENGTH: 20\n"
        "eval_args: {value: {order: TO}}\n"
    )
    space = load_search_space(path)
    params = to_param_space(space)
    assert isinstance(params["learning_rate"], Float)
    rates = [params["learning_rate"].sample() for _ in range(400)]
    assert all(1e-4 <= r <= 1e-2 for r in rates)
    assert 0.35 < sum(r < 1e-3 for r in rates) / len(rates) < 0.65  # log-uniform: half below the log-midpoint
    assert isinstance(params["hidden_dropout_prob"], Float)
    assert isinstance(params["num_negatives"], Categorical) and params["num_negatives"].categories == [64, 128]
    assert isinstance(params["train_batch_size"], Integer)  # integer bounds and step: integers
    assert isinstance(params["gbce_t"], Float) and params["gbce_t"].sampler.q == 0.25
    assert params["n_layers"] == {"grid_search": [1, 2, 3]}
    assert params["MAX_ITEM_LIST_LENGTH"] == 20 and params["eval_args"] == {"order": "TO"}
    assert num_trials(space, num_samples=4) == 12
    samples = [params["train_batch_size"].sample() for _ in range(50)]
    assert set(samples) <= {64, 128, 192, 256}


@pytest.mark.parametrize("text, message", [
    ("lr: {normal: [0, 1]}", "unknown distribution 'normal'"),
    ("lr: {uniform: [0.5, 0.1]}", "low < high"),
    ("lr: {loguniform: [0, 1]}", "low > 0"),
    ("lr: {quniform: [1, 2]}", "[low, high, q]"),
    ("lr: {choice: []}", "non-empty list"),
    ("lr: 0.1", "nothing to search"),
    ("[1, 2]", "expected a mapping"),
])
def test_bad_search_space_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as error:
        load_search_space(path)
    assert message in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("model", PACKAGE_MODELS)
def test_shipped_search_spaces_set_real_settings_of_their_model(model, tiny_data):
    space = load_search_space(PROPERTIES / "tune" / f"{model}.yaml")
    config = TextConfig(model, "tiny", config_dict={"data_path": str(tiny_data)})
    assert set(space) <= set(config.final_config_dict), "a typo in the search space would be silently ignored"
    to_param_space(space)


def test_metric_and_mode_follow_valid_metric():
    assert metric_and_mode({"valid_metric": "NDCG@10", "valid_metric_bigger": True}) == ("valid_ndcg@10", "max")
    assert metric_and_mode({"valid_metric": "RMSE", "valid_metric_bigger": True}) == ("valid_rmse", "min")
    assert metric_and_mode({"valid_metric": "MRR@10", "valid_metric_bigger": False}) == ("valid_mrr@10", "min")


def test_default_scheduler_is_asha_over_epochs():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    asha = make_scheduler("asha", max_epochs=30, grace_period=3, reduction_factor=3)
    assert isinstance(asha, ASHAScheduler) and asha._time_attr == "epochs_done" and asha._max_t == 30
    assert isinstance(make_scheduler("fifo", 30, 3, 3), FIFOScheduler)


@pytest.mark.parametrize("gpus", [0, 1])
def test_trials_leave_cuda_visible_devices_to_ray(gpus, tiny_data, monkeypatch):
    spec = {"overrides": {"gpu_id": 0, "data_path": str(tiny_data)}, "gpus_per_trial": gpus}
    overrides = trial_overrides(spec, {"learning_rate": 0.01}, str(tiny_data / "ckpt"))
    assert overrides["use_gpu"] is bool(gpus) and overrides["gpu_id"] == "" and overrides["learning_rate"] == 0.01
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what Ray sets for a trial it gave GPU 3
    TextConfig("SASRec", "tiny", config_dict=overrides)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # a trial without a GPU
    TextConfig("SASRec", "tiny", config_dict=overrides)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # the cleared gpu_id (0 in the sweep's settings) never sets it


def test_cli_passes_sweep_and_scale_out_options(monkeypatch, capsys):
    import recbole_text.distributed as distributed
    import recbole_text.tune as tune_module

    calls = []
    summary = {"model": "gSASRec", "dataset": "d", "trials": 2, "statuses": {"TERMINATED": 2}, "epochs_run": 3,
               "epochs_budgeted": 4, "epochs_saved_fraction": 0.25, "wall_time_s": 5.0, "metric": "valid_ndcg@10",
               "best": {"trial": "t1", "config": {"learning_rate": 0.01}, "best_valid_ndcg@10": 0.2,
                        "test_result": {"ndcg@10": 0.19}},
               "files": {"markdown": "x/trials.md", "csv": "x/trials.csv"}}
    monkeypatch.setattr(tune_module, "tune", lambda *a, **k: calls.append((a, k)) or summary)
    code = main(["--tune", "--model=gSASRec", "--dataset=d", "--num_samples=3", "--cpus_per_trial=2",
                 "--gpus_per_trial=0.5", "--ray_address=auto", "--epochs=4", "--experiment_dir=exp", "--resume"])
    assert code == 0
    args, kwargs = calls[0]
    assert args[:2] == ("gSASRec", "d") and args[4] == {"epochs": 4}
    assert kwargs["resume"] is True and kwargs["num_samples"] == 3 and kwargs["cpus_per_trial"] == 2
    assert kwargs["gpus_per_trial"] == 0.5 and kwargs["ray_address"] == "auto" and kwargs["scheduler"] == "asha"
    main(["--tune", "--model=gSASRec", "--dataset=d"])
    assert calls[1][0][2] == str(PROPERTIES / "tune" / "gSASRec.yaml")  # the shipped space by default
    assert "best trial t1" in capsys.readouterr().out

    monkeypatch.setattr(distributed, "train_distributed", lambda *a, **k: calls.append((a, k)) or {
        "model": "m", "dataset": "d", "epochs_run": 1, "best_epoch": 0, "wall_time_s": 1.0,
        "best_valid_result": {}, "test_result": {}})
    assert main(["--model=SeqSASRec", "--dataset=d", "--num_workers=2", "--use_gpu", "--epochs=3"]) == 0
    args, kwargs = calls[2]
    assert kwargs["num_workers"] == 2 and kwargs["use_gpu"] is True and args[3] == {"use_gpu": True, "epochs": 3}


@pytest.mark.parametrize("argv, message", [
    (["--tune", "--resume=saved/x.pth"], "takes no value"),
    (["--tune", "--num_workers=2"], "separate modes"),
    (["--resume"], "needs a CHECKPOINT"),
    (["--tune", "--model=SASRec", "--dataset=tiny"], "--search_space"),
])
def test_sweep_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# --- real sweeps on Ray (CPU, loopback) --------------------------------------------------------------------
def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def make_recording_asha(log: Path, **kwargs):
    """ASHA that appends every result it receives to ``log`` (the scheduler runs in this process)."""
    from ray.tune.schedulers import ASHAScheduler

    class RecordingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            with open(log, "a") as f:
                f.write(json.dumps({"trial": trial.trial_id, "epochs_done": result.get("epochs_done"),
                                    "metric": result.get(self.metric)}) + "\n")
            return super().on_trial_result(tune_controller, trial, result)

    return RecordingASHA(**kwargs)


def test_gsasrec_sweep_on_ml100k_text_reports_every_epoch_and_picks_the_better_trial(ray_session, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {grid: [0.0001, 0.005]}\n"
                     "hidden_dropout_prob: {uniform: [0.1, 0.3]}\n"
                     "num_negatives: {choice: [16, 32]}\n"
                     "gbce_t: {uniform: [0.5, 1.0]}\n")
    log = tmp_path / "scheduler.jsonl"
    from recbole_text.tune import tune

    summary = tune("gSASRec", "ml-100k-text", space, config_dict={
        **FAST, "data_path": str(tmp_path / "data"), "epochs": 2, "MAX_ITEM_LIST_LENGTH": 20,
        "eval_batch_size": 1024}, experiment_dir=tmp_path / "ray_results", verbose=0,
        scheduler=make_recording_asha(log, time_attr="epochs_done", max_t=2, grace_period=2))
    experiment = Path(summary["experiment"])
    assert (tmp_path / "data" / "ml-100k-text" / "ml-100k-text.inter").is_file()  # built once, by the driver

    # every epoch of every trial reached the scheduler, with the validation metric
    reports = [json.loads(line) for line in log.read_text().splitlines()]
    by_trial = {}
    for r in reports:
        by_trial.setdefault(r["trial"], []).append(r)
    assert len(by_trial) == 2
    for trial_reports in by_trial.values():
        assert [r["epochs_done"] for r in trial_reports] == [1, 2]
        assert all(r["metric"] is not None and 0 <= r["metric"] <= 1 for r in trial_reports), reports

    rows = read_csv(experiment / "trials.csv")
    assert len(rows) == 2 and {r["learning_rate"] for r in rows} == {"0.0001", "0.005"}
    assert [(r["status"], r["epochs_run"], r["retries"]) for r in rows] == [("TERMINATED", "2", "0")] * 2
    scores = {r["trial"]: float(r["best_valid_ndcg@10"]) for r in rows}
    assert len(set(scores.values())) == 2
    best = summary["best"]
    assert best["trial"] == max(scores, key=scores.get)
    assert best["best_valid_ndcg@10"] == pytest.approx(max(scores.values()))
    assert rows[0]["trial"] == best["trial"]  # the table is sorted best first
    # the kept checkpoint is that trial's best epoch: re-evaluated, it gives the reported validation score
    assert best["valid_result"]["ndcg@10"] == pytest.approx(best["best_valid_ndcg@10"], abs=1e-4)
    assert set(best["test_result"]) >= {"ndcg@10", "recall@10"} and 0 < best["test_result"]["ndcg@10"] < 1
    saved = json.loads((experiment / "best.json").read_text())
    assert saved["best"]["config"]["learning_rate"] == best["config"]["learning_rate"]
    assert saved["epochs_run"] == 4 and saved["epochs_budgeted"] == 4
    markdown = (experiment / "trials.md").read_text()
    assert all(f"| {trial} | TERMINATED |" in markdown for trial in scores)
    for png in ("learning_curves.png", "metric_vs_hyperparameters.png"):
        assert (experiment / png).stat().st_size > 5000


def flaky_trial(params: dict, spec: dict) -> None:
    """Crashes on its first attempt (``crash: once``) or on every attempt (``crash: always``)."""
    params = dict(params)
    crash = params.pop("crash")
    marker = Path(params.pop("crash_marker")) / f"crashed-{crash}"
    if crash == "always" or not marker.exists():
        marker.touch()
        raise RuntimeError(f"injected crash ({crash})")
    train_trial(params, spec)


def test_crashing_trial_is_retried_and_a_failed_one_is_reported(ray_session, tmp_path):
    from ray import cloudpickle

    from recbole_text.tune import tune

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test module
    write_tiny_dataset(tmp_path / "data")
    summary = tune("SeqSASRec", "tiny", {"crash": {"grid": ["once", "always"]}, "crash_marker": str(tmp_path)},
                   config_dict={**FAST, "data_path": str(tmp_path / "data"), "epochs": 1},
                   experiment_dir=tmp_path / "ray_results", verbose=0, max_failures=1, trainable=flaky_trial)
    rows = {r["crash"]: r for r in read_csv(Path(summary["experiment"]) / "trials.csv")}
    once, always = rows["once"], rows["always"]
    assert once["status"] == "TERMINATED" and once["retries"] == "1" and once["epochs_run"] == "1"
    assert "injected crash (once)" in once["error"]  # the crash that was retried is still reported
    assert always["status"] == "ERROR" and always["stopped_by"] == "error" and always["retries"] == "1"
    assert "RuntimeError: injected crash (always)" in always["error"]
    assert summary["statuses"] == {"ERROR": 1, "TERMINATED": 1}
    assert summary["best"]["config"]["crash"] == "once"
    assert "| ERROR | error | 1 |" in (Path(summary["experiment"]) / "trials.md").read_text()


def make_interrupter(marker: Path, at_epoch: int):
    """A Tune callback that interrupts the sweep (SIGINT, as Ctrl-C does) once, when the first trial's
    checkpoint of ``at_epoch`` is registered, and writes that trial's id to ``marker``.

    Tune logs a result before it registers the result's checkpoint, so interrupting on the result itself
    would race: another trial could have logged an epoch whose checkpoint Tune never recorded."""
    from ray.tune import Callback

    class Interrupt(Callback):
        def on_trial_save(self, iteration, trials, trial, **info):
            if trial.last_result.get("epochs_done") == at_epoch and not marker.exists():
                marker.write_text(trial.trial_id)
                os.kill(os.getpid(), signal.SIGINT)

    return Interrupt()


def test_interrupted_sweep_resumes_from_its_checkpoints(ray_session, tmp_path):
    from recbole_text.tune import tune

    write_tiny_dataset(tmp_path / "data")
    common = dict(experiment_dir=tmp_path / "ray_results", verbose=0)
    first = tune("SeqSASRec", "tiny", {"learning_rate": {"grid": [0.001, 0.01]}},
                 config_dict={**FAST, "data_path": str(tmp_path / "data"), "epochs": 4}, scheduler="fifo",
                 callbacks=[make_interrupter(tmp_path / "interrupted", at_epoch=2)], **common)
    checkpointed = (tmp_path / "interrupted").read_text()  # the trial whose epoch-2 checkpoint Tune recorded
    status_of = {r["trial"]: r["status"] for r in first["rows"]}
    assert status_of[checkpointed] == "INCOMPLETE"

    resumed = tune("SeqSASRec", "tiny", resume=True, **common)
    assert resumed["statuses"] == {"TERMINATED": 2}
    assert all(r["epochs_run"] == 4 and r["stopped_by"] == "epochs" for r in resumed["rows"])
    history = resumed["histories"][checkpointed]  # continued from its epoch-2 checkpoint, not from scratch
    assert history[0]["start_epoch"] == 0 and history[-1]["epochs_done"] == 4
    assert history[-1]["start_epoch"] >= 2  # Tune may record one more checkpoint before it stops
    spec = json.loads((Path(resumed["experiment"]) / "sweep.json").read_text())
    assert [s["resumed"] for s in spec["sessions"]] == [False, True]
