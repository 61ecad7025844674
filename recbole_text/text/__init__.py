"""Item text embeddings: each item's attributes → one vector from a frozen text encoder, for every text model.

::

    from recbole_text.text import item_embeddings
    table = item_embeddings(config, dataset)   # torch.float32 (n_items, d); row 0 (padding) = zeros

* :mod:`.texts` — which text the encoder reads: :func:`encoder_text` (attribute values in ``text_fields`` order,
  joined by ``". "``); items without text are logged and get the zero vector.
* :mod:`.encoder` — :class:`TextEncoder`: the frozen encoder (``plm_name``, default the packaged
  all-MiniLM-L6-v2), loaded offline, batched by length, ``cls``/``mean`` pooling, fp32 or bf16.
* :mod:`.cache` — :func:`ensure_item_embeddings` (encode once, e.g. in a Ray Tune driver before its trials) and
  :func:`item_embeddings` (what models call): ``.npy`` tables keyed by a hash of texts, encoder weights,
  pooling, length and dtype, written atomically.
* :mod:`.item_tokens` — Recformer's inputs: :func:`.item_tokens.item_tokens` (every item's key-value attributes tokenised
  once, cached as ``.npz``) → :class:`ItemTokens`; :func:`sequence_inputs` (histories → ``[CLS]`` + items most
  recent first, vectorised) and :func:`item_inputs` (one item each).

Settings (``recbole_text/properties/overall.yaml``): ``plm_name``, ``plm_pooling``, ``plm_max_length``,
``plm_batch_size``, ``plm_dtype``, ``text_cache_dir``, ``text_fields``.
"""
from recbole_text.text.cache import cache_dir, ensure_item_embeddings, item_embeddings, load_table, table_key
from recbole_text.text.encoder import (EncoderNotFoundError, TextEncoder, bf16_native, encoder_fingerprint,
                                       packaged_encoder_path, pool, resolve_encoder)
from recbole_text.text.item_tokens import ItemTokens, item_inputs, sequence_inputs  # and the module's item_tokens()
from recbole_text.text.texts import encoder_text, item_encoder_texts, text_fields

__all__ = [
    "EncoderNotFoundError", "ItemTokens", "TextEncoder", "bf16_native", "cache_dir", "encoder_fingerprint",
    "encoder_text", "ensure_item_embeddings", "item_embeddings", "item_encoder_texts", "item_inputs",
    "load_table", "packaged_encoder_path", "pool", "resolve_encoder", "sequence_inputs", "table_key", "text_fields",
]
