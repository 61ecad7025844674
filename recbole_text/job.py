"""The one start-up path: config → seed → logger → dataset → loaders → model (→ pretrained weights) → trainer.

``run()``, every Ray Tune trial, the re-evaluation of a sweep's best trial, every Ray Train worker and
``recommend()`` build their job here, so a setting means the same thing everywhere::

    job = build_job("gSASRec", "ml-100k-text", config_dict={"epochs": 2})
    job.trainer.fit(job.train_data, job.valid_data)

Seeding follows RecBole's ``run_recbole``: the seed is set before the dataset is built (RecBole's loaders draw
from it) and again before the model is built, so the initial weights do not depend on how much randomness the
data preparation used.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from recbole_text import compat  # noqa: F401  (before any RecBole import)
from recbole.utils import init_logger, init_seed

from recbole_text.config import ConfigError, TextConfig
from recbole_text.data.text_dataset import DatasetNotFoundError

EMBEDDED_DATASETS = {"ml-100k-text"}  # built from RecBole's wheel on first use, no download


@dataclass
class Job:
    """Everything one training or inference job needs; parts a caller did not ask for are ``None``."""

    config: TextConfig
    dataset: Any  # the whole dataset (before the split)
    train_data: Any = None
    valid_data: Any = None
    test_data: Any = None
    model: Any = None
    trainer: Any = None


def build_config(model, dataset, config_file_list=None, config_dict=None) -> TextConfig:
    """``dataset`` is a name, or several (a list, or comma-separated): one combined multi-domain dataset."""
    from recbole_text.data.multi_domain import dataset_name

    return TextConfig(model=model, dataset=dataset_name(dataset), config_file_list=config_file_list,
                      config_dict=config_dict)


def ensure_dataset(config) -> None:
    """Build an embedded dataset on first use; otherwise say exactly how to build a missing one."""
    folder = Path(config["data_path"])
    if folder.is_dir():
        return
    from recbole_text.data.converters import convert_ml100k, converter_command

    name = config["dataset"]
    from recbole_text.data.multi_domain import JOIN, combine_datasets

    if JOIN in name:  # several domains: built from their own folders (each built or converted first)
        for part in name.split(JOIN):
            ensure_dataset({"data_path": str(folder.parent / part), "dataset": part})
        logging.getLogger().info(f"combining {name.split(JOIN)} into {folder}")
        combine_datasets(folder.parent, name)
        return
    if name in EMBEDDED_DATASETS:
        logging.getLogger().info(f"building the embedded dataset {name} into {folder}")
        convert_ml100k(folder.parent, name=name)
        return
    raise DatasetNotFoundError(
        f"dataset {name!r} not found at {folder}. Build it with:\n  {converter_command(name)}"
        f"\n(or point --data_path at the folder that holds {name}/)"
    )


def absolute_files(files) -> list[str]:
    """Config files as absolute paths (Ray's workers run in other folders); a missing one is an error."""
    out = []
    for f in files or []:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"{f}: config file not found")
        out.append(os.path.abspath(f))
    return out


def prepare_driver(model, dataset: str, config_file_list=None, config_dict=None):
    """What a Ray driver (a sweep, a Ray Train run) does once before its workers start, whose working folders
    differ from ours: config files and paths made absolute, the dataset built, devices left to Ray
    (``gpu_id`` cleared, so ``CUDA_VISIBLE_DEVICES`` is Ray's to set), and for a text model its ``prepare_text``
    (item text embeddings encoded, or the catalogue tokenised, into their cache), so every trial only loads them. Returns ``(config, files, overrides)``:
    the workers build their jobs from ``files`` and ``overrides``."""
    files = absolute_files(config_file_list)
    overrides = dict(config_dict or {})
    overrides["gpu_id"] = ""
    config = build_config(model, dataset, files, overrides)
    ensure_dataset(config)
    from recbole_text.registry import get_model

    prepare_text = getattr(get_model(config["model"]), "prepare_text", None)
    if prepare_text is not None:  # text models: encode (or tokenise) the item texts once, here
        from recbole_text.data import create_dataset

        prepare_text(config, create_dataset(config))
    overrides.update(data_path=os.path.dirname(config["data_path"]),  # RecBole's data_path ends in /<dataset>
                     checkpoint_dir=config["checkpoint_dir"])
    if config["text_cache_dir"]:  # trials run in their own folders: a relative cache folder would differ in each
        overrides["text_cache_dir"] = os.path.abspath(config["text_cache_dir"])
    return config, files, overrides


