"""recommend(): top-k items after a history from a trained checkpoint, the Recommender class and its CLI.

Each model is trained once (1 epoch on the tiny data) for the whole module; the expected rankings are computed
independently: the model rebuilt from the *training* settings, the checkpoint's weights loaded with
``torch.load``, ``full_sort_predict`` called on a hand-made RecBole row."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_text
import recbole_text.recommend as recommend_module
from recbole_text.compat import CheckpointError
from recbole_text.data.atomic import read_item_text
from recbole_text.data.text_dataset import DatasetNotFoundError
from recbole_text.recommend import (RecommendError, Recommender, UnknownItemError, format_table, main,
                                    parse_history, recommend)

from conftest import FAST, REPO, write_tiny_dataset

N_ITEMS = 60  # write_tiny_dataset's catalogue
MAX_LEN = FAST["MAX_ITEM_LIST_LENGTH"]
MODEL_SETTINGS = {"gSASRec": {"num_negatives": 8}, "SeqSASRec": {}, "SeqGRU4Rec": {}, "SASRec": {}, "GRU4Rec": {},
                  "BERT4Rec": {}}
LONG_HISTORY = [f"i{n}" for n in range(5, 5 + MAX_LEN + 3)]  # 13 items: longer than MAX_ITEM_LIST_LENGTH


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recommend")
    write_tiny_dataset(root / "data")
    return root


def training_settings(workspace: Path, model: str) -> dict:
    return {**FAST, "data_path": str(workspace / "data"), "checkpoint_dir": str(workspace / "saved"),
            **MODEL_SETTINGS[model]}


@pytest.fixture(scope="module")
def checkpoint(workspace):
    """``checkpoint(model)`` → its checkpoint file, trained on first use (RecBole logs under the cwd: tmp)."""
    done: dict[str, str] = {}

    def get(model: str) -> str:
        if model not in done:
            with pytest.MonkeyPatch.context() as mp:
                mp.chdir(workspace)
                result = recbole_text.run(model, "tiny", config_dict=training_settings(workspace, model))
            done[model] = result["checkpoint"]
        return done[model]

    return get


@pytest.fixture(scope="module")
def recommender(checkpoint):
    built: dict[str, Recommender] = {}

    def get(model: str) -> Recommender:
        if model not in built:
            built[model] = Recommender.from_checkpoint(checkpoint(model))
        return built[model]

    return get


def direct_top_k(workspace, model_name: str, path: str, history: list[str], k: int, exclude_seen: bool = True):
    """The expected answer, without recommend.py: ``full_sort_predict`` of the model rebuilt from the training
    settings, padding and (optionally) the history's items removed, ``topk``."""
    from recbole.data.interaction import Interaction

    from recbole_text.job import build_job

    job = build_job(model_name, "tiny", config_dict=training_settings(workspace, model_name), loaders=False,
                    with_trainer=False, log=False)
    model = job.model
    model.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
    model.eval()
    tokens = list(job.dataset.field2id_token["item_id"])
    ids = [tokens.index(t) for t in history]
    recent = ids[-MAX_LEN:]
    seq = torch.zeros(1, MAX_LEN, dtype=torch.long)
    seq[0, :len(recent)] = torch.tensor(recent)
    row = Interaction({"item_id_list": seq, "item_length": torch.tensor([len(recent)])})
    with torch.no_grad():
        scores = model.full_sort_predict(row).reshape(1, -1)[0]
    scores[0] = float("-inf")
    if exclude_seen:
        scores[ids] = float("-inf")
    values, items = scores.topk(k)
    return [tokens[i] for i in items.tolist()], values.tolist()


