"""Top-k recommendations from a trained checkpoint: ``recommend()``, :class:`Recommender` and a small CLI.

::

    import recbole_text
    recbole_text.recommend("saved/gSASRec-....pth", history=["i1", "i2", "i3"], k=10)
    # [{"rank": 1, "item": "i4", "score": 7.31, "attributes": {"title": "...", "brand": "..."}}, ...]

    from recbole_text.recommend import Recommender
    rec = Recommender.from_checkpoint("saved/gSASRec-....pth")      # rebuilds the model once
    rec.recommend(["i1", "i2"], k=5)
    rec.recommend_many([["i1", "i2"], ["i7"]], k=5)                  # one batched forward pass per chunk

    python -m recbole_text.recommend --checkpoint saved/X.pth --history "i1 i2 i3" --k 10 [--json]

How the model comes back: the checkpoint (loaded with ``weights_only=True``) records the model name, the dataset
name and ``settings``, every configuration layer above RecBole's defaults. ``build_job`` rebuilds the same
config from them, then the **dataset from its atomic files** (the folder recorded in ``settings["data_path"]``,
or ``data_path=`` when the data moved), and the model on it (its vocabularies, hence its embedding tables, come
from those files); the saved weights are loaded into it and it is put in eval mode. Nothing is trained and
nothing is unpickled. Building the dataset is most of the start-up cost, so score many histories with one
:class:`Recommender`; ``recommend()`` builds one per call.

Scoring is the model's own ``full_sort_predict`` on an :class:`~recbole.data.interaction.Interaction` shaped
like one row of RecBole's evaluation data: ``item_id_list`` (the history's internal ids, left-aligned, padded
with 0 to ``MAX_ITEM_LIST_LENGTH``) and ``item_length``. That is what this package's models (gSASRec, SeqSASRec,
SeqGRU4Rec) and RecBole's sequential built-ins read (SASRec, GRU4Rec, BERT4Rec, NARM, ...). A history longer
than ``MAX_ITEM_LIST_LENGTH`` keeps its most recent items, as RecBole's own rows do. BERT4Rec appends its mask
token inside ``full_sort_predict`` (dropping the oldest item of a full-length row to make room), so it gets the
same input as in RecBole's evaluation. Models whose scoring needs a user id (FPMC, Caser, HGN, ...) or
other fields cannot score an anonymous history: they are refused with one error naming the field.

The result: for each history a list of ``k`` dicts, best first::

    {"rank": 1,             # 1-based
     "item": "i4",          # the item's token in the atomic files
     "score": 7.31,         # the model's full_sort_predict score (a float; higher is better)
     "attributes": {...}}   # its key-value text from <dataset>.itemtext ({} when it has none)

The padding item is never returned; the history's items are left out unless ``exclude_seen=False``; ``k``
larger than the catalogue returns every (remaining) item.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import re
import shutil
import sys
import types
import unicodedata
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

from recbole_text import compat  # noqa: F401  (before any RecBole import)
from recbole_text.compat import CheckpointError

MAX_NAMED_TOKENS = 10  # unknown tokens named in one error message
DEFAULT_BATCH_SIZE = 256


class RecommendError(ValueError):
    """A request ``recommend()`` cannot answer (empty history, bad ``k``, a model that cannot score one)."""


class UnknownItemError(RecommendError):
    """History tokens that are not items of the checkpoint's dataset (``.tokens`` lists them all)."""

    def __init__(self, message: str, tokens: list[str]):
        super().__init__(message)
        self.tokens = tokens


def parse_history(text: str) -> list[str]:
    """``"i1 i2,i3"`` → ``["i1", "i2", "i3"]``: tokens separated by whitespace and/or commas."""
    return [token for token in re.split(r"[\s,]+", text.strip()) if token]


def _quoted(tokens: Sequence[str], limit: int = MAX_NAMED_TOKENS) -> str:
    shown = ", ".join(repr(t) for t in tokens[:limit])
    return shown + (f" (and {len(tokens) - limit} more)" if len(tokens) > limit else "")


def _settings_data_path(data_path, dataset: str) -> str:
    """``data_path`` as RecBole's ``--data_path`` means it, the folder that holds ``<dataset>/``; the dataset
    folder itself is accepted too."""
    folder = Path(data_path).expanduser().resolve()
    if not (folder / dataset).is_dir() and folder.name == dataset and folder.is_dir():
        folder = folder.parent
    return str(folder)


