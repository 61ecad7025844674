"""Several datasets as one: ids never collide, batches mix domains, the build is atomic."""
from __future__ import annotations

import pytest

from recbole_text.data.atomic import read_item_text
from recbole_text.data.multi_domain import combine_datasets, dataset_name
from recbole_text.job import build_job

from conftest import FAST, write_tiny_dataset


def test_dataset_names():
    assert dataset_name("Office,Instruments, Games") == "Office+Instruments+Games"
    assert dataset_name(["Office", "Games"]) == "Office+Games"
    assert dataset_name("Scientific") == "Scientific"
    with pytest.raises(ValueError, match="twice"):
        dataset_name("Office,Office")


def test_combined_domains_keep_ids_apart_and_mix_in_batches(tmp_path, in_tmp_cwd):
    write_tiny_dataset(tmp_path, "a", users=30, items=20)
    write_tiny_dataset(tmp_path, "b", users=40, items=25)  # the same raw tokens u0.., i1.. as domain a
    job = build_job("SeqSASRec", "a,b", config_dict={**FAST, "data_path": str(tmp_path), "train_batch_size": 64},
                    with_trainer=False, log=False)
    data = job.dataset
    assert data.dataset_name == "a+b"
    assert data.user_num - 1 == 70 and data.item_num - 1 == 45  # nothing merged across domains
    tokens = data.field2id_token["item_id"][1:]
    assert {t.split("/")[0] for t in tokens} == {"a", "b"}
    assert data.item_attributes[data.token2id("item_id", "b/i5")]["title"] == "Item number 5"
    assert data.item_attributes[data.token2id("item_id", "a/i1")] == {}  # i1 has no text in either domain
    users = data.field2id_token["user_id"]
    domains_per_batch = [{users[u].split("/")[0] for u in batch["user_id"].tolist()} for batch in job.train_data]
    assert any(len(d) == 2 for d in domains_per_batch)
    keys, items = read_item_text(tmp_path / "a+b" / "a+b.itemtext")
    assert keys == ["title", "brand"] and len(items) == 19 + 24


def test_combining_needs_every_domain_and_leaves_nothing_half_written(tmp_path):
    write_tiny_dataset(tmp_path, "a")
    with pytest.raises(FileNotFoundError, match="cannot combine a\\+missing"):
        combine_datasets(tmp_path, "a+missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