@pytest.mark.parametrize("model", list(MODEL_SETTINGS))
def test_top_k_is_full_sort_predict_of_the_trained_model(model, workspace, checkpoint, recommender):
    """This package's model and RecBole's built-ins (BERT4Rec appends its mask token itself): same items,
    same order, same scores as calling full_sort_predict directly; a long history keeps its recent items."""
    rec = recommender(model)
    got = rec.recommend(LONG_HISTORY, k=10)
    items, scores = direct_top_k(workspace, model, checkpoint(model), LONG_HISTORY, 10)
    assert [r["item"] for r in got] == items
    assert [r["score"] for r in got] == pytest.approx(scores, abs=1e-5)
    assert [r["rank"] for r in got] == list(range(1, 11))
    # only the MAX_ITEM_LIST_LENGTH most recent items reach the model
    whole = rec.recommend(LONG_HISTORY, k=N_ITEMS, exclude_seen=False)
    recent = rec.recommend(LONG_HISTORY[-MAX_LEN:], k=N_ITEMS, exclude_seen=False)
    assert [(r["item"], r["score"]) for r in whole] == [(r["item"], r["score"]) for r in recent]


def test_history_row_is_recbole_evaluation_row(workspace, recommender):
    """A test-split row of RecBole's own loader, fed to the model as RecBole's evaluation does, scores every
    item as recommend() does on the same history given as tokens."""
    from recbole_text.job import build_job

    rec = recommender("SASRec")
    job = build_job("SASRec", "tiny", config_dict=training_settings(workspace, "SASRec"), with_trainer=False,
                    log=False)
    job.model.load_state_dict(rec.model.state_dict())
    job.model.eval()
    batch = next(iter(job.test_data))[0]
    with torch.no_grad():
        expected = job.model.full_sort_predict(batch).reshape(len(batch), -1)
    tokens = job.dataset.field2id_token["item_id"]
    for row in (0, 7):
        length = int(batch["item_length"][row])
        history = [str(tokens[i]) for i in batch["item_id_list"][row, :length].tolist()]
        got = rec.recommend(history, k=N_ITEMS, exclude_seen=False)
        assert {r["item"]: r["score"] for r in got} == pytest.approx(
            {str(tokens[i]): float(expected[row, i]) for i in range(1, N_ITEMS + 1)}, abs=1e-5)


def test_seen_items_excluded_by_default_padding_never(recommender):
    rec = recommender("gSASRec")
    history = ["i3", "i4", "i5", "i4"]
    default = rec.recommend(history, k=N_ITEMS)
    assert len(default) == N_ITEMS - 3 and not {"i3", "i4", "i5"} & {r["item"] for r in default}
    kept = rec.recommend(history, k=1000, exclude_seen=False)  # k beyond the catalogue: all items
    assert sorted(r["item"] for r in kept) == sorted(f"i{n}" for n in range(1, N_ITEMS + 1))
    assert "[PAD]" not in {r["item"] for r in kept}
    assert all(a["score"] >= b["score"] for a, b in zip(kept, kept[1:]))
    # seen items only leave the ranking; the others keep their scores
    kept_scores = {r["item"]: r["score"] for r in kept}
    assert all(kept_scores[r["item"]] == r["score"] for r in default)
    assert len(rec.recommend(history, k=1)) == 1


def test_attributes_are_the_itemtext(workspace, recommender):
    rec = recommender("gSASRec")
    _, expected = read_item_text(workspace / "data" / "tiny" / "tiny.itemtext", "item_id")
    everything = rec.recommend(["i10"], k=N_ITEMS, exclude_seen=False)
    for r in everything:
        assert r["attributes"] == expected.get(r["item"], {})
    by_item = {r["item"]: r["attributes"] for r in everything}
    assert by_item["i1"] == {}  # no text
    assert by_item["i2"] == {"title": 'Tab\there, "quoted"\nsecond line', "brand": "Brand 2"}
    assert by_item["i7"] == {"title": "Item number 7", "brand": "Brand 1"}
    assert rec.attribute_keys == ["title", "brand"]
    json.dumps(everything)  # plain data