def build_job(
    model,
    dataset: str,
    config_file_list=None,
    config_dict=None,
    *,
    loaders: bool = True,
    with_trainer: bool = True,
    trainer_class: Callable | None = None,
    device: str | None = None,
    log: bool = True,
    worker_seed_offset: int = 0,
    worker_shard: tuple[int, int] = (0, 1),
) -> Job:
    """Build the job for ``model`` on ``dataset`` (``config_dict`` holds the ``--key=value`` overrides).

    ``loaders=False`` stops after the dataset (the model is then built on the whole dataset, which has the
    same vocabularies); ``with_trainer=False`` builds no trainer. ``trainer_class(config)`` returns the trainer
    class to use (default: the registry's trainer with safe checkpoints). ``device`` replaces the configured
    one (Ray Train hands each worker its GPU). ``worker_seed_offset`` > 0 re-seeds with ``seed + offset`` once the
    model exists (Ray Train workers start from the same weights but draw their own dropout masks and negatives).
    ``worker_shard`` = ``(rank, world_size)``: the share of every global batch this worker trains on. The training
    loader is arranged by :func:`~recbole_text.data.batching.arrange_batches` (``group_by_length``, shards).
    ``config["pretrained"]`` (``--pretrained=PATH``) loads weights by name into the new model.
    """
    from recbole_text.data import create_dataset, data_preparation
    from recbole_text.data.batching import arrange_batches
    from recbole_text.registry import get_model, get_trainer
    from recbole_text.trainer import load_pretrained

    config = build_config(model, dataset, config_file_list, config_dict)
    if device is not None:
        import torch

        config["device"] = torch.device(device)
    init_seed(config["seed"], config["reproducibility"])
    if log:
        # RecBole's init_logger makes ./log/<model> with an exists-check then makedirs, which fails when two
        # processes (data-parallel workers) start together in one folder
        os.makedirs(os.path.join("log", config["model"]), exist_ok=True)
        init_logger(config)
        if worker_shard[0]:
            _log_to_rank_file(worker_shard[0])
        logging.getLogger().info(config)
    ensure_dataset(config)
    data = create_dataset(config)
    job = Job(config=config, dataset=data)
    if loaders:
        job.train_data, job.valid_data, job.test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    model_dataset = job.train_data._dataset if loaders else data
    job.model = get_model(config["model"])(config, model_dataset).to(config["device"])
    if config["pretrained"]:
        load_pretrained(job.model, config["pretrained"], config["model"])
    if loaders:
        job.train_data = arrange_batches(config, job.train_data, job.model, *worker_shard)
    if worker_seed_offset:
        init_seed(config["seed"] + worker_seed_offset, config["reproducibility"])
    if log:
        logging.getLogger().info(job.model)
    if with_trainer:
        cls = trainer_class(config) if trainer_class else get_trainer(config["MODEL_TYPE"], config["model"])
        job.trainer = cls(config, job.model)
    return job


def _log_to_rank_file(rank: int) -> None:
    """Move the root logger's RecBole log file ``<model>-<dataset>-<time>-<hash>.log`` to ``…-rank<rank>.log``:
    data-parallel workers share a config (so the hash) and usually the second, and would append to one file."""
    root = logging.getLogger()
    for shared in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        path = Path(shared.baseFilename)
        own = logging.FileHandler(path.with_name(f"{path.stem}-rank{rank}{path.suffix}"))
        own.setLevel(shared.level)
        own.setFormatter(shared.formatter)
        for log_filter in shared.filters:
            own.addFilter(log_filter)
        root.removeHandler(shared)
        shared.close()
        root.addHandler(own)


__all__ = ["ConfigError", "Job", "absolute_files", "build_config", "build_job", "ensure_dataset", "prepare_driver"]
