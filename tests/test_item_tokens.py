"""recbole_text.text.item_tokens: Recformer's item tokens, their cache, and the sequence / item inputs.

The tokenizer is the packaged all-MiniLM-L6-v2's (a BERT WordPiece tokenizer, offline), saved with a tiny random
BERT by :func:`test_text_encoder.save_tiny_bert`. The dataset is conftest's ``tiny`` (items with a title and a
brand; item i1 has no text).
"""
from __future__ import annotations

import copy
import importlib
import json
import logging
import random

import numpy as np
import pytest
import torch

from recbole_text.config import ConfigError
from recbole_text.text.item_tokens import ItemTokens, input_widths, item_inputs, item_tokens, sequence_inputs

from test_text_encoder import dataset, make_config, save_tiny_bert, tiny_root  # noqa: F401  (fixtures)

# the package exports the function item_tokens under the module's name: reach the module through sys.modules
module = importlib.import_module("recbole_text.text.item_tokens")

NAMES = ("input_ids", "token_type_ids", "item_position_ids", "attention_mask", "global_attention_mask")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", seed=0)


@pytest.fixture(scope="module")
def tokenizer(bert):
    return module.load_tokenizer(bert)


@pytest.fixture(scope="module")
def catalogue(tiny_root, dataset, bert, tmp_path_factory):
    config = make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path_factory.mktemp("cache")))
    return item_tokens(config, dataset)


@pytest.fixture
def loads(monkeypatch):
    """Counts tokenizer loads and tokenizer calls made by the cache."""
    calls = {"loads": 0, "calls": 0}
    load = module.load_tokenizer

    def counting_load(folder):
        calls["loads"] += 1
        tokenizer = load(folder)

        def counting_call(*args, **kwargs):
            calls["calls"] += 1
            return tokenizer(*args, **kwargs)

        counting_call.cls_token_id, counting_call.pad_token_id = tokenizer.cls_token_id, tokenizer.pad_token_id
        counting_call.bos_token_id = tokenizer.bos_token_id
        return counting_call

    monkeypatch.setattr(module, "load_tokenizer", counting_load)
    return calls


def iid(dataset, token: str) -> int:
    return dataset.token2id(dataset.iid_field, token)


def ids_of(tokenizer, text: str) -> list[int]:
    """The tokenizer's own pieces of ``text``, as ids."""
    return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


def expected_block(tokenizer, attributes: dict, keys, max_attr_num=3, max_attr_length=32):
    ids, types = [], []
    present = [(k, attributes[k]) for k in keys if attributes.get(k, "").strip()][:max_attr_num]
    for key, value in present:
        name, val = ids_of(tokenizer, key), ids_of(tokenizer, value)
        ids += (name + val)[:max_attr_length]
        types += ([1] * len(name) + [2] * len(val))[:max_attr_length]
    return ids, types


def batch(rows, width=None):
    """Histories (oldest → newest) → left-aligned (B, L) ids and (B,) lengths; positions after a row's length get
    junk ids, which must be ignored."""
    width = width or max([len(r) for r in rows] + [1])
    seq = torch.full((len(rows), width), 7, dtype=torch.int64)
    for b, row in enumerate(rows):
        seq[b, :len(row)] = torch.tensor(row, dtype=torch.int64)
    return seq, torch.tensor([len(r) for r in rows], dtype=torch.int64)


def reference(tokens: ItemTokens, rows, max_token_num, max_item_num):
    """Plain Python: [CLS] + items most recent first, cut, padded to the longest row."""
    built = []
    for row in rows:
        ids, types, positions = [tokens.cls_id], [0], [0]
        for k, item in enumerate(list(reversed(row))[:max_item_num], start=1):
            block_ids, block_types = tokens.block(item)
            ids += block_ids
            types += block_types
            positions += [k] * len(block_ids)
        built.append((ids[:max_token_num], types[:max_token_num], positions[:max_token_num]))
    width = max(len(ids) for ids, _, _ in built) if built else 1
    out = {name: [] for name in NAMES}
    for ids, types, positions in built:
        pad = width - len(ids)
        out["input_ids"].append(ids + [tokens.pad_id] * pad)
        out["token_type_ids"].append(types + [3] * pad)
        out["item_position_ids"].append(positions + [0] * pad)
        out["attention_mask"].append([1] * len(ids) + [0] * pad)
        out["global_attention_mask"].append([1] + [0] * (width - 1))
    return out