def test_recommend_many_batches_the_same_answers(recommender):
    rec = recommender("SASRec")
    histories = [["i1"], ["i2", "i3"], LONG_HISTORY, "i9 i10,i11"]
    batched = rec.recommend_many(histories, k=5, batch_size=3)  # two chunks
    assert len(batched) == 4
    for history, answer in zip(histories, batched):
        single = rec.recommend(history, k=5)
        assert [r["item"] for r in answer] == [r["item"] for r in single]
        assert [r["score"] for r in answer] == pytest.approx([r["score"] for r in single], abs=1e-5)
    assert parse_history("i9 i10,i11") == ["i9", "i10", "i11"]


def test_function_and_package_entry_point(workspace, checkpoint, recommender):
    path = checkpoint("gSASRec")
    expected = recommender("gSASRec").recommend(["i4", "i5"], k=3)
    assert recommend(path, history=["i4", "i5"], k=3) == expected
    # the module was imported above, so recbole_text.recommend is the module here: calling it still works
    assert recbole_text.recommend(path, history=["i4", "i5"], k=3) == expected
    assert recommend_module.recommend(recommender("gSASRec"), ["i4", "i5"], k=3) == expected
    # rebuilding seeds the generators as training does, then gives the caller's back
    torch.manual_seed(5)
    first = torch.rand(3)
    torch.manual_seed(5)
    Recommender.from_checkpoint(path)
    assert torch.equal(torch.rand(3), first)


def test_moved_dataset_with_data_path(workspace, checkpoint, recommender, tmp_path):
    path = checkpoint("gSASRec")
    expected = recommender("gSASRec").recommend(["i4", "i5"], k=3)
    moved = tmp_path / "elsewhere"
    shutil.copytree(workspace / "data" / "tiny", moved / "tiny")
    assert Recommender.from_checkpoint(path, data_path=moved, device="cpu").recommend(["i4", "i5"], k=3) == expected
    assert recommend(path, ["i4", "i5"], k=3, data_path=moved / "tiny") == expected  # the dataset folder too
    with pytest.raises(DatasetNotFoundError, match=f"{path}.*tiny"):
        Recommender.from_checkpoint(path, data_path=tmp_path / "nowhere")
    # a catalogue that changed since training: the item tables no longer fit
    write_tiny_dataset(tmp_path / "grown", items=N_ITEMS + 1)
    with pytest.raises(CheckpointError, match="weights do not fit") as error:
        Recommender.from_checkpoint(path, data_path=tmp_path / "grown")
    assert path in str(error.value) and "item_embedding" in str(error.value)


def test_bad_histories_and_k(recommender):
    rec = recommender("gSASRec")
    with pytest.raises(UnknownItemError, match=r"'nope', 'zz'.*'tiny'") as error:
        rec.recommend(["i1", "nope", "i2", "zz"])
    assert error.value.tokens == ["nope", "zz"] and "i1'" not in str(error.value).split(":")[0]
    many = [f"x{n}" for n in range(15)]
    with pytest.raises(UnknownItemError, match=r"'x9' \(and 5 more\)") as error:
        rec.recommend(many)
    assert "'x10'" not in str(error.value) and error.value.tokens == many
    with pytest.raises(UnknownItemError, match="'zz'"):  # every history is checked before any is scored
        rec.recommend_many([["i1"], ["zz"]])
    for empty in ([], "", " , "):
        with pytest.raises(RecommendError, match="empty history"):
            rec.recommend(empty)
    with pytest.raises(RecommendError, match="history 1 is empty"):
        rec.recommend_many([["i1"], []])
    for k in (0, -3):
        with pytest.raises(RecommendError, match="k must be at least 1"):
            rec.recommend(["i1"], k=k)
    for k in ("3", 2.5, None, True):
        with pytest.raises(RecommendError, match="k must be a whole number"):
            rec.recommend(["i1"], k=k)
    assert len(rec.recommend(["i1"], k=np.int64(3))) == len(rec.recommend(["i1"], k=3.0)) == 3


def test_model_that_needs_a_user_id_is_refused(recommender, monkeypatch):
    rec = recommender("SASRec")
    monkeypatch.setattr(rec.model, "full_sort_predict", lambda interaction: interaction["user_id"])
    with pytest.raises(RecommendError, match="reads the field 'user_id'"):
        rec.recommend(["i1"])