def _read_checkpoint(path) -> dict:
    """The checkpoint, checked for what a rebuild needs; one :class:`CheckpointError` naming the file."""
    from recbole_text.compat import load_checkpoint

    path = str(path)
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive; anything else (random bytes, a text file, a legacy pickle) is not ours
        raise CheckpointError(f"{path}: not a recbole_text checkpoint (not a torch.save archive)")
    checkpoint = load_checkpoint(path, map_location="cpu")
    if not isinstance(checkpoint.get("settings"), dict) or not checkpoint.get("dataset"):
        raise CheckpointError(
            f"{path}: this checkpoint records no 'settings' (it was saved by an older recbole_text), so its "
            f"{checkpoint.get('model')} model cannot be rebuilt for recommendations; train it again to get a "
            "checkpoint that can"
        )
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: the checkpoint holds no 'state_dict' (model weights)")
    return checkpoint


@contextlib.contextmanager
def _caller_random_state():
    """Keep the caller's random generators: ``build_job`` seeds Python's, NumPy's and torch's with the
    checkpoint's ``seed`` (as training does), which a library call should not leave behind."""
    import random

    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class Recommender:
    """A trained sequential model with its item vocabulary and item text, ready to rank items after a history.

    Build it with :meth:`from_checkpoint`. Attributes: ``model`` (in eval mode), ``config``, ``model_name``,
    ``dataset_name``, ``checkpoint`` (the file), ``device``, ``max_length`` (``MAX_ITEM_LIST_LENGTH``),
    ``items`` (internal id → token; index 0 is padding), ``item_attributes`` (internal id → ``{key: value}``),
    ``attribute_keys`` (the ``.itemtext`` columns) and ``n_items`` (the catalogue, padding not counted).
    """

    def __init__(self, model, config, dataset, checkpoint: str | None = None):
        self.model = model.eval()
        self.config = config
        self.checkpoint = checkpoint
        self.model_name = str(config["model"])
        self.dataset_name = str(config["dataset"])
        self.data_folder = str(config["data_path"])
        self.device = config["device"]
        self.item_field = dataset.iid_field
        self.items: list[str] = [str(t) for t in dataset.field2id_token[self.item_field]]
        self._ids = {token: index for index, token in enumerate(self.items) if index > 0}
        attributes = getattr(dataset, "item_attributes", None)  # only the text dataset has them
        self.item_attributes: list[dict] = (
            [dict(a) for a in attributes] if attributes is not None else [{} for _ in self.items])
        self.attribute_keys: list[str] = list(getattr(dataset, "item_text_keys", None) or [])
        self.max_length = int(getattr(model, "max_seq_length", None) or config["MAX_ITEM_LIST_LENGTH"])
        self.seq_field = getattr(model, "ITEM_SEQ", self.item_field + config["LIST_SUFFIX"])
        self.len_field = getattr(model, "ITEM_SEQ_LEN", config["ITEM_LIST_LENGTH_FIELD"])
        self._dataset = dataset
        self.catalogue_size = len(self.items)  # what the model scores (with padding); added items come after
        self.added_features = None  # what the model scores the items of add_items from, (n_added, …)

    @property
    def n_items(self) -> int:
        return len(self.items) - 1

    # --- building -------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path, data_path=None, device=None) -> "Recommender":
        """Rebuild the checkpoint's model on its dataset (built from the atomic files in the recorded data folder,
        or under ``data_path``: the folder that holds ``<dataset>/``, as ``--data_path`` means it) and load its
        weights. ``device`` (``"cpu"``, ``"cuda:0"``, ...) replaces the configured one.

        Raises :class:`~recbole_text.compat.CheckpointError` (not a recbole_text checkpoint, one without
        ``settings``, weights that do not fit the rebuilt model), :class:`RecommendError` (not a sequential
        model) and the dataset's own errors (a missing folder says which one and how to build it)."""
        from recbole.utils import ModelType

        from recbole_text.data.text_dataset import DatasetNotFoundError
        from recbole_text.job import build_job
        from recbole_text.registry import get_model

        path = str(path)
        checkpoint = _read_checkpoint(path)
        model_name, dataset = str(checkpoint["model"]), str(checkpoint["dataset"])
        model_type = getattr(get_model(model_name), "type", None)
        if model_type != ModelType.SEQUENTIAL:
            kind = getattr(model_type, "name", str(model_type)).lower()
            raise RecommendError(f"{path}: {model_name} is a {kind} model; recommendations after a history "
                                 "need a sequential one (e.g. gSASRec, SASRec, GRU4Rec)")
        overrides = {**checkpoint["settings"], "pretrained": None, "show_progress": False,
                     "save_dataset": False, "save_dataloaders": False}
        if data_path is not None:
            overrides["data_path"] = _settings_data_path(data_path, dataset)
        try:
            with _caller_random_state():
                job = build_job(model_name, dataset, config_dict=overrides, loaders=False, with_trainer=False,
                                device=device, log=False)
        except DatasetNotFoundError as e:
            raise DatasetNotFoundError(f"{path}: the checkpoint's dataset cannot be built: {e}") from None
        model = job.model
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as e:  # names or shapes differ: other settings, or the dataset changed since
            details = "; ".join(line.strip() for line in str(e).splitlines()[1:4])
            raise CheckpointError(
                f"{path}: its weights do not fit the {model_name} model rebuilt from its settings on "
                f"{job.config['data_path']} ({details}); has the dataset changed since training?") from None
        model.load_other_parameter(checkpoint.get("other_parameter") or None)
        return cls(model, job.config, job.dataset, checkpoint=path)

    # --- items added at inference time ------------------------------------------------------------------
    def add_items(self, item_text_file) -> list[str]:
        """Add the items of ``item_text_file`` (an ``.itemtext`` atomic file, as in ``dataset/README.md``) to the
        ranking without retraining: a text model (UniSRec) embeds their text with the encoder and settings it was
        trained with (cached like the catalogue's) and scores them like the rest. Returns their tokens.

        They can be recommended, not used in a history (the model has no input vector for them). A token already
        in the catalogue, an item without text in the model's ``text_fields`` or a model that does not read text
        is one :class:`RecommendError` naming the file. Items already added with the same text are skipped.

        The model turns the new items into what it scores them from (``new_item_features``: UniSRec's frozen text
        vectors, Recformer's encodings) and scores them with the catalogue in ``full_sort_predict_with_new_items``."""

        import torch

        from recbole_text.data.atomic import read_item_text

        path = Path(item_text_file)
        if not hasattr(self.model, "new_item_features"):
            raise RecommendError(f"{path}: {self.model_name} ranks only the items it was trained on; items added "
                                 "from their text need a text model (e.g. UniSRec, Recformer)")
        if not path.is_file():
            raise RecommendError(f"{path}: no such item text file")
        _, by_token = read_item_text(path, self.item_field)
        added = dict(zip(self.items[self.catalogue_size:], self.item_attributes[self.catalogue_size:]))
        by_token = {t: a for t, a in by_token.items() if added.get(t) != a}  # adding the same item again: no-op
        known = [token for token in by_token if token in self._ids or token in added]
        if known:
            raise RecommendError(f"{path}: item token{'s' if len(known) > 1 else ''} {_quoted(known)} already in "
                                 f"the catalogue of {self.dataset_name!r}")
        tokens = list(by_token)
        if not tokens:
            return []
        try:
            features = self.model.new_item_features(self.config, self._dataset, [by_token[t] for t in tokens])
        except ValueError as e:  # items without the text the model reads
            raise RecommendError(f"{path}: {e}") from None
        self.added_features = features if self.added_features is None else torch.cat([self.added_features, features])
        self.items += tokens
        self.item_attributes += [dict(by_token[token]) for token in tokens]
        return tokens

    # --- input ----------------------------------------------------------------------------------------
    def item_ids(self, histories: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token histories → internal id lists; every unknown token of every history in one error."""
        unknown: list[str] = []
        out = []
        for history in histories:
            ids = []
            for token in history:
                index = self._ids.get(str(token))
                if index is None:
                    if str(token) not in unknown:
                        unknown.append(str(token))
                else:
                    ids.append(index)
            out.append(ids)
        added = [token for token in unknown if token in self.items[self.catalogue_size:]]
        if added:
            raise RecommendError(f"item{'s' if len(added) > 1 else ''} {_quoted(added)} were added at inference "
                                 "time: they can be recommended, not used in a history (the model has no input "
                                 "vector for them)")
        if unknown:
            examples = ", ".join(repr(t) for t in self.items[1:4])
            raise UnknownItemError(
                f"unknown item token{'s' if len(unknown) > 1 else ''} {_quoted(unknown)}: not in dataset "
                f"{self.dataset_name!r} ({self.n_items} items, e.g. {examples}; {self.data_folder})", unknown)
        return out

    @staticmethod
    def _histories(histories) -> list[list[str]]:
        out = []
        for i, history in enumerate(histories):
            tokens = parse_history(history) if isinstance(history, str) else [str(t) for t in history]
            if not tokens:
                raise RecommendError("empty history: give at least one item token" if i == 0 and len(histories) == 1
                                     else f"history {i} is empty: give at least one item token")
            out.append(tokens)
        if not out:
            raise RecommendError("no histories given")
        return out

    # --- scoring --------------------------------------------------------------------------------------
    def scores(self, id_lists: Sequence[Sequence[int]]):
        """The model's ``full_sort_predict`` for internal id histories: a (len(id_lists), n_items + 1) CPU tensor
        (column 0 is padding; items added by :meth:`add_items` come last). Each history keeps its ``max_length``
        most recent items."""
        import torch
        from recbole.data.interaction import Interaction

        rows = len(id_lists)
        seq = torch.zeros(rows, self.max_length, dtype=torch.long)
        lengths = torch.zeros(rows, dtype=torch.long)
        for row, ids in enumerate(id_lists):
            recent = list(ids)[-self.max_length:]
            seq[row, :len(recent)] = torch.as_tensor(recent, dtype=torch.long)
            lengths[row] = len(recent)
        batch = Interaction({self.seq_field: seq, self.len_field: lengths}).to(self.device)
        try:
            with torch.no_grad():
                if self.added_features is None:
                    scores = self.model.full_sort_predict(batch)
                else:  # the catalogue and the added items from one encoding of the histories
                    scores = self.model.full_sort_predict_with_new_items(batch, self.added_features)
        except KeyError as e:
            if not (e.args and isinstance(e.args[0], str)) or e.args[0] in batch:
                raise
            raise RecommendError(
                f"{self.model_name} cannot rank items after a bare history: its full_sort_predict reads the field "
                f"{e.args[0]!r}, and a history gives only {self.seq_field!r} and {self.len_field!r} (models that "
                "need a user id, such as FPMC or Caser, are not supported)") from None
        except NotImplementedError:
            raise RecommendError(f"{self.model_name} has no full_sort_predict: it cannot rank the catalogue") from None
        scores = scores.detach().reshape(rows, -1).float().cpu()
        if scores.shape[1] != len(self.items):
            raise RecommendError(f"{self.model_name}'s full_sort_predict gave {scores.shape[1]} scores per history, "
                                 f"expected one per item ({len(self.items)} with padding)")
        return scores

    def _top(self, scores, ids: Sequence[int], k: int, exclude_seen: bool) -> list[dict]:
        import torch

        allowed = torch.ones(scores.shape[0], dtype=torch.bool)
        allowed[0] = False  # padding
        if exclude_seen and len(ids):
            allowed[torch.as_tensor(list(ids), dtype=torch.long)] = False
        candidates = allowed.nonzero().squeeze(1)
        values, order = scores[candidates].topk(min(k, len(candidates)))
        return [{"rank": rank, "item": self.items[item], "score": float(value),
                 "attributes": dict(self.item_attributes[item])}
                for rank, (value, item) in enumerate(zip(values.tolist(), candidates[order].tolist()), start=1)]

    # --- API ------------------------------------------------------------------------------------------
    def recommend(self, history: Sequence[str] | str, k: int = 10, exclude_seen: bool = True) -> list[dict]:
        """The top ``k`` items after ``history`` (item tokens, oldest first; a string is split on whitespace and
        commas), as ``[{"rank", "item", "score", "attributes"}, ...]``, best first (see the module docstring).
        ``exclude_seen=False`` keeps the history's items in the ranking."""
        return self.recommend_many([history], k=k, exclude_seen=exclude_seen)[0]

    def recommend_many(self, histories: Iterable[Sequence[str] | str], k: int = 10, exclude_seen: bool = True,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[dict]]:
        """:meth:`recommend` for several histories, scored ``batch_size`` at a time; one list per history.
        All histories are checked before any is scored (unknown tokens of all of them in one error)."""
        k = _check_k(k)
        if batch_size < 1:
            raise RecommendError(f"batch_size must be at least 1, got {batch_size}")
        histories = list(histories)
        id_lists = self.item_ids(self._histories(histories))
        results = []
        for start in range(0, len(id_lists), batch_size):
            chunk = id_lists[start:start + batch_size]
            scores = self.scores(chunk)
            results += [self._top(scores[row], ids, k, exclude_seen) for row, ids in enumerate(chunk)]
        return results


def _check_k(k) -> int:
    whole = None
    if not isinstance(k, bool):
        try:
            whole = operator.index(k)  # int, NumPy integers
        except TypeError:
            if isinstance(k, float) and k.is_integer():
                whole = int(k)
    if whole is None:
        raise RecommendError(f"k must be a whole number of items, got {k!r}")
    if whole < 1:
        raise RecommendError(f"k must be at least 1, got {whole}")
    return whole


def recommend(checkpoint, history: Sequence[str] | str, k: int = 10, exclude_seen: bool = True,
              data_path=None, device=None, extra_items=None) -> list[dict]:
    """Top-``k`` items after ``history`` from the model in ``checkpoint`` (a path, or a :class:`Recommender`).

    Returns ``[{"rank": 1, "item": token, "score": float, "attributes": {key: value}}, ...]``, best first: the
    item tokens of the dataset's atomic files, the model's ``full_sort_predict`` scores and each item's text from
    ``<dataset>.itemtext`` (``{}`` for an item without text). The history's items are excluded unless
    ``exclude_seen=False``; the padding item never appears; ``k`` beyond the catalogue returns all items.

    The model is rebuilt from the checkpoint's settings on its dataset, which is **built from its atomic files**
    in the data folder recorded at training time (``data_path``: the folder that holds ``<dataset>/`` now, if it
    moved); ``device`` replaces the configured device. That build is the slow part: for many calls, make one
    :class:`Recommender` (``Recommender.from_checkpoint(path)``) and call its ``recommend``/``recommend_many``.

    Errors: :class:`~recbole_text.compat.CheckpointError` (not a recbole_text checkpoint, no ``settings``,
    weights that do not fit), :class:`UnknownItemError` (naming the tokens and the dataset), and
    :class:`RecommendError` (empty history, ``k`` < 1, a model that cannot score a bare history).

    ``extra_items``: an ``.itemtext`` file of items that were not in the training data; a text model embeds
    them with its cached encoder and ranks them with the rest (:meth:`Recommender.add_items`).
    """
    _check_k(k)
    Recommender._histories([history])  # an empty history fails before the (slow) rebuild
    recommender = checkpoint if isinstance(checkpoint, Recommender) else \
        Recommender.from_checkpoint(checkpoint, data_path=data_path, device=device)
    if extra_items is not None:
        recommender.add_items(extra_items)
    return recommender.recommend(history, k=k, exclude_seen=exclude_seen)


# --- command line -------------------------------------------------------------------------------------------
def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _width(text: str) -> int:
    return sum(_char_width(c) for c in text)


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns (with an ellipsis when cut) and padded to it."""
    if _width(text) > width:
        out, used = [], 0
        for char in text:
            w = _char_width(char)
            if used + w > width - 1:
                break
            out.append(char)
            used += w
        text = "".join(out) + ("…" if width >= 1 else "")
    return text + " " * max(width - _width(text), 0)


def _cell(value) -> str:
    return " ".join(str(value).split())  # tabs and newlines of a title would break the row


def _column_widths(natural: list[int], minimum: list[int], available: int) -> list[int]:
    """Shrink the widest columns first until they fit ``available`` (never below ``minimum``)."""
    if sum(natural) <= available:
        return natural
    low, high = 0, max(natural)
    while low < high:  # the largest cap c with sum(min(w, c)) <= available
        cap = (low + high + 1) // 2
        if sum(max(min(w, cap), m) for w, m in zip(natural, minimum)) <= available:
            low = cap
        else:
            high = cap - 1
    return [max(min(w, low), m) for w, m in zip(natural, minimum)]


def format_table(recommendations: list[dict], keys: Sequence[str] = (), width: int | None = None) -> str:
    """rank, item, score, then one column per text attribute; attribute columns share what is left of ``width``
    (default: the terminal's, ``$COLUMNS`` or 80), the widest shrinking first, cut values ending in "…"."""
    width = width or shutil.get_terminal_size((80, 24)).columns
    keys = list(keys)
    for rec in recommendations:  # attribute keys not declared by the .itemtext header, in order of appearance
        keys += [key for key in rec["attributes"] if key not in keys]
    keys = [key for key in keys if any(key in rec["attributes"] for rec in recommendations)]
    fixed_header = ["rank", "item", "score"]
    fixed_rows = [[str(rec["rank"]), _cell(rec["item"]), f"{rec['score']:.4f}"] for rec in recommendations]
    fixed_widths = [max([_width(h)] + [_width(row[i]) for row in fixed_rows]) for i, h in enumerate(fixed_header)]
    attr_rows = [[_cell(rec["attributes"].get(key, "")) for key in keys] for rec in recommendations]
    natural = [max([_width(key)] + [_width(row[i]) for row in attr_rows]) for i, key in enumerate(keys)]
    gap = 2
    available = width - sum(fixed_widths) - gap * (len(fixed_widths) + len(keys) - 1)
    attr_widths = _column_widths(natural, [min(n, max(_width(k), 6)) for n, k in zip(natural, keys)], available)

    def line(fixed: list[str], attrs: list[str]) -> str:
        cells = [fixed[0].rjust(fixed_widths[0]), _fit(fixed[1], fixed_widths[1]), fixed[2].rjust(fixed_widths[2])]
        cells += [_fit(value, w) for value, w in zip(attrs, attr_widths)]
        return (" " * gap).join(cells).rstrip()

    lines = [line(fixed_header, keys)]
    lines += [line(fixed, attrs) for fixed, attrs in zip(fixed_rows, attr_rows)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_text.recommend",
        description="Top-k items after a history, from a trained recbole_text checkpoint (this package's\n"
        "sequential models and RecBole's sequential built-ins). The model is rebuilt from the checkpoint's\n"
        "settings on its dataset, built from the atomic files in the data folder recorded at training time.",
        epilog="example:\n"
        '  python -m recbole_text.recommend --checkpoint saved/gSASRec-X.pth --history "i1 i2 i3" --k 10\n'
        "errors print one line, error: ..., on stderr and exit with status 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, metavar="PTH", help="a checkpoint written by training "
                        "(saved/<Model>-....pth)")
    parser.add_argument("--history", required=True, nargs="+", metavar="ITEMS", help="item tokens as in the "
                        'atomic files, oldest first, separated by spaces or commas ("i1 i2 i3" or i1,i2,i3)')
    parser.add_argument("--k", type=int, default=10, help="how many items. Default: 10 (all items when larger "
                        "than the catalogue)")
    parser.add_argument("--include_seen", action="store_true", help="keep the history's items in the ranking "
                        "(by default they are left out)")
    parser.add_argument("--data_path", default=None, metavar="DIR", help="the folder that now holds "
                        "<dataset>/ (default: the one recorded at training time)")
    parser.add_argument("--extra_items", default=None, metavar="ITEMTEXT", help="an .itemtext file of new items "
                        "to rank with the catalogue, from their text alone (text models such as UniSRec)")
    parser.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: the configured device)")
    parser.add_argument("--json", action="store_true", help="print JSON: a list of {rank, item, score, "
                        "attributes}")
    return parser


def main(argv=None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)  # pandas' notes about RecBole's code, not about this command
    from recbole_text.config import ConfigError
    from recbole_text.data.atomic import AtomicFileError
    from recbole_text.registry import UnknownModelError

    history = [token for text in args.history for token in parse_history(text)]
    try:
        k = _check_k(args.k)
        if not history:
            raise RecommendError("empty history: give at least one item token")
        recommender = Recommender.from_checkpoint(args.checkpoint, data_path=args.data_path, device=args.device)
        if args.extra_items:
            recommender.add_items(args.extra_items)
        result = recommender.recommend(history, k=k, exclude_seen=not args.include_seen)
    except (FileNotFoundError, AtomicFileError, CheckpointError, ConfigError, RecommendError,
            UnknownModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    seen = "included" if args.include_seen else "excluded"
    print(f"{recommender.model_name} on {recommender.dataset_name}: top {len(result)} of {recommender.n_items} "
          f"items after {len(history)} history items (seen items {seen})")
    print(format_table(result, recommender.attribute_keys))
    return 0


class _CallableModule(types.ModuleType):
    """``import recbole_text.recommend`` makes ``recbole_text.recommend`` this module (Python sets a package's
    attribute to a submodule once it is imported), which would hide the function of the same name that
    ``recbole_text.__init__`` exposes; calling the module calls the function, so both spellings work."""

    def __call__(self, *args, **kwargs):
        return recommend(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule

__all__ = ["RecommendError", "Recommender", "UnknownItemError", "format_table", "main", "parse_history", "recommend"]
