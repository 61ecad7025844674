"""Tests of the Recformer json converter on small json files, through RecBole's splits (leave-one-out on the
chronological file, and the pre-split files Recformer's split is written to), and on the real data."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from recbole_text.config import TextConfig
from recbole_text.data.atomic import AtomicFileError, iter_rows, read_item_text
from recbole_text.data.converters import convert_recformer, converter_command
from recbole_text.data.converters import common as converters_common
from recbole_text.data.converters.__main__ import main
from recbole_text.job import build_job

from conftest import FAST

RECFORMER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Scientific-Recformer"

# user index -> the full sequence of item indices; Recformer's split: train = seq[:-2], val = [seq[-2]],
# test = [seq[-1]], or train = seq for fewer than 3 items.
FULL = {
    0: [0, 1, 2, 3, 4],
    1: [5, 5, 6, 1],  # a repeat
    2: [2, 3, 7],  # 3 items: RecBole keeps no validation row
    3: [8, 9],  # 2 items: all in train.json
    4: [10],  # 1 item: all in train.json
    5: [11, 0, 1, 2, 3, 4, 5],
}
ITEMS = [f"B{i:03d}" for i in range(13)]  # item 12 is in smap.json but in no sequence
REVIEWERS = {u: f"R{u}X" for u in FULL}


def recformer_json() -> dict[str, dict]:
    """The six Recformer objects for ``FULL`` (dict keys deliberately not in index order)."""
    train, val, test = {}, {}, {}
    for user in sorted(FULL, reverse=True):
        seq = FULL[user]
        if len(seq) < 3:
            train[str(user)] = seq
        else:
            train[str(user)], val[str(user)], test[str(user)] = seq[:-2], [seq[-2]], [seq[-1]]
    meta = {asin: {"title": f"Title {i}", "brand": f"Brand {i % 2}", "category": f"Root Cat{i % 3}"}
            for i, asin in enumerate(ITEMS)}
    meta["B001"] = {"title": 'Tab\there "quoted"\nnext', "brand": "", "category": "Root"}
    meta["B002"] = {"title": "Only a title", "brand": "", "category": "", "price": "$1"}  # price: ignored
    meta["B011"] = {"title": "", "brand": "", "category": ""}  # no text at all: allowed
    meta["ZZZ"] = {"title": "not in smap: ignored"}
    return {
        "smap.json": {asin: i for i, asin in reversed(list(enumerate(ITEMS)))},
        "umap.json": {REVIEWERS[u]: u for u in sorted(FULL, reverse=True)},
        "train.json": train, "val.json": val, "test.json": test, "meta_data.json": meta,
    }


def write_recformer(folder: Path, objects: dict[str, dict] | None = None) -> Path:
    folder.mkdir(parents=True)
    for file, data in (objects or recformer_json()).items():
        (folder / file).write_text(json.dumps(data, indent=1), encoding="utf-8")
    return folder


PRESPLIT = {"benchmark_filename": ["train", "valid", "test"]}


def read_inter_rows(folder: Path, part: str = "") -> list[list[str]]:
    """The rows of ``<name>.inter`` (``part`` = "") or ``<name>.<part>.inter``, without the header."""
    return [cells for _, cells in iter_rows(folder / f"{folder.name}{'.' + part if part else ''}.inter")][1:]


def recformer_rows(objects: dict[str, dict], token, reviewer, max_history: int = 50
                   ) -> dict[str, dict[str, list[tuple[list[str], str]]]]:
    """Recformer's split from its json objects, the way ``split_rows`` returns RecBole's:
    part -> raw user -> [(history tokens, target token)]; histories cut to the ``max_history`` most recent."""
    rows = {"train": defaultdict(list), "valid": {}, "test": {}}
    for key, items in objects["train.json"].items():
        seq = [token[i] for i in items]
        for k in range(1, len(seq)):
            rows["train"][reviewer[key]].append((seq[max(0, k - max_history):k], seq[k]))
        if key in objects["val.json"]:
            valid_item, test_item = token[objects["val.json"][key][0]], token[objects["test.json"][key][0]]
            rows["valid"][reviewer[key]] = [(seq[-max_history:], valid_item)]
            rows["test"][reviewer[key]] = [((seq + [valid_item])[-max_history:], test_item)]
    return {part: dict(users) for part, users in rows.items()}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def split_rows(job, part: str) -> dict[str, list[tuple[list[str], str]]]:
    """RecBole's rows of one split: raw user → [(history items, target item)] in row order."""
    data = getattr(job, part)._dataset
    feat = data.inter_feat
    users, items = data.field2id_token["user_id"], data.field2id_token["item_id"]
    rows = defaultdict(list)
    for user, history, length, target in zip(feat["user_id"].tolist(), feat["item_id_list"].tolist(),
                                             feat["item_length"].tolist(), feat["item_id"].tolist()):
        rows[users[user]].append((list(items[history[:length]]), items[target]))
    return dict(rows)


