"""Text-attribute sequential dataset: RecBole's ``SequentialDataset`` plus each item's key-value text.

Every internal item id ``i`` (0 is RecBole's padding id) gets

* ``dataset.item_attributes[i]`` — the ordered ``{key: value}`` dict read from ``<dataset>.itemtext``
  (empty for padding and for items without text);
* ``dataset.item_texts[i]`` — the flattened string ``"key: value; key: value"``.

Both layouts RecBole supports work: one chronological ``<dataset>.inter`` (leave-one-out split by RecBole)
and pre-split ``<dataset>.{train,valid,test}.inter`` selected with ``benchmark_filename``.

With one chronological file and ``train_strategy`` ``sequence`` or ``rss``, RecBole's prefix rows (one per
training interaction, each with its whole history: interactions × ``MAX_ITEM_LIST_LENGTH`` ids per field) are
never built. The same rows without their history lists go through RecBole's own ``build()`` (ordering and
split), then only the evaluation rows get their ``<field>_list`` columns (the values RecBole would have given
them) and the training split gets ``flat_sequences``, each user's training sequence read from the interaction
table (see :mod:`recbole_text.data.sequence_data`).
:func:`check_dataset_files` validates every atomic file first, so bad input ends in one error naming the
file and line instead of a pandas stack trace.
"""
from __future__ import annotations

from pathlib import Path

import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils.enum_type import FeatureType

from recbole_text.data.atomic import ITEM_TEXT_SUFFIX, AtomicFileError, check_atomic_file, read_item_text
from recbole_text.data.sequence_data import SEQUENCE_STRATEGIES, history_lists, interaction_histories, prefix_rows

TARGET_ROW = "_target_row"  # while splitting: each row's target, an index into the sorted interaction table


class DatasetNotFoundError(FileNotFoundError):
    """The dataset folder (or one of its required files) does not exist."""


def flatten_attributes(attributes: dict[str, str]) -> str:
    """``{"title": "A", "brand": "B"}`` → ``"title: A; brand: B"`` (key order kept)."""
    return "; ".join(f"{key}: {value}" for key, value in attributes.items())


def check_dataset_files(config) -> None:
    """Validate the atomic files RecBole is about to read; raise one clear error naming file and line."""
    folder = Path(config["data_path"])
    name = config["dataset"]
    if not folder.is_dir():
        raise DatasetNotFoundError(f"dataset folder {folder} does not exist")
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    splits = config["benchmark_filename"]
    if splits:
        history = iid + config["LIST_SUFFIX"]
        for split in splits:
            path = folder / f"{name}.{split}.inter"
            if not path.is_file():
                raise DatasetNotFoundError(f"{path} does not exist (benchmark_filename lists '{split}')")
            check_atomic_file(path, required=(uid, iid, history), non_empty=(history,))
    else:
        path = folder / f"{name}.inter"
        if not path.is_file():
            raise DatasetNotFoundError(f"{path} does not exist")
        order = (config["eval_args"] or {}).get("order")
        required = (uid, iid) + ((config["TIME_FIELD"],) if order == "TO" else ())
        check_atomic_file(path, required=required, non_empty=(uid, iid))
    for suffix, field in (("user", uid), ("item", iid)):
        path = folder / f"{name}.{suffix}"
        if path.is_file():
            check_atomic_file(path, required=(field,))


