"""Which text the encoder reads for each item: one function, :func:`encoder_text`, used everywhere.

The text is the item's attribute *values* in ``text_fields`` order, joined by ``". "``, without the keys::

    {"title": "Sanding roll", "categories": "Abrasives", "brand": "PORTER-CABLE"}
        → "Sanding roll. Abrasives. PORTER-CABLE"

Why values only: it is UniSRec's item text (title + categories + brand, the values, in that order), and for a
frozen encoder the keys are the same tokens in every item — they carry nothing that tells two items apart,
but they pull every mean-pooled vector towards the same direction (less contrast between items) and make each
text longer (Scientific: 45 → 51 tokens on average, measured with MiniLM's tokenizer), i.e. slower.
``TextSequentialDataset.item_texts`` keeps its ``"key: value; …"`` form for display and for models that
read keys themselves.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

SEPARATOR = ". "
REPORTED_EXAMPLES = 5  # item tokens named in the "items without text" log line

logger = logging.getLogger(__name__)


def encoder_text(attributes: Mapping[str, str], fields: Sequence[str]) -> str:
    """The encoder's text of one item: the stripped, non-empty values of ``fields`` (in that order) joined by
    ``". "``; ``""`` when the item has none of them (such an item gets the zero vector)."""
    values = (str(attributes.get(field, "")).strip() for field in fields)
    return SEPARATOR.join(value for value in values if value)


def text_fields(config, dataset) -> list[str]:
    """The ``text_fields`` setting checked against the dataset's attributes; ``~`` = all, in file order.

    Accepts a list, or a string of names separated by commas or spaces (``--text_fields=title,brand``).
    """
    wanted = config["text_fields"] if "text_fields" in config else None
    return chosen_attributes(dataset, wanted, "text_fields", "text embeddings")


def chosen_attributes(dataset, wanted, setting: str, reader: str) -> list[str]:
    """The attribute names ``wanted`` (the value of ``setting``: ``None`` = all, a list, or names separated by
    commas or spaces) checked against the dataset's ``.itemtext`` columns; ``reader`` names what needs them."""
    from recbole_text.config import ConfigError

    available = list(getattr(dataset, "item_text_keys", None) or [])
    if not available:
        raise ConfigError(f"dataset {dataset.dataset_name!r} has no item text (no <dataset>.itemtext file): "
                          f"{reader} need one (see dataset/README.md)")
    if wanted is None:
        return available
    if isinstance(wanted, str):
        wanted = wanted.replace(",", " ").split()
    wanted = [str(field) for field in wanted]
    unknown = [field for field in wanted if field not in available]
    if unknown or not wanted:
        raise ConfigError(f"{setting}={wanted!r}: {', '.join(unknown) or 'empty'} not among the attributes of "
                          f"{dataset.dataset_name!r} ({', '.join(available)})")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"{setting}={wanted!r} names an attribute twice")
    return wanted


def item_encoder_texts(config, dataset) -> tuple[list[str], list[str]]:
    """``(fields, texts)``: ``texts[i]`` is the encoder text of internal item id ``i`` (``texts[0]`` is the
    padding id's, ``""``). Items whose text is empty are logged (count and the first few item tokens)."""
    fields = text_fields(config, dataset)
    attributes = dataset.item_attributes
    texts = [""] + [encoder_text(attributes[i], fields) for i in range(1, len(attributes))]
    report_items_without_text(dataset, texts, fields)
    return fields, texts


def report_items_without_text(dataset, texts: Sequence[str], fields: Sequence[str]) -> list[int]:
    """Log the items (internal ids ≥ 1) whose encoder text is empty; returns their ids."""
    missing = [i for i in range(1, len(texts)) if not texts[i]]
    if missing:
        tokens = dataset.id2token(dataset.iid_field, missing[:REPORTED_EXAMPLES])
        more = ", …" if len(missing) > REPORTED_EXAMPLES else ""
        logger.warning(
            f"item text: {len(missing)} of {len(texts) - 1} items have no text in {list(fields)} "
            f"(e.g. {', '.join(map(str, tokens))}{more}); they get the zero vector, like the padding id"
        )
    return missing