# ---------------------------------------------------------------- conversion

def test_writes_full_sequences_and_text(tmp_path):
    src = write_recformer(tmp_path / "Tiny-Recformer")
    folder = convert_recformer(src, tmp_path / "out")
    assert folder == tmp_path / "out" / "Tiny-Recformer"
    assert next(iter_rows(folder / "Tiny-Recformer.inter"))[1] == ["user_id:token", "item_id:token", "timestamp:float"]
    assert read_inter_rows(folder) == [
        [REVIEWERS[u], ITEMS[i], str(position)] for u in sorted(FULL) for position, i in enumerate(FULL[u])
    ]
    keys, items = read_item_text(folder / "Tiny-Recformer.itemtext")
    assert keys == ["title", "brand", "category"]
    assert list(items) == ITEMS  # every smap item, in index order
    assert items["B000"] == {"title": "Title 0", "brand": "Brand 0", "category": "Root Cat0"}
    assert items["B001"] == {"title": 'Tab\there "quoted"\nnext', "category": "Root"}
    assert items["B002"] == {"title": "Only a title"}
    assert items["B011"] == {}
    # Recformer's split, one row per prediction, users in index order, a user's training prefixes in order
    assert next(iter_rows(folder / "Tiny-Recformer.train.inter"))[1] == [
        "user_id:token", "item_id_list:token_seq", "item_id:token"]
    objects = recformer_json()
    expected = recformer_rows(objects, ITEMS, {str(u): r for u, r in REVIEWERS.items()})
    for part in ("train", "valid", "test"):
        assert read_inter_rows(folder, part) == [
            [user, " ".join(history), target]
            for user in (REVIEWERS[u] for u in sorted(FULL)) for history, target in expected[part].get(user, [])
        ]
    assert read_inter_rows(folder, "train")[:2] == [["R0X", "B000", "B001"], ["R0X", "B000 B001", "B002"]]
    assert read_inter_rows(folder, "valid")[0] == ["R0X", "B000 B001 B002", "B003"]
    assert read_inter_rows(folder, "test")[0] == ["R0X", "B000 B001 B002 B003", "B004"]
    assert "R2X" not in {r[0] for r in read_inter_rows(folder, "train")}  # 3 items: train.json [a], no prefix row
    assert ["R2X", "B002", "B003"] in read_inter_rows(folder, "valid")


def test_presplit_histories_keep_the_50_most_recent_items(tmp_path):
    objects = recformer_json()
    long = [k % 12 for k in range(57)]  # 57 items (repeats allowed): 55 in train.json
    objects["train.json"]["5"], objects["val.json"]["5"], objects["test.json"]["5"] = long[:-2], long[-2:-1], long[-1:]
    folder = convert_recformer(write_recformer(tmp_path / "Long", objects), tmp_path / "out")
    rows = {part: [r for r in read_inter_rows(folder, part) if r[0] == "R5X"] for part in ("train", "valid", "test")}
    tokens = [ITEMS[i] for i in long]
    assert [row[1].split(" ") for row in rows["train"]] == [tokens[max(0, k - 50):k] for k in range(1, 55)]
    assert [row[2] for row in rows["train"]] == tokens[1:55]
    assert rows["valid"] == [["R5X", " ".join(tokens[5:55]), tokens[55]]]
    assert rows["test"] == [["R5X", " ".join(tokens[6:56]), tokens[56]]]
    assert len(read_inter_rows(folder)) == 22 - 7 + 57  # the chronological file keeps the whole sequence


