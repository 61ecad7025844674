"""BERT → Longformer conversion: with a window covering the input, the converted encoder is BERT."""
from __future__ import annotations

import pytest
import torch

from recbole_text.text.longformer import bert_to_longformer, load_longformer


def tiny_bert(seed: int = 0, **more):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, **more)
    return BertModel(config, add_pooling_layer=False).eval()


def test_converted_encoder_gives_berts_outputs_when_the_window_covers_the_input():
    bert = tiny_bert()
    longformer = bert_to_longformer(bert, attention_window=32).eval()
    torch.manual_seed(1)
    ids = torch.randint(1, 60, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a padded row
    ids = ids * mask
    types = torch.randint(0, 4, ids.shape)  # any token types: all four rows start as BERT's type 0
    global_attention = torch.zeros_like(ids)
    global_attention[:, 0] = 1  # [CLS]
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = longformer(input_ids=ids, attention_mask=mask, token_type_ids=types,
                         global_attention_mask=global_attention).last_hidden_state
    real = mask.bool()
    assert got.shape == expected.shape
    assert torch.allclose(got[real], expected[real], atol=1e-5)


def test_a_small_window_makes_attention_local():
    bert = tiny_bert()
    longformer = bert_to_longformer(bert, attention_window=4).eval()
    ids = torch.randint(1, 60, (1, 12))
    with torch.no_grad():
        expected = bert(input_ids=ids).last_hidden_state
        got = longformer(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert not torch.allclose(got, expected, atol=1e-3)


def test_the_packaged_minilm_converts_offline():
    model, folder = load_longformer(None, attention_window=64)
    assert (folder / "vocab.txt").is_file()
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert model.embeddings.token_type_embeddings.num_embeddings == 4
    assert model.embeddings.position_embeddings.num_embeddings == 512 + 1
    with pytest.raises(ValueError, match="even"):
        load_longformer(None, attention_window=63)
