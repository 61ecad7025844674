"""Recformer's item tokens: every item's key-value attributes tokenised once, and the model inputs built from them.

Recformer (Li et al., KDD'23, "Text Is All You Need") reads an item as its ordered attributes, each one the
tokens of its key followed by the tokens of its value::

    {"title": "Sanding roll", "brand": "PORTER-CABLE"}  →  title Sanding roll brand PORTER - CABLE
    token types                                         →  1     2       2    1     2     2 2

* At most ``max_attr_num`` attributes per item (default 3): the first ones, in the ``recformer_attributes``
  order, that the item has (a missing or blank value is no attribute).
* Each attribute (key and value together) is cut to ``max_attr_length`` tokens (default 32).
* No special tokens inside an item; keys are tokenised as their text (``"title"``).

:class:`ItemTokens` holds the whole catalogue flat: item ``i``'s block is ``tokens[offsets[i]:offsets[i + 1]]``
(empty for the padding id 0 and for items with none of the attributes). :func:`item_tokens` builds it on a
cache miss (one batched fast-tokenizer call per attribute key and chunk of items) and otherwise loads it.

Model inputs (:func:`sequence_inputs`, every training step, so vectorised: no Python loop over rows, items or
tokens): ``[CLS]`` followed by the history's items **most recent first**, with no separator between items, at
most ``max_item_num`` items (the most recent) and at most ``max_token_num`` tokens in all ([CLS] included);
a longer input loses its oldest tokens, i.e. the end of the most-recent-first list (the oldest kept item may be
cut inside). Per token:

* ``input_ids``: token ids; padding is the tokenizer's pad id;
* ``token_type_ids``: 0 [CLS], 1 key, 2 value, 3 padding;
* ``item_position_ids``: 0 for [CLS] and padding, ``k`` for every token of the ``k``-th most recent item (the
  most recent item is 1; an item without text still takes its number);
* ``attention_mask``: 1 for [CLS] and item tokens, 0 for padding;
* ``global_attention_mask``: 1 only at [CLS] (Longformer's global attention).

A row with an empty history (``item_seq_len`` 0) is ``[CLS]`` alone: an input with nothing in it, which the model
should keep out of training. :func:`item_inputs` gives an item's own input (used to encode the item table):
``[CLS]`` + its tokens, item position 1, cut to ``max_token_num``.

Cache: ``cache_dir(config)/<dataset>-tokens-<key[:32]>.npz`` (an ``np.savez`` archive, loaded with
``allow_pickle=False``) and an informational ``.json`` beside it. The key is a SHA-256 over the tokenizer's files
(vocabulary, ``tokenizer.json``, its config, special tokens, merges: whichever exist; not the model's weights),
every item's attribute values in id order, the keys in their order, ``max_attr_num``, ``max_attr_length`` and
:data:`FORMAT_VERSION`. The archive is written to a temporary file that is renamed into place only when
complete, so an interrupted write leaves no cache to read; an unreadable archive is rebuilt.

Settings: ``recformer_attributes`` (a list, or names separated by commas or spaces; ``~`` = all of the
dataset's attributes, in file order), ``max_attr_num``, ``max_attr_length``, ``plm_name`` (whose tokenizer;
``~`` = the packaged all-MiniLM-L6-v2), ``text_cache_dir``, ``show_progress``.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from recbole_text.data.atomic import atomic_path
from recbole_text.text import cache as text_cache
from recbole_text.text.cache import _digest, cache_dir, writable_cache_dir, write_json
from recbole_text.text.encoder import EncoderNotFoundError, files_fingerprint, resolve_encoder

FORMAT_VERSION = 1
CHUNK_SIZE = 8192  # values tokenised per tokenizer call
CLS_TYPE, KEY_TYPE, VALUE_TYPE, PAD_TYPE = 0, 1, 2, 3
DEFAULTS = {"max_attr_num": 3, "max_attr_length": 32, "recformer_attributes": None}
# the files a Hugging Face tokenizer is read from (the model's weights and config are not among them)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
INPUT_NAMES = ("input_ids", "token_type_ids", "item_position_ids", "attention_mask", "global_attention_mask")

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ItemTokens:
    """The catalogue's tokens, flat. ``tokens`` and ``types`` (1 key, 2 value) are (T,) int64; ``offsets``
    (n_items + 1,) int64: item ``i``'s block is ``tokens[offsets[i]:offsets[i + 1]]``. ``cls_id``/``pad_id``:
    the tokenizer's [CLS] (or BOS) and padding ids."""

    tokens: torch.Tensor
    types: torch.Tensor
    offsets: torch.Tensor
    cls_id: int
    pad_id: int

    def __post_init__(self):
        if self.tokens.shape != self.types.shape or self.tokens.dim() != 1 or self.offsets.dim() != 1:
            raise ValueError(f"ItemTokens: tokens {tuple(self.tokens.shape)} and types {tuple(self.types.shape)} "
                             f"must be the same 1-d shape, offsets {tuple(self.offsets.shape)} 1-d")
        if len(self.offsets) < 1 or int(self.offsets[0]) != 0 or int(self.offsets[-1]) != len(self.tokens):
            raise ValueError("ItemTokens: offsets must start at 0 and end at the number of tokens")

    @property
    def n_items(self) -> int:
        """Items, the padding id 0 included."""
        return len(self.offsets) - 1

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def lengths(self) -> torch.Tensor:
        """(n_items,) tokens per item."""
        return self.offsets[1:] - self.offsets[:-1]

    def block(self, item_id: int) -> tuple[list[int], list[int]]:
        """Item ``item_id``'s token ids and types as lists (for inspection and tests)."""
        start, end = int(self.offsets[item_id]), int(self.offsets[item_id + 1])
        return self.tokens[start:end].tolist(), self.types[start:end].tolist()

    def to(self, device) -> ItemTokens:
        """The same tokens on ``device`` (``self`` when they are already there)."""
        device = torch.device(device)
        if self.tokens.device == device:
            return self
        return dataclasses.replace(self, tokens=self.tokens.to(device), types=self.types.to(device),
                                   offsets=self.offsets.to(device))