def as_lists(inputs):
    assert set(inputs) == set(NAMES)
    assert all(v.dtype == torch.int64 for v in inputs.values())
    return {name: value.tolist() for name, value in inputs.items()}


def test_blocks_are_key_then_value_tokens_without_special_tokens(catalogue, dataset, tokenizer):
    assert catalogue.n_items == dataset.item_num == 61
    assert (catalogue.cls_id, catalogue.pad_id) == (tokenizer.cls_token_id, tokenizer.pad_token_id)
    i17 = iid(dataset, "i17")
    ids, types = catalogue.block(i17)
    assert dataset.item_attributes[i17] == {"title": "Item number 17", "brand": "Brand 2"}
    title, value = ids_of(tokenizer, "title"), ids_of(tokenizer, "Item number 17")
    brand, brand_value = ids_of(tokenizer, "brand"), ids_of(tokenizer, "Brand 2")
    assert ids == title + value + brand + brand_value
    assert types == [1] * len(title) + [2] * len(value) + [1] * len(brand) + [2] * len(brand_value)
    assert tokenizer.cls_token_id not in ids and tokenizer.sep_token_id not in ids
    for i in range(1, catalogue.n_items):  # every item as the hand-built block
        assert catalogue.block(i) == expected_block(tokenizer, dataset.item_attributes[i], ["title", "brand"])
    assert catalogue.block(0) == ([], []) and catalogue.block(iid(dataset, "i1")) == ([], [])


def test_a_two_item_sequence(catalogue, dataset):
    older, recent = iid(dataset, "i5"), iid(dataset, "i42")
    seq, lengths = batch([[older, recent], [older]])
    out = as_lists(sequence_inputs(catalogue, seq, lengths, max_token_num=512, max_item_num=50))
    (recent_ids, recent_types), (older_ids, older_types) = catalogue.block(recent), catalogue.block(older)
    cls, n = catalogue.cls_id, 1 + len(recent_ids) + len(older_ids)
    assert out["input_ids"][0] == [cls] + recent_ids + older_ids  # most recent first, no separators
    assert out["token_type_ids"][0] == [0] + recent_types + older_types
    assert out["item_position_ids"][0] == [0] + [1] * len(recent_ids) + [2] * len(older_ids)
    assert out["attention_mask"][0] == [1] * n
    assert out["global_attention_mask"][0] == [1] + [0] * (n - 1)
    pad = n - 1 - len(older_ids)  # the second row is padded to the first's width
    assert out["input_ids"][1] == [cls] + older_ids + [catalogue.pad_id] * pad
    assert out["token_type_ids"][1] == [0] + older_types + [3] * pad
    assert out["item_position_ids"][1] == [0] + [1] * len(older_ids) + [0] * pad
    assert out["attention_mask"][1] == [1] * (1 + len(older_ids)) + [0] * pad
    assert out["global_attention_mask"][1] == [1] + [0] * (n - 1)


def test_max_token_num_cuts_the_oldest_tokens(catalogue, dataset):
    a, b, c = iid(dataset, "i3"), iid(dataset, "i30"), iid(dataset, "i59")  # oldest → newest
    seq, lengths = batch([[a, b, c]])
    blocks = {i: catalogue.block(i)[0] for i in (a, b, c)}
    limit = 1 + len(blocks[c]) + 3  # [CLS], all of c, the first 3 tokens of b, nothing of a
    out = as_lists(sequence_inputs(catalogue, seq, lengths, max_token_num=limit, max_item_num=50))
    assert out["input_ids"] == [[catalogue.cls_id] + blocks[c] + blocks[b][:3]]
    assert out["item_position_ids"] == [[0] + [1] * len(blocks[c]) + [2] * 3]
    only_cls = as_lists(sequence_inputs(catalogue, seq, lengths, max_token_num=1, max_item_num=50))
    assert only_cls["input_ids"] == [[catalogue.cls_id]]