def test_recbole_leave_one_out_rebuilds_the_split(tmp_path, in_tmp_cwd, capsys):
    src = write_recformer(tmp_path / "Tiny-Recformer")
    convert_recformer(src, tmp_path / "data")
    assert "1 item(s) of smap.json occur in no sequence" in capsys.readouterr().out  # item 12
    job = build_job("SASRec", "Tiny-Recformer", config_dict={**FAST, "data_path": str(tmp_path / "data")},
                    with_trainer=False, log=False)
    assert job.dataset.user_num - 1 == len(FULL) and job.dataset.item_num - 1 == 12  # nothing filtered
    train, valid, test = (split_rows(job, part) for part in ("train_data", "valid_data", "test_data"))
    assert sum(map(len, [*train.values(), *valid.values(), *test.values()])) == sum(len(s) - 1 for s in FULL.values())
    objects = recformer_json()
    tokens = lambda indices: [ITEMS[i] for i in indices]  # noqa: E731
    for user, seq in FULL.items():
        raw, key = REVIEWERS[user], str(user)
        recformer_train = tokens(objects["train.json"][key])
        prefixes = [(recformer_train[:k], recformer_train[k]) for k in range(1, len(recformer_train))]
        if len(seq) >= 4:  # exactly Recformer's split
            assert train[raw] == prefixes
            assert valid[raw] == [(recformer_train, tokens(objects["val.json"][key])[0])]
        if len(seq) >= 3:
            history = recformer_train + tokens(objects["val.json"][key])
            assert test[raw] == [(history, tokens(objects["test.json"][key])[0])]
    # 3 items [a, b, c]: [a] -> b is trained on, no validation row, test [a, b] -> c
    assert train[REVIEWERS[2]] == [(["B002"], "B003")] and REVIEWERS[2] not in valid
    # 2 items: one training row; 1 item: no row anywhere, but the user and the item are known
    assert train[REVIEWERS[3]] == [(["B008"], "B009")] and REVIEWERS[3] not in valid and REVIEWERS[3] not in test
    assert all(REVIEWERS[4] not in rows for rows in (train, valid, test))
    assert REVIEWERS[4] in job.dataset.field2token_id["user_id"] and "B010" in job.dataset.field2token_id["item_id"]


def test_presplit_files_are_exactly_recformers_split(tmp_path, in_tmp_cwd, capsys):
    src = write_recformer(tmp_path / "Tiny-Recformer")
    convert_recformer(src, tmp_path / "data")
    out = capsys.readouterr().out
    assert "Recformer's split in Tiny-Recformer.{train,valid,test}.inter: 8 train / 4 valid / 4 test rows" in out
    # B010 is user 4's only interaction: in the chronological file, in no pre-split row
    assert "1 item(s) occur only in sequences of one interaction, e.g. 'B010'" in out
    job = build_job("SASRec", "Tiny-Recformer", config_dict={**FAST, **PRESPLIT, "data_path": str(tmp_path / "data")},
                    with_trainer=False, log=False)
    rows = {part: split_rows(job, f"{part}_data") for part in ("train", "valid", "test")}
    assert rows == recformer_rows(recformer_json(), ITEMS, {str(u): r for u, r in REVIEWERS.items()})
    assert rows["valid"][REVIEWERS[2]] == [(["B002"], "B003")] and REVIEWERS[2] not in rows["train"]  # 3 items
    # the vocabularies: every user and item of a row (history items included); user 4 and B010 are in none
    users, items = job.dataset.field2token_id["user_id"], job.dataset.field2token_id["item_id"]
    assert set(users) == {"[PAD]"} | {REVIEWERS[u] for u in FULL if u != 4}
    assert set(items) == {"[PAD]"} | {ITEMS[i] for seq in FULL.values() for i in seq} - {"B010"}
    assert "B011" in items and not any(target == "B011" for part in rows.values() for user in part.values()
                                       for _, target in user)  # user 5's first item: only ever in histories
    assert job.dataset.item_attributes[items["B000"]] == {"title": "Title 0", "brand": "Brand 0",
                                                          "category": "Root Cat0"}  # the item text is read too


