"""SeqSASRec: SASRec (Kang & McAuley, ICDM'18) trained on whole sequences instead of RecBole's prefix rows.

Architecture (same as RecBole's SASRec): for the left-aligned input ``s_1..s_L`` (0 = padding)

    h⁰_t = Dropout(LayerNorm(E_in[s_t] + P[t]))                 (batch, L, d)
    hˡ   = TransformerBlock(hˡ⁻¹, causal mask)                   l = 1..n_layers
    score(t, i) = hᴸ_t · E_out[i]                                E_out = E_in if tie_embeddings

What differs is training (``train_strategy``): ``sequence`` takes a loss at every position
(``L = Σ_t ℓ(hᴸ_t, s_{t+1})``) from one pass over each user's history per epoch, in windows of
``MAX_ITEM_LIST_LENGTH + 1``; ``rss`` trains on recency-sampled targets from the last position; ``prefix`` is
RecBole's one-row-per-prefix data. ``loss_type`` is ``CE`` (softmax over all items, the default here), ``BCE``
or ``gBCE`` (see :class:`gSASRec`).
"""
from __future__ import annotations

import torch
from torch import nn
from recbole.model.layers import TransformerEncoder

from recbole_text.model.abstract_recommender import SequenceLossRecommender


class SeqSASRec(SequenceLossRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["hidden_size"]
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)  # (n_items, d)
        self.position_embedding = nn.Embedding(self.max_seq_length, d)  # (L, d)
        self.output_embedding = None if config["tie_embeddings"] else nn.Embedding(self.n_items, d, padding_idx=0)
        self.encoder = TransformerEncoder(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=d,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )
        self.layer_norm = nn.LayerNorm(d, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.initializer_range = config["initializer_range"]
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # (L,)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)[None]  # (B, L, d)
        hidden = self.dropout(self.layer_norm(hidden))
        mask = self.get_attention_mask(item_seq)  # (B, 1, L, L): causal and no attention to padding
        return self.encoder(hidden, mask, output_all_encoded_layers=False)[-1]  # (B, L, d)