def test_max_item_num_keeps_the_most_recent_items(catalogue, dataset):
    history = [iid(dataset, f"i{n}") for n in (10, 11, 12, 13, 14)]
    seq, lengths = batch([history])
    out = as_lists(sequence_inputs(catalogue, seq, lengths, max_token_num=512, max_item_num=2))
    newest, before = catalogue.block(history[-1])[0], catalogue.block(history[-2])[0]
    assert out["input_ids"] == [[catalogue.cls_id] + newest + before]
    assert max(out["item_position_ids"][0]) == 2


def test_max_attr_length_and_max_attr_num(tokenizer):
    item = {"title": "A very long title about sanding rolls and abrasive finishing products", "colour": "  ",
            "brand": "PORTER-CABLE power tools", "size": "four and a half inch", "weight": "heavy"}
    keys = ["title", "colour", "brand", "size", "weight"]
    tokens = module.tokenize_items(tokenizer, [{}, item], keys, max_attr_num=3, max_attr_length=6)
    ids, types = tokens.block(1)
    assert (ids, types) == expected_block(tokenizer, item, keys, max_attr_num=3, max_attr_length=6)
    title, brand, size = (ids_of(tokenizer, k) for k in ("title", "brand", "size"))
    # colour is blank (no attribute); weight is the 4th present attribute (beyond max_attr_num)
    assert ids == (title + ids_of(tokenizer, item["title"]))[:6] + (brand + ids_of(tokenizer, item["brand"]))[:6] \
        + (size + ids_of(tokenizer, item["size"]))[:6]
    assert types == [1, 2, 2, 2, 2, 2] * 3
    one = module.tokenize_items(tokenizer, [{}, item], keys, max_attr_num=1, max_attr_length=1)
    assert one.block(1) == (title[:1], [1])  # a key that fills the attribute leaves no room for its value
    everything = module.tokenize_items(tokenizer, [{}, item], keys, max_attr_num=10, max_attr_length=100)
    assert everything.block(1) == expected_block(tokenizer, item, keys, max_attr_num=10, max_attr_length=100)
    assert everything.block(1)[0][-2:] == ids_of(tokenizer, "weight") + ids_of(tokenizer, "heavy")


def test_chunks_give_the_same_tokens(tokenizer, dataset, catalogue):
    chunked = module.tokenize_items(tokenizer, dataset.item_attributes, ["title", "brand"], chunk_size=7)
    for name in ("tokens", "types", "offsets"):
        assert torch.equal(getattr(chunked, name), getattr(catalogue, name))


