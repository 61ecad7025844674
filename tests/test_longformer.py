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


@pytest.mark.parametrize("window, width", [(4, 13), (8, 21), (64, 12)])
def test_dense_attention_computes_what_the_longformer_computes(window, width):
    from recbole_text.text.longformer import dense_forward

    model = bert_to_longformer(tiny_bert(seed=3), attention_window=window).eval()
    with torch.no_grad():  # global projections trained apart from the local ones
        for layer in model.encoder.layer:
            for name in ("query_global", "key_global", "value_global"):
                getattr(layer.attention.self, name).weight.normal_(0, 0.3)
        model.embeddings.token_type_embeddings.weight.normal_(0, 0.3)
    torch.manual_seed(2)
    ids = torch.randint(1, 60, (3, width))
    mask = torch.ones_like(ids)
    mask[2, width - 5:] = 0
    types = torch.randint(0, 4, ids.shape)
    global_attention = torch.zeros_like(ids)
    global_attention[:, 0] = 1
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                         global_attention_mask=global_attention).last_hidden_state
        got = dense_forward(model, model.embeddings.word_embeddings(ids), mask, types, global_attention)
        cls = dense_forward(model, model.embeddings.word_embeddings(ids), mask, types, global_attention, cls_only=True)
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-4)
    assert cls.shape == (3, 1, 16)  # the last layer computed [CLS] alone, as the full pass computes it
    assert torch.allclose(cls[:, 0], expected[:, 0], atol=1e-4)
