"""Item embedding tables, encoded once and cached on disk as ``.npy`` (never pickled).

A table is (n_items, d) float32 indexed by RecBole's internal item id; row 0 (padding) and the rows of items
without text are zeros. Its file name carries a SHA-256 over everything the numbers depend on: every item's
encoder text in id order, the encoder's files (:func:`~recbole_text.text.encoder.encoder_fingerprint`: the
weights' bytes, not the name), the pooling, ``plm_max_length`` and the dtype the encoder ran in. A changed text,
id order, encoder, pooling, length or dtype is another file, so a stale table is never read. (Batch size and
device are not in the key: they change the numbers only at rounding level.)

Tables are written into a temporary file beside the final one, as a memory map filled chunk by chunk, and
renamed into place only when complete (``os.replace``): an interrupted run leaves no final file, and a
temporary file is never read. They are loaded with ``np.load(..., mmap_mode="r", allow_pickle=False)``.

Where: ``text_cache_dir``, default ``<data_path>/<dataset>/.text_cache`` — next to the data it was computed
from, shared by every model, run and Ray trial on that dataset, and outside git (``dataset/data/`` is ignored).
Beside each table a ``.json`` records how it was made (encoder, dtype, timing); it is informational only.

``plm_dtype: auto`` is bf16 (a bf16 copy of the encoder) where the device has native bf16 (AMX / AVX512-BF16
CPUs, CUDA with bf16) *and* a probe agrees with fp32 — the smallest cosine between the bf16 and fp32 vectors of up
to 64 of the catalogue's texts (short to long) is at least 0.999 — else fp32. The probe's answer is cached too
(``probe-<hash>.json``, keyed by encoder, pooling, length, device and the probe texts), so a cache hit never
loads the encoder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from recbole_text.data.atomic import atomic_path, atomic_write
from recbole_text.text.encoder import (DTYPES, POOLINGS, TextEncoder, bf16_native, encoder_fingerprint,
                                       resolve_encoder)
from recbole_text.text.texts import item_encoder_texts

CACHE_VERSION = 1
CHUNK_SIZE = 8192  # texts tokenised at a time: bounds the token lists held in memory
PROBE_TEXTS = 64
AGREEMENT = 0.999  # auto picks bf16 only if every probe vector has cosine ≥ this to its fp32 vector
DEFAULTS = {"plm_name": None, "plm_pooling": "mean", "plm_max_length": 128, "plm_batch_size": 64,
            "plm_dtype": "auto", "text_cache_dir": None, "show_progress": False}

logger = logging.getLogger(__name__)


def setting(config, key: str):
    """``config[key]``, or this module's default when the key is missing or ``~``."""
    value = config[key] if key in config else None
    return DEFAULTS[key] if value is None else value


def cache_dir(config) -> Path:
    """``text_cache_dir`` made absolute, default ``<data_path>/.text_cache`` (RecBole's ``data_path`` already
    ends in ``/<dataset>``)."""
    configured = setting(config, "text_cache_dir")
    folder = Path(os.path.expanduser(str(configured))) if configured else Path(config["data_path"]) / ".text_cache"
    return folder.resolve()


def writable_cache_dir(config) -> Path:
    """:func:`cache_dir`, created if missing; one error naming it and the setting when it cannot be."""
    where = cache_dir(config)
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the text cache folder {where} ({e.strerror}); set text_cache_dir to a "
                      "writable folder") from None
    return where


