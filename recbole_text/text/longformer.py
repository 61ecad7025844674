"""Longformer backbones for text sequence models (Recformer), loaded offline.

:func:`load_longformer` takes ``plm_name`` (resolved like every text encoder here,
:func:`recbole_text.text.encoder.resolve_encoder`: ``~`` = the packaged all-MiniLM-L6-v2, or a local folder, or a
model already in the Hugging Face cache) and returns a ``LongformerModel``:

* a **Longformer checkpoint** (``model_type: longformer``, e.g. a cached ``allenai/longformer-base-4096``) is
  loaded as it is, with ``attention_window`` set and its token-type table widened to ``type_vocab_size`` rows
  (``allenai/longformer-base-4096`` has one): every new row starts as a copy of row 0;
* a **BERT encoder** (``model_type: bert``, such as the packaged MiniLM) is converted, :func:`bert_to_longformer`.

BERT → Longformer, weight by weight:

====================================  ===================================================================
word embeddings, embedding LayerNorm  copied
token positions                       Longformer counts positions RoBERTa-style from ``padding_idx + 1``:
                                      row ``p + padding_idx + 1`` ← BERT's row ``p``, rows ≤ ``padding_idx``
                                      are zero (``max_position_embeddings`` grows by ``padding_idx + 1``)
token types                           ``type_vocab_size`` rows (Recformer: [CLS], key, value, pad), each a
                                      copy of BERT's type-0 row, so the converted encoder starts out as BERT
                                      whatever the types; training separates them
local attention q / k / v             BERT's q / k / v
global attention q / k / v            copies of BERT's q / k / v (they train apart from the local ones)
attention output, FFN, LayerNorms     copied
====================================  ===================================================================

So with an ``attention_window`` that covers the whole input (every token within ``window / 2`` of every other)
the converted model computes BERT's outputs, global attention or not (``tests/test_longformer.py``). Recformer's
public code instead copied ``allenai/longformer-base-4096`` by name, leaving the 4-row token-type table random.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from recbole_text.text.encoder import resolve_encoder

TYPE_VOCAB_SIZE = 4  # Recformer's token types: [CLS], key, value, padding


def _model_type(folder: Path) -> str:
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a Hugging Face model folder")
    return json.loads(config.read_text()).get("model_type", "")


def bert_to_longformer(bert, attention_window: int, type_vocab_size: int = TYPE_VOCAB_SIZE):
    """A ``LongformerModel`` (no pooler) with the weights of the ``BertModel`` ``bert`` (table above)."""
    from transformers import LongformerConfig, LongformerModel

    source = bert.config
    pad = source.pad_token_id if source.pad_token_id is not None else 0
    config = LongformerConfig(
        vocab_size=source.vocab_size, hidden_size=source.hidden_size, num_hidden_layers=source.num_hidden_layers,
        num_attention_heads=source.num_attention_heads, intermediate_size=source.intermediate_size,
        hidden_act=source.hidden_act, hidden_dropout_prob=source.hidden_dropout_prob,
        attention_probs_dropout_prob=source.attention_probs_dropout_prob,
        max_position_embeddings=source.max_position_embeddings + pad + 1, type_vocab_size=type_vocab_size,
        initializer_range=source.initializer_range, layer_norm_eps=source.layer_norm_eps, pad_token_id=pad,
        attention_window=attention_window,
    )
    model = LongformerModel(config, add_pooling_layer=False)
    weights = {name: value for name, value in bert.state_dict().items() if not name.startswith("pooler.")}
    positions = weights.pop("embeddings.position_embeddings.weight")  # (P, d)
    types = weights.pop("embeddings.token_type_embeddings.weight")  # (2, d)
    weights.pop("embeddings.position_ids", None)
    weights.pop("embeddings.token_type_ids", None)
    shifted = torch.zeros(config.max_position_embeddings, source.hidden_size, dtype=positions.dtype)
    shifted[pad + 1:] = positions
    weights["embeddings.position_embeddings.weight"] = shifted
    weights["embeddings.token_type_embeddings.weight"] = types[:1].repeat(type_vocab_size, 1)
    for layer in range(source.num_hidden_layers):
        prefix = f"encoder.layer.{layer}.attention.self."
        for projection in ("query", "key", "value"):
            for part in ("weight", "bias"):
                weights[f"{prefix}{projection}_global.{part}"] = weights[f"{prefix}{projection}.{part}"].clone()
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [name for name in missing if not name.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"BERT → Longformer: weights left unset {missing}, weights not used {unexpected}")
    return model


@contextlib.contextmanager
def quiet_transformers():
    """Hugging Face's load reports and progress bars off while a backbone loads (its pooler is unused)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_longformer(plm_name, attention_window: int, type_vocab_size: int = TYPE_VOCAB_SIZE):
    """``(LongformerModel, folder)``: the backbone of ``plm_name`` and the folder its tokenizer is read from."""
    from transformers import BertModel, LongformerModel

    if attention_window < 4 or attention_window % 2:  # Hugging Face's sliding chunks need a half-window ≥ 2
        raise ValueError(f"attention_window={attention_window} must be an even number ≥ 4")
    folder = resolve_encoder(plm_name)
    kind = _model_type(folder)
    if kind == "bert":
        with quiet_transformers():
            bert = BertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
        return bert_to_longformer(bert, attention_window, type_vocab_size), folder
    if kind != "longformer":
        raise ValueError(f"plm_name={str(plm_name)!r} ({folder}) is a {kind or 'unknown'} model; Recformer's "
                         "backbone must be a Longformer or a BERT encoder (converted)")
    with quiet_transformers():
        model = LongformerModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False,
                                                attention_window=attention_window)
    old = model.embeddings.token_type_embeddings
    if old.num_embeddings != type_vocab_size:
        new = torch.nn.Embedding(type_vocab_size, old.embedding_dim)
        with torch.no_grad():
            new.weight.copy_(old.weight[:1].repeat(type_vocab_size, 1))
        model.embeddings.token_type_embeddings = new
        model.config.type_vocab_size = type_vocab_size
    return model, folder


