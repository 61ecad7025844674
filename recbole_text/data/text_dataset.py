"""Text-attribute sequential dataset: RecBole's ``SequentialDataset`` plus each item's key-value text.

Every internal item id ``i`` (0 is RecBole's padding id) gets

* ``dataset.item_attributes[i]`` — the ordered ``{key: value}`` dict read from ``<dataset>.itemtext``
  (empty for padding and for items without text);
* ``dataset.item_texts[i]`` — the flattened string ``"key: value; key: value"``.

Both layouts RecBole supports work: one chronological ``<dataset>.inter`` (leave-one-out split by RecBole)
and pre-split ``<dataset>.{train,valid,test}.inter`` selected with ``benchmark_filename``.
:func:`check_dataset_files` validates every atomic file first, so bad input ends in one error naming the
file and line instead of a pandas stack trace.
"""
from __future__ import annotations

from pathlib import Path

from recbole.data.dataset import SequentialDataset

from recbole_text.data.atomic import ITEM_TEXT_SUFFIX, AtomicFileError, check_atomic_file, read_item_text


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