# ---------------------------------------------------------------------------------------------------- settings

def setting(config, key: str):
    """``config[key]``, or the default (here for the Recformer keys, else :func:`recbole_text.text.cache.setting`'s)
    when the key is missing or ``~``."""
    if key not in DEFAULTS:
        return text_cache.setting(config, key)
    value = config[key] if key in config else None
    return DEFAULTS[key] if value is None else value


def attribute_keys(config, dataset) -> list[str]:
    """The ``recformer_attributes`` setting checked against the dataset's attributes; ``~`` = all, in file order
    (the rules of :func:`recbole_text.text.texts.text_fields`)."""
    from recbole_text.text.texts import chosen_attributes

    return chosen_attributes(dataset, setting(config, "recformer_attributes"), "recformer_attributes", "Recformer's inputs")


def _limits(max_attr_num, max_attr_length) -> tuple[int, int]:
    max_attr_num, max_attr_length = int(max_attr_num), int(max_attr_length)
    if max_attr_num < 1 or max_attr_length < 1:
        raise ValueError(f"max_attr_num={max_attr_num} and max_attr_length={max_attr_length} must be ≥ 1")
    return max_attr_num, max_attr_length


# -------------------------------------------------------------------------------------------------- tokenising

def load_tokenizer(folder):
    """The fast Hugging Face tokenizer of ``folder``, offline."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except (OSError, ValueError) as e:
        raise EncoderNotFoundError(f"the tokenizer at {folder} could not be loaded: {e}") from None


def special_ids(tokenizer) -> tuple[int, int]:
    """``(cls_id, pad_id)``: [CLS] (or BOS when there is no [CLS]) and the padding id (0 when there is none)."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if cls_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a [CLS] nor a BOS token")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return int(cls_id), int(pad_id)