class TextSequentialDataset(SequentialDataset):
    """``SequentialDataset`` that also reads ``<dataset>.itemtext`` (see ``dataset/README.md``)."""

    def __init__(self, config):
        check_dataset_files(config)
        super().__init__(config)
        self._load_item_text()

    def _flat_training(self) -> bool:
        """Whether training sequences come from the interaction table instead of RecBole's prefix rows."""
        return self.config["train_strategy"] in SEQUENCE_STRATEGIES and self.config["benchmark_filename"] is None

    def data_augmentation(self):
        """RecBole's prefix rows; for sequence/RSS training the same rows without their history lists.

        Those rows keep every interaction field of their target (as RecBole's do), ``item_length`` and
        ``_target_row`` (the target's index into ``self._interactions``, the interaction table sorted by user
        then time); ``build`` splits them and fills in the lists of the evaluation rows only.
        """
        if not self._flat_training():
            return super().data_augmentation()
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        target, length = prefix_rows(self.inter_feat[self.uid_field].numpy(), self.max_item_list_len)
        self._interactions = self.inter_feat  # (N,) per field
        target = torch.as_tensor(target)
        rows = {field: values[target] for field, values in self.inter_feat.interaction.items()}
        rows[self.item_list_length_field] = torch.as_tensor(length)
        rows[TARGET_ROW] = target
        self.inter_feat = Interaction(rows)

    def build(self):
        """RecBole's ``build()``; for sequence/RSS training it splits history-less rows (see
        :meth:`data_augmentation`), then gives every split but the first (validation, test) RecBole's
        ``<field>_list`` columns, (rows, MAX_ITEM_LIST_LENGTH, ...), and the training split
        ``flat_sequences = (users (U,), flat (T,), offsets (U + 1,))``."""
        datasets = super().build()
        if not self._flat_training():
            return self._hold_out_items(datasets)
        interactions = self.__dict__.pop("_interactions")
        for part in datasets:
            part.__dict__.pop("_interactions", None)
        train, *evaluation = datasets
        rows = train.inter_feat
        train.flat_sequences = interaction_histories(
            rows[self.uid_field].numpy(), rows[TARGET_ROW].numpy(), rows[self.item_list_length_field].numpy(),
            interactions[self.iid_field].numpy(),
        )
        for part in evaluation:
            part.inter_feat = self._with_history_lists(part.inter_feat, interactions)
        for feat in (self.inter_feat, train.inter_feat):
            del feat[TARGET_ROW]
        return self._hold_out_items(datasets)

    def _hold_out_items(self, datasets):
        """``cold_start_items`` > 0: remove a seeded share of the items from the training split (see
        :mod:`recbole_text.data.cold_start`); ``self.cold_start_held_out`` is the (n_items,) mask."""
        fraction = float(self.config["cold_start_items"] or 0.0)
        self.cold_start_held_out = None
        if fraction <= 0.0:
            return datasets
        from recbole_text.data.cold_start import held_out_items, without_items_flat, without_items_rows

        held = held_out_items(self.item_num, fraction, self.config["cold_start_seed"])
        train = datasets[0]
        if getattr(train, "flat_sequences", None) is not None:
            before = len(train.flat_sequences[1])
            train.flat_sequences = without_items_flat(train.flat_sequences, held)
            removed = f"{before - len(train.flat_sequences[1])} of {before} training interactions"
        else:
            before = len(train.inter_feat)
            train.inter_feat = without_items_rows(train.inter_feat, held, self.iid_field, self.config["LIST_SUFFIX"],
                                                  self.item_list_length_field)
            removed = f"{before - len(train.inter_feat)} of {before} training rows"
        self.cold_start_held_out = train.cold_start_held_out = held
        held_targets = [int(held[part.inter_feat[self.iid_field]].sum()) for part in datasets[1:]]
        self.logger.info(f"cold start: {int(held.sum())} items held out of training (seed "
                         f"{self.config['cold_start_seed']}), {removed} removed; held-out targets in "
                         f"validation / test: {held_targets[0]} / {held_targets[1]}")
        return datasets

    def _with_history_lists(self, rows: Interaction, interactions: Interaction) -> Interaction:
        """``rows`` with RecBole's ``<field>_list`` for every interaction field but the user id: the
        ``item_length`` values before each row's target, shaped and typed as ``data_augmentation`` makes them."""
        target, length = rows[TARGET_ROW], rows[self.item_list_length_field]
        new = {field: values for field, values in rows.interaction.items() if field != TARGET_ROW}
        for field, values in interactions.interaction.items():
            if field == self.uid_field:
                continue
            list_field = getattr(self, f"{field}_list_field")
            list_len = self.field2seqlen[list_field]
            shape = (len(rows), list_len) if isinstance(list_len, int) else (len(rows),) + tuple(list_len)
            if self.field2type[field] in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ) and \
                    field in self.config["numerical_features"]:
                shape += (2,)
            new[list_field] = history_lists(values, target, length, shape)
        return Interaction(new)

    def _load_item_text(self) -> None:
        path = Path(self.dataset_path) / f"{self.dataset_name}.{ITEM_TEXT_SUFFIX}"
        self.item_text_file = str(path) if path.is_file() else None
        self.item_text_keys: list[str] = []
        by_token: dict[str, dict[str, str]] = {}
        if self.item_text_file:
            self.item_text_keys, by_token = read_item_text(path, self.iid_field)
        tokens = self.field2id_token[self.iid_field]  # internal id → raw token; index 0 is [PAD]
        self.item_attributes: list[dict[str, str]] = [{}] + [dict(by_token.get(t, {})) for t in tokens[1:]]
        self.item_texts: list[str] = [flatten_attributes(a) for a in self.item_attributes]
        self.items_without_text = sum(1 for a in self.item_attributes[1:] if not a)
        if self.item_text_file:
            self.logger.info(
                f"item text: {len(tokens) - 1 - self.items_without_text}/{len(tokens) - 1} items have "
                f"attributes {self.item_text_keys} from {path.name}"
            )

    def item_text(self, item_id: int) -> str:
        """Flattened text of one internal item id."""
        if not 0 <= item_id < len(self.item_texts):
            raise KeyError(f"item id {item_id} is outside 0..{len(self.item_texts) - 1}")
        return self.item_texts[item_id]


__all__ = ["AtomicFileError", "DatasetNotFoundError", "TextSequentialDataset", "check_dataset_files", "flatten_attributes"]