def test_files_that_are_not_usable_checkpoints(checkpoint, tmp_path):
    plain_dict = tmp_path / "plain.pth"
    torch.save({"state_dict": {}, "epoch": 3}, plain_dict)
    with pytest.raises(CheckpointError, match=f"{plain_dict}: not a recbole_text checkpoint"):
        recommend(plain_dict, ["i1"])
    noise = tmp_path / "noise.pth"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=f"{noise}: not a recbole_text checkpoint"):
        recommend(noise, ["i1"])
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        recommend(tmp_path / "missing.pth", ["i1"])
    old = torch.load(checkpoint("gSASRec"), weights_only=True)
    del old["settings"]
    older = tmp_path / "older.pth"
    torch.save(old, older)
    with pytest.raises(CheckpointError, match=f"{older}: this checkpoint records no 'settings'"):
        recommend(older, ["i1"])
    general = {**old, "settings": {}, "dataset": "tiny", "model": "BPR"}
    torch.save(general, tmp_path / "bpr.pth")
    with pytest.raises(RecommendError, match="BPR is a general model"):
        recommend(tmp_path / "bpr.pth", ["i1"])


def test_cli_table_json_and_errors(checkpoint, recommender, capsys, monkeypatch):
    path = checkpoint("gSASRec")
    monkeypatch.setenv("COLUMNS", "44")
    assert main(["--checkpoint", path, "--history", "i2 i3", "i4", "--k", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "top 4 of 60 items" in lines[0] and "seen items excluded" in lines[0]
    assert lines[1].split() == ["rank", "item", "score", "title", "brand"]
    expected = recommender("gSASRec").recommend(["i2", "i3", "i4"], k=4)
    assert [line.split()[1] for line in lines[2:]] == [r["item"] for r in expected]
    assert all(len(line) <= 44 for line in lines[1:])
    assert main(["--checkpoint", path, "--history", "i2,i3,i4", "--k", "4", "--include_seen", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == recommender("gSASRec").recommend(["i2", "i3", "i4"], k=4, exclude_seen=False)
    assert main(["--checkpoint", path, "--history", "i2 nope", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: unknown item token 'nope'")
    assert main(["--checkpoint", path, "--history", "i2", "--k", "0"]) == 2
    assert capsys.readouterr().err == "error: k must be at least 1, got 0\n"


def test_cli_as_a_module(checkpoint):
    proc = subprocess.run([sys.executable, "-m", "recbole_text.recommend", "--checkpoint", checkpoint("SASRec"),
                           "--history", "i5 i6 i7", "--k", "3", "--json"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert [r["rank"] for r in answer] == [1, 2, 3]
    assert set(answer[0]) == {"rank", "item", "score", "attributes"}
    assert not {"i5", "i6", "i7"} & {r["item"] for r in answer}


def test_table_fits_the_width():
    recs = [{"rank": 1, "item": "i2", "score": 1.5, "attributes": {"title": 'Tab\there, "quoted"\nsecond line',
                                                                    "brand": "Brand 2"}},
            {"rank": 2, "item": "i10", "score": -0.25, "attributes": {"title": "A very long title " * 8}},
            {"rank": 3, "item": "i1", "score": -1.0, "attributes": {}}]
    table = format_table(recs, ["title", "brand"], width=60).splitlines()
    assert len(table) == 4 and all(len(line) <= 60 for line in table)
    assert table[0].split() == ["rank", "item", "score", "title", "brand"]
    assert "Tab here, \"quoted\" second line" in table[1] and "Brand 2" in table[1]  # whitespace collapsed
    assert "…" in table[2] and table[3].split() == ["3", "i1", "-1.0000"]
    wide = format_table(recs, ["title", "brand"], width=400).splitlines()
    assert ("A very long title " * 8).strip() in wide[2]
    assert format_table(recs[2:], []).splitlines()[0].split() == ["rank", "item", "score"]