def dense_forward(backbone, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor,
                  global_attention_mask: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
    """``backbone``'s last hidden states (B, T, d), Longformer's attention computed with dense masks.
    ``cls_only``: (B, 1, d), [CLS]'s state alone. Its last layer then needs only the global attention of [CLS] and
    one token's FFN, which skips ~1/7 of the encoder's matmuls for a 6-layer backbone.

    The same function as ``LongformerModel`` with the first token global (Recformer's [CLS]): token t attends to
    the tokens within ``attention_window / 2`` of it and to [CLS], through the local projections; [CLS] attends
    to every token through the global ones; padding is never attended to. Hugging Face computes the window in
    overlapping chunks, which on a CPU is 3-13× slower than BERT for the same input (16 × 256 tokens, window 64:
    15.9 s vs 5.3 s forward + backward on 2 cores); here it is one ``scaled_dot_product_attention`` with a
    (T, T) mask per layer, so its cost grows with T², which suits inputs of up to ~1k tokens."""
    import torch.nn.functional as F

    if bool((global_attention_mask[:, 1:] != 0).any()) or bool((global_attention_mask[:, 0] == 0).any()):
        raise ValueError("dense_forward supports global attention on the first token only")
    config = backbone.config
    hidden = backbone.embeddings(inputs_embeds=inputs_embeds, token_type_ids=token_type_ids)  # (B, T, d)
    batch, width, _ = hidden.shape
    heads, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    real = attention_mask.bool()  # (B, T) keys that exist
    offset = torch.arange(width, device=hidden.device)
    distance = (offset[:, None] - offset[None, :]).abs()  # (T, T)
    windows = config.attention_window if isinstance(config.attention_window, (list, tuple)) else \
        [config.attention_window] * config.num_hidden_layers

    def split(x):  # (B, T', d) → (B, heads, T', head_dim)
        return x.view(batch, -1, heads, head_dim).transpose(1, 2)

    last = backbone.encoder.layer[-1]
    for layer, window in zip(backbone.encoder.layer, windows):
        attention = layer.attention.self
        dropout = attention.dropout if isinstance(attention.dropout, float) else attention.dropout.p
        dropout = dropout if backbone.training else 0.0
        cls = F.scaled_dot_product_attention(split(attention.query_global(hidden[:, :1])),
                                             split(attention.key_global(hidden)), split(attention.value_global(hidden)),
                                             attn_mask=real[:, None, None, :], dropout_p=dropout)  # (B, H, 1, dh)
        if cls_only and layer is last:  # no later layer reads the other tokens' states
            attended = layer.attention.output(cls.transpose(1, 2).reshape(batch, 1, -1), hidden[:, :1])
            return layer.output(layer.intermediate(attended), attended)  # (B, 1, d)
        allowed = (distance <= window // 2)[None] | (offset == 0)[None, None, :]  # window, and [CLS] for all
        allowed = (allowed & real[:, None, :])[:, None]  # (B, 1, T, T)
        local = F.scaled_dot_product_attention(split(attention.query(hidden)), split(attention.key(hidden)),
                                               split(attention.value(hidden)), attn_mask=allowed, dropout_p=dropout)
        context = torch.cat([cls, local[:, :, 1:]], dim=2).transpose(1, 2).reshape(batch, width, -1)
        attended = layer.attention.output(context, hidden)
        hidden = layer.output(layer.intermediate(attended), attended)
    return hidden


__all__ = ["TYPE_VOCAB_SIZE", "bert_to_longformer", "dense_forward", "load_longformer"]