@pytest.mark.parametrize("strategy", ["sequence", "rss"])
def test_presplit_files_train_with_sequence_strategies(strategy, tmp_path, in_tmp_cwd):
    """``sequence`` / ``rss`` rebuild each user's ``train.json`` sequence from the pre-split training rows
    (``full_histories``), then train and evaluate."""
    convert_recformer(write_recformer(tmp_path / "Tiny-Recformer"), tmp_path / "data")
    settings = {**FAST, **PRESPLIT, "data_path": str(tmp_path / "data"), "train_strategy": strategy,
                "loss_type": "CE", "topk": [10]}  # 11 items: no top 50
    job = build_job("SeqSASRec", "Tiny-Recformer", config_dict=settings, log=False)
    loader, dataset = job.train_data, job.dataset
    assert not hasattr(loader.dataset, "flat_sequences")  # rebuilt from the rows, not the interaction table
    if strategy == "sequence":  # one window per user: every sequence is shorter than MAX_ITEM_LIST_LENGTH + 1
        sequences = [seq[:n] for seq, n in zip(loader.sequences.tolist(), loader.lengths.tolist())]
    else:
        sequences = [loader.flat[b:b + n].tolist() for b, n in zip(loader.begin.tolist(), loader.lengths.tolist())]
    found = {dataset.id2token("user_id", u): list(dataset.id2token("item_id", s))
             for u, s in zip(loader.users.tolist(), sequences)}
    objects = recformer_json()
    assert found == {REVIEWERS[int(key)]: [ITEMS[i] for i in items]
                     for key, items in objects["train.json"].items() if len(items) >= 2}
    job.trainer.fit(job.train_data, job.valid_data, saved=False)
    result = job.trainer.evaluate(job.test_data, load_best_model=False)
    assert 0.0 <= result["recall@10"] <= 1.0


def test_scientific_recformer_yaml_selects_the_presplit_files():
    config = TextConfig("SASRec", "Scientific-Recformer")
    assert config["benchmark_filename"] == ["train", "valid", "test"] and config["MAX_ITEM_LIST_LENGTH"] == 50
    assert "item_id_list" in config["load_col"]["inter"] and "item_id_list" in config["alias_of_item_id"]
    back = TextConfig("SASRec", "Scientific-Recformer", config_dict={"benchmark_filename": None})  # --...=~
    assert back["benchmark_filename"] is None and "item_id_list" not in back["load_col"]["inter"]
    assert TextConfig("SASRec", "Other-Recformer")["benchmark_filename"] is None  # another name: leave-one-out


# ---------------------------------------------------------------- bad input

def drop(objects, file, key):
    del objects[file][key]


