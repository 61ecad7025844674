"""Dataset creation and data loaders, the RecBole way, without RecBole's pickled caches.

RecBole's ``create_dataset`` and ``data_preparation`` ``pickle.load`` any cache file found at their default
paths under ``checkpoint_dir``; these two functions build from the atomic files every time instead.
"""
from __future__ import annotations

import importlib
from logging import getLogger

from recbole_text import compat  # noqa: F401
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import ModelType

from recbole_text.data.atomic import AtomicFileError
from recbole_text.data.sequence_data import SEQUENCE_STRATEGIES, SequenceTrainDataLoader
from recbole_text.data.text_dataset import DatasetNotFoundError, TextSequentialDataset, check_dataset_files


def create_dataset(config):
    """The dataset class the model needs: a model-specific one, our text dataset for sequential models,
    RecBole's class for the rest."""
    recbole_datasets = importlib.import_module("recbole.data.dataset")
    model_type = config["MODEL_TYPE"]
    specific = getattr(recbole_datasets, config["model"] + "Dataset", None)
    if specific is not None:
        check_dataset_files(config)
        dataset = specific(config)
    elif model_type == ModelType.SEQUENTIAL:
        dataset = TextSequentialDataset(config)
    else:
        by_type = {ModelType.KNOWLEDGE: "KnowledgeBasedDataset", ModelType.DECISIONTREE: "DecisionTreeDataset"}
        check_dataset_files(config)
        dataset = getattr(recbole_datasets, by_type.get(model_type, "Dataset"))(config)
    getLogger().info(dataset)
    return dataset


def sequence_train_loader(config, train_set) -> SequenceTrainDataLoader:
    """Training loader of ``train_strategy`` sequence/rss/sampled_prefix (the config checks that the model supports it)."""
    return SequenceTrainDataLoader(config, train_set, shuffle=config["shuffle"])


def data_preparation(config, dataset):
    """Split by ``eval_args`` and build train/valid/test loaders (RecBole's logic minus the pickle cache)."""
    built = dataset.build()
    train_set, valid_set, test_set = built
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built)
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        from recbole.sampler import KGSampler

        args = config["train_neg_sample_args"]
        kg_sampler = KGSampler(dataset, args["distribution"], args["alpha"])
        train = get_dataloader(config, "train")(config, train_set, train_sampler, kg_sampler, shuffle=True)
    elif config["train_strategy"] in SEQUENCE_STRATEGIES:
        train = sequence_train_loader(config, train_set)
    else:
        train = get_dataloader(config, "train")(config, train_set, train_sampler, shuffle=config["shuffle"])
    valid = get_dataloader(config, "valid")(config, valid_set, valid_sampler, shuffle=False)
    test = get_dataloader(config, "test")(config, test_set, test_sampler, shuffle=False)
    return train, valid, test


__all__ = [
    "AtomicFileError",
    "DatasetNotFoundError",
    "TextSequentialDataset",
    "create_dataset",
    "data_preparation",
]