def attribute_values(attributes: Sequence[Mapping[str, str]], keys: Sequence[str]) -> list[list[str]]:
    """``values[i][k]``: item ``i``'s stripped value of ``keys[k]``, ``""`` when it has none."""
    return [[str(item.get(key, "") or "").strip() for key in keys] for item in attributes]


def tokenize_items(tokenizer, attributes: Sequence[Mapping[str, str]], keys: Sequence[str], *,
                   max_attr_num: int = 3, max_attr_length: int = 32, chunk_size: int = CHUNK_SIZE,
                   progress: bool = False) -> ItemTokens:
    """Tokenise the catalogue: ``attributes[i]`` is item ``i``'s ``{key: value}`` (``attributes[0]``, the
    padding id, is normally empty). ``keys`` fixes which attributes are read and their order.

    Items are processed ``chunk_size`` at a time: one batched tokenizer call per key and chunk, without special
    tokens, each value cut to what is left of ``max_attr_length`` after its key's tokens; each chunk's tokens
    become one NumPy array, so Python lists only ever hold one chunk."""
    from tqdm import tqdm

    max_attr_num, max_attr_length = _limits(max_attr_num, max_attr_length)
    keys = list(keys)
    values = attribute_values(attributes, keys)
    chosen = [[k for k, value in enumerate(row) if value][:max_attr_num] for row in values]
    key_ids = tokenizer(keys, add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"] if keys else []
    key_ids = [ids[:max_attr_length] for ids in key_ids]
    lengths = np.zeros(len(attributes), dtype=np.int64)
    token_parts: list[np.ndarray] = []  # one array per chunk of items: Python lists never hold the catalogue
    type_parts: list[np.ndarray] = []
    with tqdm(total=sum(map(len, chosen)), desc="item tokens", unit="value", disable=not progress,
              dynamic_ncols=True) as bar:
        for start in range(0, len(attributes), chunk_size):
            rows = range(start, min(start + chunk_size, len(attributes)))
            value_ids: list[dict[int, list[int]]] = []  # value_ids[k][item] = its value's tokens, this chunk
            for k, name in enumerate(key_ids):
                items = [i for i in rows if k in chosen[i]]
                room = max_attr_length - len(name)
                ids = tokenizer([values[i][k] for i in items], add_special_tokens=False, truncation=True,
                                max_length=room, return_attention_mask=False,
                                return_token_type_ids=False)["input_ids"] if items and room > 0 else []
                value_ids.append(dict(zip(items, ids)))  # room ≤ 0: the key alone fills the attribute
                bar.update(len(items))
            tokens: list[int] = []
            segments: list[int] = []  # lengths of the chunk's key and value runs, alternating
            for i in rows:
                for k in chosen[i]:
                    value = value_ids[k].get(i, [])
                    tokens += key_ids[k]
                    tokens += value
                    segments += (len(key_ids[k]), len(value))
                    lengths[i] += len(key_ids[k]) + len(value)
            token_parts.append(np.asarray(tokens, dtype=np.int64))
            type_parts.append(np.repeat(np.tile([KEY_TYPE, VALUE_TYPE], len(segments) // 2), segments))
    offsets = np.zeros(len(attributes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat_tokens = np.concatenate(token_parts) if token_parts else np.zeros(0, dtype=np.int64)
    flat_types = np.concatenate(type_parts).astype(np.int64) if type_parts else np.zeros(0, dtype=np.int64)
    cls_id, pad_id = special_ids(tokenizer)
    return ItemTokens(torch.from_numpy(flat_tokens), torch.from_numpy(flat_types), torch.from_numpy(offsets),
                      cls_id, pad_id)


# ------------------------------------------------------------------------------------------------------- cache

def tokenizer_fingerprint(folder) -> str:
    """SHA-256 over the tokenizer files of ``folder`` (name, size and bytes of each of :data:`TOKENIZER_FILES`
    that exists). Model weights are not read: they do not change the tokens."""
    root = Path(folder)
    files = [root / name for name in TOKENIZER_FILES if (root / name).is_file()]
    if not files:
        raise EncoderNotFoundError(f"{root} holds no tokenizer files (none of {', '.join(TOKENIZER_FILES)})")
    return files_fingerprint(root, files)


def tokens_key(values: Sequence[Sequence[str]], keys: Sequence[str], fingerprint: str, max_attr_num: int,
               max_attr_length: int) -> str:
    """SHA-256 (hex) naming the tokens of these attribute values (``values[i][k]``, internal id order)."""
    params = {"version": FORMAT_VERSION, "tokenizer": fingerprint, "keys": list(keys),
              "max_attr_num": int(max_attr_num), "max_attr_length": int(max_attr_length), "items": len(values)}
    return _digest(params, (value for row in values for value in row))


def save_item_tokens(path, tokens: ItemTokens) -> None:
    """Write ``tokens`` to ``path`` (``.npz``) atomically: a temporary file beside it, renamed when complete."""
    if len(tokens.tokens) and int(tokens.tokens.max()) >= 2 ** 31:
        raise ValueError("token ids beyond int32")
    with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as f:
        np.savez(f, tokens=tokens.tokens.cpu().numpy().astype(np.int32),
                 types=tokens.types.cpu().numpy().astype(np.int8),
                 offsets=tokens.offsets.cpu().numpy().astype(np.int64),
                 special=np.array([tokens.cls_id, tokens.pad_id], dtype=np.int64))


def load_item_tokens(path, n_items: int | None = None) -> ItemTokens:
    """Read an archive written by :func:`save_item_tokens` (``allow_pickle=False``); ``ValueError`` if it is not
    a complete one (for ``n_items`` items when given)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: not an .npz archive")
        with archive:
            arrays = {name: archive[name] for name in ("tokens", "types", "offsets", "special")}
    except (KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: incomplete item token archive ({type(e).__name__}: {e})") from None
    tokens, types, offsets, special = (arrays[n] for n in ("tokens", "types", "offsets", "special"))
    expected = {"tokens": np.int32, "types": np.int8, "offsets": np.int64, "special": np.int64}
    for name, dtype in expected.items():
        if arrays[name].dtype != dtype or arrays[name].ndim != 1:
            raise ValueError(f"{path}: {name} is {arrays[name].dtype} {arrays[name].shape}, expected 1-d {dtype}")
    if n_items is not None and len(offsets) != n_items + 1:
        raise ValueError(f"{path}: {len(offsets) - 1} items, expected {n_items}")
    if (len(special) != 2 or len(tokens) != len(types) or not len(offsets) or offsets[0] != 0
            or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 0)
            or not np.isin(types, (KEY_TYPE, VALUE_TYPE)).all()):
        raise ValueError(f"{path}: inconsistent item token archive")
    return ItemTokens(torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(types.astype(np.int64)),
                      torch.from_numpy(offsets), int(special[0]), int(special[1]))


def item_tokens(config, dataset, tokenizer_folder=None, *, chunk_size: int = CHUNK_SIZE) -> ItemTokens:
    """The catalogue's :class:`ItemTokens` under ``config``'s Recformer settings, from the cache; tokenises (and
    caches) on a miss. ``tokenizer_folder``: the tokenizer's folder, default ``plm_name``'s
    (:func:`~recbole_text.text.encoder.resolve_encoder`)."""
    max_attr_num, max_attr_length = _limits(setting(config, "max_attr_num"), setting(config, "max_attr_length"))
    keys = attribute_keys(config, dataset)
    folder = Path(tokenizer_folder) if tokenizer_folder is not None else resolve_encoder(setting(config, "plm_name"))
    attributes = dataset.item_attributes
    values = attribute_values(attributes, keys)
    key = tokens_key(values, keys, tokenizer_fingerprint(folder), max_attr_num, max_attr_length)
    path = cache_dir(config) / f"{dataset.dataset_name}-tokens-{key[:32]}.npz"
    if path.is_file():
        try:
            tokens = load_item_tokens(path, len(attributes))
            logger.info(f"item tokens: cache hit {path}")
            return tokens
        except (OSError, ValueError) as e:
            logger.warning(f"item tokens: {path} is unreadable ({e}); tokenising again")
    start = time.perf_counter()
    tokens = tokenize_items(load_tokenizer(folder), attributes, keys, max_attr_num=max_attr_num,
                            max_attr_length=max_attr_length, chunk_size=chunk_size,
                            progress=bool(setting(config, "show_progress")))
    seconds = time.perf_counter() - start
    writable_cache_dir(config)
    save_item_tokens(path, tokens)
    lengths = tokens.lengths()[1:]
    empty = [i + 1 for i in torch.nonzero(lengths == 0).flatten().tolist()]
    if empty:
        named = ", ".join(map(str, dataset.id2token(dataset.iid_field, empty[:5])))
        logger.warning(f"item tokens: {len(empty)} of {len(lengths)} items have none of {keys} (e.g. {named}"
                       f"{', …' if len(empty) > 5 else ''}); their blocks are empty")
    record = {"version": FORMAT_VERSION, "dataset": dataset.dataset_name, "items": len(attributes),
              "tokens": len(tokens.tokens), "without_text": len(empty), "keys": keys, "max_attr_num": max_attr_num,
              "max_attr_length": max_attr_length, "tokenizer": str(folder), "cls_id": tokens.cls_id,
              "pad_id": tokens.pad_id, "mean_tokens": round(float(lengths.float().mean()), 2) if len(lengths) else 0,
              "max_tokens": int(lengths.max()) if len(lengths) else 0, "seconds": round(seconds, 3), "key": key,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(path.with_suffix(".json"), record)
    logger.info(f"item tokens: {len(attributes) - 1} items, {len(tokens.tokens)} tokens in {seconds:.1f} s → {path}")
    return tokens


# ------------------------------------------------------------------------------------------------ model inputs

def sequence_inputs(tokens: ItemTokens, item_seq: torch.Tensor, item_seq_len: torch.Tensor, max_token_num: int,
                    max_item_num: int) -> dict[str, torch.Tensor]:
    """Recformer's inputs for a batch of histories (see the module docs): ``item_seq`` (B, L) item ids,
    left-aligned, oldest → newest, ``item_seq_len`` (B,) their lengths. Returns :data:`INPUT_NAMES` → (B, W)
    int64 tensors on ``item_seq``'s device, W the longest row (≤ ``max_token_num``). ``tokens`` is moved to that
    device if it is elsewhere (move it once with :meth:`ItemTokens.to` instead)."""
    max_token_num, max_item_num = int(max_token_num), int(max_item_num)
    if max_token_num < 1 or max_item_num < 0:
        raise ValueError(f"max_token_num={max_token_num} must be ≥ 1 and max_item_num={max_item_num} ≥ 0")
    if item_seq.dim() != 2:
        raise ValueError(f"item_seq must be (B, L), got {tuple(item_seq.shape)}")
    device = item_seq.device
    tokens = tokens.to(device)
    batch, length = item_seq.shape
    slots = min(length, max_item_num)  # item k (0 = most recent) of each row
    seq_len = item_seq_len.to(device=device, dtype=torch.int64).clamp(0, length)
    slot = torch.arange(slots, device=device)
    present = slot[None, :] < seq_len.clamp(max=slots)[:, None]  # (B, K)
    where = (seq_len[:, None] - 1 - slot[None, :]).clamp(min=0)
    ids = torch.gather(item_seq.to(torch.int64), 1, where).masked_fill(~present, 0).reshape(-1)  # newest first
    starts = tokens.offsets.index_select(0, ids)  # (B * K,), flat: slot k of row b is b * K + k
    counts = (tokens.offsets.index_select(0, ids + 1) - starts).masked_fill(~present.reshape(-1), 0)
    before = (counts.view(batch, slots).cumsum(1) - counts.view(batch, slots)).reshape(-1)  # tokens of newer items
    kept = torch.minimum(counts, (max_token_num - 1 - before).clamp(min=0))  # the oldest tokens are cut
    row_len = 1 + kept.view(batch, slots).sum(1)
    # one host sync (on a GPU) for the width and the number of item tokens
    width, total = torch.stack([row_len.max(), row_len.sum() - batch]).tolist() if batch else (1, 0)
    real = torch.arange(width, device=device)[None, :] < row_len[:, None]
    input_ids = torch.full((batch, width), tokens.pad_id, dtype=torch.int64, device=device)
    types = torch.full((batch, width), PAD_TYPE, dtype=torch.int64, device=device)
    positions = torch.zeros((batch, width), dtype=torch.int64, device=device)
    input_ids[:, 0] = tokens.cls_id
    types[:, 0] = CLS_TYPE
    if total:
        # index_select / index_copy_ / index_add_ rather than tensor[index], torch.repeat_interleave or
        # searchsorted: on the CPU those split ~30k elements over the torch threads and, on a loaded 2-core
        # machine, waited ~8 ms each for the other thread; these run such sizes on one thread in ~0.05 ms
        ends = kept.cumsum(0)
        pair = torch.zeros(total + 1, dtype=torch.int64, device=device)  # each output token's (row, slot)
        pair.index_add_(0, ends, torch.ones_like(ends))
        pair = pair[:total].cumsum(0)  # = repeat_interleave(arange(B * K), kept)
        within = torch.arange(total, device=device) - (ends - kept).index_select(0, pair)
        source = starts.index_select(0, pair) + within
        target = (pair // slots) * width + 1 + before.index_select(0, pair) + within  # flat (row, column)
        input_ids.view(-1).index_copy_(0, target, tokens.tokens.index_select(0, source))
        types.view(-1).index_copy_(0, target, tokens.types.index_select(0, source))
        positions.view(-1).index_copy_(0, target, pair % slots + 1)
    global_mask = torch.zeros((batch, width), dtype=torch.int64, device=device)
    global_mask[:, 0] = 1
    return {"input_ids": input_ids, "token_type_ids": types, "item_position_ids": positions,
            "attention_mask": real.to(torch.int64), "global_attention_mask": global_mask}


def input_widths(tokens: ItemTokens, item_seq: torch.Tensor, item_seq_len: torch.Tensor, max_token_num: int,
                 max_item_num: int) -> torch.Tensor:
    """(B,) the real tokens of each row's :func:`sequence_inputs` ([CLS] included, = its ``attention_mask``
    sum), without building them: what a batch of these rows is padded to (``group_by_length``)."""
    length = item_seq.shape[1]
    seq_len = item_seq_len.to(torch.int64).clamp(0, length)
    position = torch.arange(length, device=item_seq.device)[None, :]
    recent = (position < seq_len[:, None]) & (position >= (seq_len - int(max_item_num))[:, None])
    ids = item_seq.to(torch.int64).masked_fill(~recent, 0)  # what lies past a row's length is never read
    item_tokens = tokens.lengths().to(item_seq.device).index_select(0, ids.reshape(-1)).view_as(ids).sum(1)
    return 1 + item_tokens.clamp(max=int(max_token_num) - 1)


def item_inputs(tokens: ItemTokens, item_ids: torch.Tensor, max_token_num: int) -> dict[str, torch.Tensor]:
    """Each item's own input: ``[CLS]`` + its tokens (item position 1), cut to ``max_token_num``; ``item_ids``
    (N,) → the same (N, W) dict as :func:`sequence_inputs`. Item 0 (padding) and items without text give
    ``[CLS]`` alone."""
    item_ids = item_ids.reshape(-1, 1)
    ones = torch.ones(len(item_ids), dtype=torch.int64, device=item_ids.device)
    return sequence_inputs(tokens, item_ids, ones, max_token_num, 1)


__all__ = ["ItemTokens", "attribute_keys", "input_widths", "item_inputs", "item_tokens", "load_item_tokens",
           "save_item_tokens", "sequence_inputs", "tokenize_items", "tokenizer_fingerprint", "tokens_key"]