BAD = {  # case -> (edit of the objects, file named in the error, message pattern)
    "train item not in smap": (lambda o: o["train.json"]["0"].append(99), "train.json", "user 0: item index 99 is not"),
    "val item not in smap": (lambda o: o["val.json"].update({"1": [42]}), "val.json", "user 1: item index 42 is not"),
    "test item not in smap": (lambda o: o["test.json"].update({"5": [-1]}), "test.json", "user 5: item index -1"),
    "val user not in train": (lambda o: o["val.json"].update({"9": [1]}), "val.json", "index '9' is not in train"),
    "test user not in train": (lambda o: o["test.json"].update({"8": [1]}), "test.json", "index '8' is not in train"),
    "train user not in umap": (lambda o: o["train.json"].update({"77": [1]}), "train.json", "'77' is not in umap"),
    "val with two items": (lambda o: o["val.json"]["0"].append(1), "val.json", "user 0: expected a list of exactly"),
    "test with no item": (lambda o: o["test.json"].update({"0": []}), "test.json", "exactly one item index, found"),
    "item not an integer": (lambda o: o["train.json"]["5"].insert(2, "3"), "train.json", "user 5: item '3' is not"),
    "val without test": (lambda o: drop(o, "test.json", "1"), "val.json", "user 1 has no entry in test.json"),
    "long user without val/test": (lambda o: (drop(o, "val.json", "0"), drop(o, "test.json", "0")), "train.json",
                                   "user 0 has 3 items but no val.json/test.json"),
    "ASIN without metadata": (lambda o: drop(o, "meta_data.json", "B007"), "meta_data.json",
                              "1 ASIN\\(s\\) of smap.json have no entry, e.g. 'B007'"),
    "smap index repeated": (lambda o: o["smap.json"].update({"B003": 4}), "smap.json", "index 4 is given to more"),
    "smap index not an integer": (lambda o: o["smap.json"].update({"B003": "3"}), "smap.json", "expected an integer"),
    "attribute not a string": (lambda o: o["meta_data.json"]["B004"].update({"brand": ["x"]}), "meta_data.json",
                               "'B004': 'brand' is not a string"),
    "not an object": (lambda o: o.update({"umap.json": list(o["umap.json"])}), "umap.json", "expected a JSON object"),
    "ASIN with a space": (lambda o: o["smap.json"].update({"B 003": o["smap.json"].pop("B003")}), "smap.json",
                          "'B 003' cannot be a token \\(empty, or holds TAB/newline/space\\)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_file_and_writes_nothing(case, tmp_path):
    edit, file, message = BAD[case]
    objects = recformer_json()
    edit(objects)
    src = write_recformer(tmp_path / "Tiny", objects)
    with pytest.raises(AtomicFileError, match=message) as info:
        convert_recformer(src, tmp_path / "out")
    assert str(info.value).startswith(f"{src / file}: ")
    assert leftovers(tmp_path / "out") == []


def test_malformed_json_names_file_and_line(tmp_path):
    src = write_recformer(tmp_path / "Tiny")
    text = (src / "train.json").read_text(encoding="utf-8").split("\n")
    text[3] = text[3].rstrip(",") + " oops,"  # line 4
    (src / "train.json").write_text("\n".join(text), encoding="utf-8")
    with pytest.raises(AtomicFileError, match="malformed JSON") as info:
        convert_recformer(src, tmp_path / "out")
    assert str(info.value).startswith(f"{src / 'train.json'}:4: ")


def test_repeated_key_is_an_error(tmp_path):
    src = write_recformer(tmp_path / "Tiny")
    (src / "val.json").write_text('{"0": [3],\n "1": [6],\n "0": [4]}', encoding="utf-8")
    with pytest.raises(AtomicFileError, match=r"val\.json: key '0' appears twice"):
        convert_recformer(src, tmp_path / "out")


@pytest.mark.parametrize("missing", ["smap.json", "meta_data.json"])
def test_missing_file(missing, tmp_path):
    src = write_recformer(tmp_path / "Tiny")
    (src / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"missing Recformer file: {src / missing}"):
        convert_recformer(src, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        convert_recformer(tmp_path / "nowhere", tmp_path / "out")
    assert leftovers(tmp_path / "out") == []


def test_failed_write_keeps_the_existing_folder_and_leaves_no_temp(tmp_path, monkeypatch):
    src = write_recformer(tmp_path / "Tiny")
    out = tmp_path / "out"
    good = convert_recformer(src, out)
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    def broken(*args, **kwargs):  # fails after Tiny.inter and the split files were written into the temp folder
        raise RuntimeError("disk full")

    monkeypatch.setattr(converters_common, "write_item_text", broken)
    with pytest.raises(RuntimeError):
        convert_recformer(src, out)
    with pytest.raises(RuntimeError):
        convert_recformer(src, out, name="Fresh")
    assert leftovers(out) == ["Tiny"]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before


# ---------------------------------------------------------------- CLI

def test_cli_builds_dataset_and_prints_summary(tmp_path, capsys):
    src = write_recformer(tmp_path / "Tiny")
    assert main(["recformer", "--src", str(src), "--out", str(tmp_path / "out"), "--name", "Renamed"]) == 0
    assert (tmp_path / "out" / "Renamed" / "Renamed.itemtext").is_file()
    out = capsys.readouterr().out
    assert f"Renamed: 6 users, 12 items, 22 interactions -> {tmp_path / 'out' / 'Renamed'}" in out
    assert "8 train / 4 valid / 4 test rows" in out
    assert {p.name for p in (tmp_path / "out" / "Renamed").iterdir()} == {
        f"Renamed.{suffix}" for suffix in ("inter", "train.inter", "valid.inter", "test.inter", "itemtext")}


def test_cli_error_is_one_line_exit_2(tmp_path, capsys):
    objects = recformer_json()
    objects["val.json"]["0"] = [3, 4]
    src = write_recformer(tmp_path / "Tiny", objects)
    assert main(["recformer", "--src", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src / 'val.json'}: ") and err.count("\n") == 1


def test_converter_command():
    assert converter_command("Scientific-Recformer") == (
        "python -m recbole_text.data.converters recformer --src ../shared/data/Scientific-Recformer --out dataset/data"
    )
    assert "recformer --src" in converter_command("Office-Recformer")


# ---------------------------------------------------------------- real data

@pytest.fixture(scope="module")
def scientific_recformer(tmp_path_factory) -> Path:
    """The real Scientific-Recformer, converted once for the tests below; returns the data_path."""
    if not RECFORMER.is_dir():
        pytest.skip("shared Scientific-Recformer data not available")
    root = tmp_path_factory.mktemp("recformer-data")
    convert_recformer(RECFORMER, root)
    return root


def load_real(file: str):
    return json.loads((RECFORMER / file).read_text(encoding="utf-8"))


def test_scientific_recformer_real_data(scientific_recformer):
    folder = scientific_recformer / "Scientific-Recformer"
    rows = read_inter_rows(folder)
    assert len(rows) == 76896
    assert len({r[0] for r in rows}) == 11041 and len({r[1] for r in rows}) == 5327
    keys, items = read_item_text(folder / "Scientific-Recformer.itemtext")
    assert keys == ["title", "brand", "category"] and len(items) == 5327
    assert sum("category" not in a for a in items.values()) == 173
    assert sum("brand" not in a for a in items.values()) == 15
    assert [len(read_inter_rows(folder, part)) for part in ("train", "valid", "test")] == [43777, 11039, 11039]


def test_scientific_recformer_runs_on_recformers_split(scientific_recformer, in_tmp_cwd):
    """properties/dataset/Scientific-Recformer.yaml selects the pre-split files: RecBole's rows are exactly
    Recformer's split (histories cut to the 50 most recent items) and every item is in the catalogue."""
    job = build_job("SASRec", "Scientific-Recformer", config_dict={**FAST, "data_path": str(scientific_recformer)},
                    with_trainer=False, log=False)
    assert job.config["benchmark_filename"] == ["train", "valid", "test"]
    # the one user with a single interaction (train.json only, no prefix) is in no row, so RecBole does not know it
    val_users = load_real("val.json")
    single = [key for key, items in load_real("train.json").items() if len(items) == 1 and key not in val_users]
    assert len(single) == 1
    assert (job.dataset.user_num - 1, job.dataset.item_num - 1) == (11040, 5327)
    smap, umap = load_real("smap.json"), load_real("umap.json")
    asin, reviewer = {i: a for a, i in smap.items()}, {str(u): r for r, u in umap.items()}
    objects = {file: load_real(file) for file in ("train.json", "val.json", "test.json")}
    rows = {part: split_rows(job, f"{part}_data") for part in ("train", "valid", "test")}
    expected = recformer_rows(objects, asin, reviewer)
    assert len(expected["valid"]) == len(expected["test"]) == 11039
    assert sum(map(len, expected["train"].values())) == 43777
    assert rows == expected
    assert reviewer[single[0]] not in job.dataset.field2token_id["user_id"]


def test_scientific_recformer_leave_one_out(scientific_recformer, in_tmp_cwd):
    """``--benchmark_filename=~``: RecBole's leave-one-out on the chronological file, Recformer's split but for
    the 28 users with 3 interactions (their val.json item is a training target)."""
    job = build_job("SASRec", "Scientific-Recformer", with_trainer=False, log=False,
                    config_dict={**FAST, "data_path": str(scientific_recformer), "benchmark_filename": None})
    assert (job.dataset.user_num - 1, job.dataset.item_num - 1) == (11041, 5327)  # the defaults filter nothing
    smap, umap, train, val, test = (load_real(f) for f in ("smap.json", "umap.json", "train.json", "val.json",
                                                           "test.json"))
    asin, reviewer = {i: a for a, i in smap.items()}, {str(u): r for r, u in umap.items()}
    targets = {}
    for part in ("valid_data", "test_data"):
        data = getattr(job, part)._dataset
        users = data.field2id_token["user_id"][data.inter_feat["user_id"].numpy()]
        found = data.field2id_token["item_id"][data.inter_feat["item_id"].numpy()]
        targets[part] = dict(zip(users, found))
        assert len(targets[part]) == len(users)  # one row per user
    three = {key for key, items in train.items() if len(items) == 1 and key in val}  # 3 interactions
    assert len(three) == 28
    assert targets["test_data"] == {reviewer[k]: asin[items[0]] for k, items in test.items()}  # all 11,039 users
    assert targets["valid_data"] == {reviewer[k]: asin[items[0]] for k, items in val.items() if k not in three}
    total = sum(len(getattr(job, part)._dataset.inter_feat) for part in ("train_data", "valid_data", "test_data"))
    assert total == 76896 - 11041  # every interaction but each user's first is a target somewhere