def test_items_without_text_and_empty_histories(catalogue, dataset):
    no_text, item = iid(dataset, "i1"), iid(dataset, "i20")
    seq, lengths = batch([[item, no_text], [], [no_text]])
    out = as_lists(sequence_inputs(catalogue, seq, lengths, max_token_num=512, max_item_num=50))
    ids = catalogue.block(item)[0]
    assert out["input_ids"][0] == [catalogue.cls_id] + ids  # the item without text adds no tokens …
    assert out["item_position_ids"][0] == [0] + [2] * len(ids)  # … but keeps its place (it is the most recent)
    # an empty history is [CLS] alone (the model keeps such rows out of training)
    for row in (1, 2):
        assert out["input_ids"][row] == [catalogue.cls_id] + [catalogue.pad_id] * len(ids)
        assert out["attention_mask"][row] == [1] + [0] * len(ids)
        assert out["token_type_ids"][row] == [0] + [3] * len(ids)
    empty = as_lists(sequence_inputs(catalogue, *batch([[], []]), max_token_num=512, max_item_num=50))
    assert empty["input_ids"] == [[catalogue.cls_id]] * 2 and empty["global_attention_mask"] == [[1]] * 2
    none = sequence_inputs(catalogue, torch.zeros((0, 5), dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                           512, 50)
    assert none["input_ids"].shape == (0, 1)


def test_item_inputs(catalogue, dataset):
    items = [iid(dataset, "i9"), 0, iid(dataset, "i1"), iid(dataset, "i33")]
    out = as_lists(item_inputs(catalogue, torch.tensor(items), max_token_num=6))
    for row, item in enumerate(items):
        ids, types = catalogue.block(item)
        n = min(len(ids), 5)
        assert out["input_ids"][row] == [catalogue.cls_id] + ids[:n] + [catalogue.pad_id] * (5 - n)
        assert out["token_type_ids"][row] == [0] + types[:n] + [3] * (5 - n)
        assert out["item_position_ids"][row] == [0] + [1] * n + [0] * (5 - n)
        assert out["attention_mask"][row] == [1] * (1 + n) + [0] * (5 - n)
    full = as_lists(item_inputs(catalogue, torch.tensor(items), max_token_num=512))
    assert full["input_ids"][0][1:1 + len(catalogue.block(items[0])[0])] == catalogue.block(items[0])[0]


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_inputs_and_widths_equal_the_reference(seed):
    rng = random.Random(seed)
    n_items = rng.randint(1, 40)
    lengths = [0] + [rng.choice([0, 0, 1, 2, 5, 9, 17]) for _ in range(n_items - 1)]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = ItemTokens(torch.tensor([rng.randint(1000, 2000) for _ in range(offsets[-1])], dtype=torch.int64),
                        torch.tensor([rng.choice([1, 2]) for _ in range(offsets[-1])], dtype=torch.int64),
                        torch.from_numpy(offsets), cls_id=rng.randint(100, 110), pad_id=rng.choice([0, 1, 5]))
    for _ in range(8):
        width = rng.randint(1, 12)
        rows = [[rng.randrange(n_items) for _ in range(rng.randint(0, width))] for _ in range(rng.randint(1, 9))]
        max_token_num, max_item_num = rng.choice([1, 2, 7, 30, 512]), rng.choice([0, 1, 3, 50])
        seq, seq_len = batch(rows, width)
        got = as_lists(sequence_inputs(tokens, seq, seq_len, max_token_num, max_item_num))
        assert got == reference(tokens, rows, max_token_num, max_item_num), (rows, max_token_num, max_item_num)
        widths = input_widths(tokens, seq, seq_len, max_token_num, max_item_num).tolist()
        assert widths == [sum(mask) for mask in got["attention_mask"]]  # group_by_length's widths, unbuilt
        items = [rng.randrange(n_items) for _ in range(rng.randint(1, 6))]
        got = as_lists(item_inputs(tokens, torch.tensor(items), max_token_num))
        assert got == reference(tokens, [[i] for i in items], max_token_num, 1)


def test_cache_hit_skips_the_tokenizer_and_keys_change(tiny_root, dataset, bert, tmp_path, loads):
    config = make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path / "cache"))
    first = item_tokens(config, dataset)
    assert loads["loads"] == 1 and loads["calls"] == 3  # the keys, then one call per key (one chunk each)
    archives = sorted(p.name for p in (tmp_path / "cache").glob("*.npz"))
    assert len(archives) == 1 and archives[0].startswith("tiny-tokens-") and len(archives[0]) == 12 + 32 + 4
    meta = json.loads((tmp_path / "cache" / archives[0]).with_suffix(".json").read_text())
    assert meta["keys"] == ["title", "brand"] and meta["without_text"] == 1 and meta["tokens"] == len(first.tokens)
    with np.load(tmp_path / "cache" / archives[0], allow_pickle=False) as stored:
        assert sorted(stored.files) == ["offsets", "special", "tokens", "types"]
    second = item_tokens(config, dataset)
    assert loads["loads"] == 1 and loads["calls"] == 3  # a hit: no tokenizer at all
    for name in ("tokens", "types", "offsets"):
        assert torch.equal(getattr(first, name), getattr(second, name)) and getattr(second, name).dtype == torch.int64
    assert (second.cls_id, second.pad_id) == (first.cls_id, first.pad_id)

    changed = copy.copy(dataset)
    changed.item_attributes = list(dataset.item_attributes)
    i9 = iid(dataset, "i9")
    changed.item_attributes[i9] = {**dataset.item_attributes[i9], "title": "Item number nine"}
    other = item_tokens(config, changed)
    assert loads["loads"] == 2 and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert other.block(i9) != first.block(i9) and other.block(i9 + 1) == first.block(i9 + 1)
    item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path / "cache"),
                            max_attr_length=4), dataset)
    item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path / "cache"),
                            max_attr_num=1), dataset)
    item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path / "cache"),
                            recformer_attributes="brand,title"), dataset)
    assert loads["loads"] == 5 and len(list((tmp_path / "cache").glob("*.npz"))) == 5