def _digest(params: dict, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: no two text lists hash alike
        digest.update(data)
    return digest.hexdigest()


def table_key(texts: Sequence[str], fingerprint: str, pooling: str, max_length: int, dtype: str) -> str:
    """SHA-256 (hex) naming the table of ``texts`` (internal id order) under these encoder settings."""
    params = {"version": CACHE_VERSION, "encoder": fingerprint, "pooling": pooling, "max_length": max_length,
              "dtype": dtype, "items": len(texts)}
    return _digest(params, texts)


def load_table(path, n_items: int | None = None) -> np.ndarray:
    """A cached table as a read-only memory map (n_items, d) float32; ``ValueError`` if it is not one."""
    table = np.load(path, mmap_mode="r", allow_pickle=False)
    if table.ndim != 2 or table.dtype != np.float32 or (n_items is not None and table.shape[0] != n_items):
        raise ValueError(f"{path}: expected a ({n_items or 'n'}, d) float32 table, found {table.shape} {table.dtype}")
    return table


def write_table(path, shape: tuple[int, int], fill: Callable[[np.ndarray], None]) -> None:
    """Create ``path`` atomically: ``fill(table)`` writes into a zero-initialised memory map (``shape``,
    float32) on a temporary ``.npy`` beside ``path``, which is renamed to ``path`` once ``fill`` returns.
    If ``fill`` raises, the temporary file is removed and ``path`` is left as it was."""
    with atomic_path(path, suffix=".npy.tmp") as tmp:
        table = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        fill(table)
        table.flush()
        del table


def write_json(path: Path, record: dict) -> None:
    """A cache's informational ``.json`` record, written atomically."""
    with atomic_write(path) as f:
        json.dump(record, f, indent=1)
        f.write("\n")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{device.type}:{torch.backends.cpu.get_cpu_capability()}:bf16={bf16_native(device)}"


def probe_texts(texts: Sequence[str], count: int = PROBE_TEXTS) -> list[str]:
    """Up to ``count`` non-empty texts spread evenly from the shortest to the longest."""
    ordered = sorted((t for t in texts if t), key=len)
    if len(ordered) <= count:
        return ordered
    return [ordered[round(k * (len(ordered) - 1) / (count - 1))] for k in range(count)]


def resolve_dtype(requested: str, device: torch.device, texts: Sequence[str], folder_cache: Path,
                  probe_params: dict, get_encoder: Callable[[], TextEncoder]) -> tuple[str, float | None]:
    """``plm_dtype`` → ``(fp32 | bf16, probe cosine or None)``; ``auto`` as described in the module docs."""
    if requested in DTYPES:
        if requested == "bf16" and not bf16_native(device):
            logger.warning(f"plm_dtype=bf16 on {device}, which has no native bf16: emulated, likely slower than fp32")
        return requested, None
    if requested != "auto":
        raise ValueError(f"plm_dtype={requested!r} is not one of auto, {', '.join(DTYPES)}")
    if not bf16_native(device):
        return "fp32", None
    sample = probe_texts(texts)
    if not sample:
        return "fp32", None
    record_path = folder_cache / f"probe-{_digest({**probe_params, 'device': _device_name(device)}, sample)[:32]}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads(record_path.read_text())
        return record["dtype"], record["min_cosine"]
    cosine = get_encoder().bf16_agreement(sample)
    dtype = "bf16" if cosine >= AGREEMENT else "fp32"
    logger.info(f"plm_dtype auto → {dtype}: bf16 vs fp32 smallest cosine {cosine:.6f} on {len(sample)} texts "
                f"(threshold {AGREEMENT})")
    write_json(record_path, {"dtype": dtype, "min_cosine": cosine, "texts": len(sample),
                              "device": _device_name(device), **probe_params})
    return dtype, cosine


def ensure_item_embeddings(config, dataset, *, chunk_size: int = CHUNK_SIZE) -> Path:
    """Make sure the item embedding table of ``dataset`` under ``config``'s text settings is on disk and return
    its path (absolute). Encodes only on a cache miss.

    A Ray driver calls this once before its trials start (:func:`recbole_text.job.prepare_driver`); the trials
    then only load the table (the default cache folder lies under the absolute ``data_path``).
    """
    fields, texts = item_encoder_texts(config, dataset)
    return ensure_text_embeddings(config, texts, dataset.dataset_name, fields, chunk_size=chunk_size)


def ensure_text_embeddings(config, texts: Sequence[str], name: str, fields: Sequence[str] = (), *,
                           chunk_size: int = CHUNK_SIZE) -> Path:
    """The cached table of ``texts`` (row ``i`` = ``texts[i]``, ``""`` → zeros) under ``config``'s text settings,
    in ``cache_dir(config)`` as ``<name>-<key>.npy``; encodes only on a cache miss. Used for a dataset's items
    and for items added at inference time (:mod:`recbole_text.recommend`)."""
    pooling = str(setting(config, "plm_pooling"))
    if pooling not in POOLINGS:
        raise ValueError(f"plm_pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    max_length, batch_size = int(setting(config, "plm_max_length")), int(setting(config, "plm_batch_size"))
    if max_length < 2 or batch_size < 1:
        raise ValueError(f"plm_max_length={max_length} must be ≥ 2 and plm_batch_size={batch_size} ≥ 1")
    device = torch.device(config["device"] if "device" in config and config["device"] is not None else "cpu")
    folder = resolve_encoder(setting(config, "plm_name"))
    fingerprint = encoder_fingerprint(folder)
    where = writable_cache_dir(config)
    encoder: list[TextEncoder] = []  # loaded at most once, and only when something must be encoded

    def get_encoder() -> TextEncoder:
        if not encoder:
            encoder.append(TextEncoder(folder, pooling=pooling, max_length=max_length, device=device))
        return encoder[0]

    probe_params = {"version": CACHE_VERSION, "encoder": fingerprint, "pooling": pooling, "max_length": max_length}
    dtype, cosine = resolve_dtype(str(setting(config, "plm_dtype")), device, texts, where, probe_params, get_encoder)
    key = table_key(texts, fingerprint, pooling, max_length, dtype)
    path = where / f"{name}-{key[:32]}.npy"
    if path.is_file():
        try:
            load_table(path, len(texts))
            logger.info(f"item text embeddings: cache hit {path}")
            return path
        except (OSError, ValueError) as e:
            logger.warning(f"item text embeddings: {path} is unreadable ({e}); encoding again")
    text_encoder = get_encoder()
    n_texts = sum(1 for t in texts[1:] if t)
    logger.info(f"item text embeddings: encoding {n_texts} item texts with {folder} ({pooling} pooling, "
                f"{dtype}, max {max_length} tokens, batches of {batch_size}) on {device} → {path}")
    start = time.perf_counter()
    write_table(path, (len(texts), text_encoder.dim),
                lambda table: text_encoder.encode_into(table, texts, dtype=dtype, batch_size=batch_size,
                                                       chunk_size=chunk_size,
                                                       progress=bool(setting(config, "show_progress"))))
    seconds = time.perf_counter() - start
    write_json(path.with_suffix(".json"), {
        "version": CACHE_VERSION, "dataset": name, "items": len(texts), "dim": text_encoder.dim,
        "encoded": n_texts, "without_text": len(texts) - 1 - n_texts, "fields": list(fields),
        "plm_name": setting(config, "plm_name"), "encoder": str(folder), "encoder_sha256": fingerprint,
        "pooling": pooling, "max_length": max_length, "dtype": dtype, "bf16_min_cosine": cosine,
        "batch_size": batch_size, "chunk_size": chunk_size, "device": str(device), "seconds": round(seconds, 3),
        "items_per_s": round(n_texts / seconds, 1) if seconds > 0 else None, "key": key,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    logger.info(f"item text embeddings: {n_texts} items in {seconds:.1f} s ({n_texts / max(seconds, 1e-9):.0f} "
                f"items/s) → {path}")
    return path


def item_embeddings(config, dataset) -> torch.Tensor:
    """The item embedding table of ``dataset``: a (n_items, d) ``torch.float32`` tensor in memory, row ``i`` =
    internal item id ``i``; row 0 (padding) and items without text are zeros. Encodes on a cache miss."""
    path = ensure_item_embeddings(config, dataset)
    return torch.from_numpy(np.array(load_table(path, len(dataset.item_attributes))))
