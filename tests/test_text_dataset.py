"""TextSequentialDataset: attributes per internal id, both split layouts, and Scientific end to end."""
from __future__ import annotations

from pathlib import Path


from recbole_text.config import TextConfig
from recbole_text.data import create_dataset, data_preparation
from recbole_text.data.atomic import write_atomic_file
from recbole_text.data.text_dataset import TextSequentialDataset

from conftest import FAST


def build(data_path: Path, name: str, **overrides):
    config = TextConfig("SASRec", name, config_dict={**FAST, "data_path": str(data_path), **overrides})
    dataset = create_dataset(config)
    return config, dataset


def test_attributes_follow_internal_ids(tiny_data, in_tmp_cwd):
    _, dataset = build(tiny_data, "tiny")
    assert isinstance(dataset, TextSequentialDataset)
    assert len(dataset.item_attributes) == dataset.item_num == 61  # 60 items + padding
    assert dataset.item_attributes[0] == {}
    for internal_id in range(1, dataset.item_num):
        token = dataset.id2token(dataset.iid_field, internal_id)
        attrs = dataset.item_attributes[internal_id]
        number = int(token[1:])
        if number == 1:
            assert attrs == {} and dataset.item_texts[internal_id] == ""
        elif number == 2:
            assert attrs["title"] == 'Tab\there, "quoted"\nsecond line'
        else:
            assert attrs == {"title": f"Item number {number}", "brand": f"Brand {number % 3}"}
            assert list(attrs) == ["title", "brand"]
            assert dataset.item_text(internal_id) == f"title: Item number {number}; brand: Brand {number % 3}"
    assert dataset.items_without_text == 1
    assert dataset.item_text_keys == ["title", "brand"]


def test_leave_one_out_targets_are_the_last_items(tiny_data, in_tmp_cwd):
    config, dataset = build(tiny_data, "tiny")
    train, valid, test = data_preparation(config, dataset)
    for split, offset in ((test, 11), (valid, 10)):
        feat = split._dataset.inter_feat
        users = dataset.id2token(dataset.uid_field, feat[dataset.uid_field].numpy())
        items = dataset.id2token(dataset.iid_field, feat[dataset.iid_field].numpy())
        assert len(users) == 60
        for user, item in zip(users, items):
            assert item == f"i{(int(user[1:]) + offset) % 60 + 1}"
    # the split datasets still know every item's text
    assert test._dataset.item_attributes is dataset.item_attributes


def write_presplit(folder: Path, name: str, sequences: dict[str, list[str]]):
    header = [("user_id", "token"), ("item_id_list", "token_seq"), ("item_id", "token")]
    train, valid, test = [], [], []
    for user, seq in sequences.items():
        for t in range(1, len(seq) - 2):
            train.append((user, " ".join(seq[:t]), seq[t]))
        valid.append((user, " ".join(seq[:-2]), seq[-2]))
        test.append((user, " ".join(seq[:-1]), seq[-1]))
    for part, rows in (("train", train), ("valid", valid), ("test", test)):
        write_atomic_file(folder / f"{name}.{part}.inter", header, rows)
    return len(train), len(valid), len(test)


def test_presplit_layout(tmp_path, in_tmp_cwd):
    sequences = {f"u{u}": [f"i{(u + k) % 60 + 1}" for k in range(8)] for u in range(60)}
    sizes = write_presplit(tmp_path / "pre", "pre", sequences)
    config, dataset = build(tmp_path, "pre", benchmark_filename=["train", "valid", "test"])
    train, valid, test = data_preparation(config, dataset)
    assert (len(train._dataset), len(valid._dataset), len(test._dataset)) == sizes
    history_field = dataset.iid_field + config["LIST_SUFFIX"]
    feat = test._dataset.inter_feat
    for row in range(len(feat)):
        user = dataset.id2token(dataset.uid_field, int(feat[dataset.uid_field][row]))
        length = int(feat[dataset.item_list_length_field][row])
        history = dataset.id2token(dataset.iid_field, feat[history_field][row][:length].numpy())
        assert list(history) == sequences[user][:-1]
        assert dataset.id2token(dataset.iid_field, int(feat[dataset.iid_field][row])) == sequences[user][-1]
    assert all(a == {} for a in dataset.item_attributes)  # no .itemtext: empty attributes, no crash


def test_scientific_chronological_matches_unisrec_split(scientific_src, tmp_path, in_tmp_cwd):
    """Our converted single-file Scientific, split by RecBole, gives exactly UniSRec's test rows."""
    from recbole_text.data.converters import convert_unisrec

    convert_unisrec(scientific_src, tmp_path / "data")
    config, ours = build(tmp_path / "data", "Scientific", MAX_ITEM_LIST_LENGTH=50)
    _, _, test = data_preparation(config, ours)
    assert ours.user_num - 1 == 8442 and ours.item_num - 1 == 4385
    assert ours.items_without_text == 0
    history_field = ours.iid_field + config["LIST_SUFFIX"]
    feat = test._dataset.inter_feat
    users = ours.id2token(ours.uid_field, feat[ours.uid_field].numpy())
    targets = ours.id2token(ours.iid_field, feat[ours.iid_field].numpy())
    lengths = feat[ours.item_list_length_field].numpy()
    histories = feat[history_field].numpy()

    index_to_item = dict(line.split("\t")[::-1] for line in (scientific_src / "Scientific.item2index").read_text().split("\n") if line)
    index_to_user = dict(line.split("\t")[::-1] for line in (scientific_src / "Scientific.user2index").read_text().split("\n") if line)
    expected = {}
    for line in (scientific_src / "Scientific.test.inter").read_text().split("\n")[1:]:
        if line:
            user, history, target = line.split("\t")
            expected[index_to_user[user]] = ([index_to_item[i] for i in history.split()], index_to_item[target])
    assert len(users) == len(expected) == 8442
    for user, target, length, history in zip(users, targets, lengths, histories):
        want_history, want_target = expected[user]
        assert target == want_target
        assert list(ours.id2token(ours.iid_field, history[:length])) == want_history
    title = ours.item_attributes[ours.token2id(ours.iid_field, "B0000223SI")]["title"]
    assert title == "PORTER-CABLE 740000801 4 1/2-Inch x 10yd 80 Grit Adhesive-Backed Sanding Roll"