def test_settings_order_and_limits(tiny_root, dataset, bert, tmp_path, tokenizer):
    cache = str(tmp_path / "cache")
    i4 = iid(dataset, "i4")
    swapped = item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=cache,
                                      recformer_attributes=["brand", "title"]), dataset)
    assert swapped.block(i4) == expected_block(tokenizer, dataset.item_attributes[i4], ["brand", "title"])
    short = item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=cache, max_attr_length=4,
                                    max_attr_num=1), dataset)
    assert short.block(i4) == expected_block(tokenizer, dataset.item_attributes[i4], ["title", "brand"], 1, 4)
    with pytest.raises(ConfigError, match="colour"):
        item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=cache,
                                recformer_attributes="title colour"), dataset)
    with pytest.raises(ValueError, match="max_attr_length=0"):
        item_tokens(make_config(tiny_root, plm_name=str(bert), text_cache_dir=cache, max_attr_length=0), dataset)


def test_the_key_reads_the_tokenizer_files_not_the_weights(tmp_path):
    a = save_tiny_bert(tmp_path / "a", seed=0)
    b = save_tiny_bert(tmp_path / "b", seed=1)  # other weights, same tokenizer
    assert module.tokenizer_fingerprint(a) == module.tokenizer_fingerprint(b)
    with open(b / "vocab.txt", "a", encoding="utf-8") as f:  # one more word: another tokenizer
        f.write("zzzzqqq\n")
    assert module.tokenizer_fingerprint(a) != module.tokenizer_fingerprint(b)


def test_an_interrupted_write_leaves_no_cache(tiny_root, dataset, bert, tmp_path, monkeypatch, loads, caplog):
    config = make_config(tiny_root, plm_name=str(bert), text_cache_dir=str(tmp_path / "cache"))
    write_array = np.lib.format.write_array
    written = []

    def failing_write(*args, **kwargs):
        if len(written) == 2:  # two arrays are already in the archive
            raise KeyboardInterrupt
        written.append(1)
        return write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(KeyboardInterrupt):
        item_tokens(config, dataset)
    folder = tmp_path / "cache"
    assert written == [1, 1] and sorted(p.name for p in folder.iterdir()) == []  # no archive, no temporary file
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    tokens = item_tokens(config, dataset)
    assert loads["loads"] == 2  # nothing was cached: tokenised again
    path = next(folder.glob("*.npz"))
    assert torch.equal(module.load_item_tokens(path, dataset.item_num).tokens, tokens.tokens)

    path.write_bytes(path.read_bytes()[:100])  # a damaged archive is never trusted
    with caplog.at_level(logging.WARNING, logger="recbole_text.text"):
        again = item_tokens(config, dataset)
    assert "is unreadable" in caplog.text and loads["loads"] == 3
    assert torch.equal(again.tokens, tokens.tokens)
    assert torch.equal(module.load_item_tokens(path, dataset.item_num).offsets, tokens.offsets)
    with pytest.raises(ValueError, match="items, expected"):
        module.load_item_tokens(path, dataset.item_num + 1)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
