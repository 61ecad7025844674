"""gSASRec (Petrov & Macdonald, RecSys'23): SASRec trained with k sampled negatives and the calibrated gBCE loss.

Encoder: SASRec's causal, **pre-LayerNorm** transformer decoder. For the left-aligned input ``s_1..s_L``
(0 = padding; with causal attention a real position never sees the padding after it)

    h⁰_t = Dropout(E[s_t] + P[t])                                   (batch, L, d)
    a    = hˡ⁻¹ + Dropout(Attention(LN(hˡ⁻¹)), causal)               l = 1..n_layers
    hˡ   = a + Dropout(W₂ Dropout(act(W₁ LN(a))))
    h_t  = LN(hᴸ_t);   score(t, i) = h_t · E_out[i]                 E_out = E if tie_embeddings

Training takes a loss at **every position** of the shifted sequence with ``num_negatives`` = k uniformly
sampled negatives and

    α = k / (N − 1),   β = 1 − t(1 − α)        (N = catalogue size, t = ``gbce_t``)
    L = [β·softplus(−s⁺) + Σ_{j=1..k} softplus(s⁻_j)] / (k + 1)

i.e. −[log σ(s⁺)^β + Σ log(1 − σ(s⁻))]/(k+1), written in the numerically stable softplus form. ``t = 0`` is
plain BCE with sampled negatives (overconfident: σ(s) overestimates the chance of the positive); ``t = 1``
makes σ(s) calibrated against the full catalogue; the paper uses t = 0.75 and k = 256 on ML-1M.

Only the k sampled items are scored in training, so memory does not grow with the catalogue. The k negatives
are drawn once per sequence and shared by its positions (one (batch, k, d) gather instead of
(batch, L, k, d)), or with ``negatives_per: position`` drawn for every position, as the reference code does;
a negative that equals the position's positive is ignored. Ranking: ``full_sort_predict``
scores all items from the last position. Defaults in ``properties/model/gSASRec.yaml``; any other
``train_strategy`` (``rss``) and ``loss_type`` (``CE``, ``BCE``) also work.

The pre-LN decoder is the original SASRec/gSASRec code's. On its own it did not lift sampled-negative BCE off
the popularity ranking on ml-100k (valid NDCG@10 0.020 after 15 epochs, seen items excluded); the per-item
score bias (``item_bias``, on in ``gSASRec.yaml``, see :class:`SequenceLossRecommender`) did.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_text.model.abstract_recommender import SequenceLossRecommender
from recbole_text.model.layers import Dropout


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, attn_dropout: float):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"hidden_size {d} is not divisible by n_heads {n_heads}")
        self.n_heads, self.attn_dropout = n_heads, attn_dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, d) → (B, L, d)
        batch, length, d = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        dropout = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)  # (B, heads, L, d/heads)
        return self.out(y.transpose(1, 2).reshape(batch, length, d))


class DecoderBlock(nn.Module):
    def __init__(self, d: int, n_heads: int, inner: int, dropout: float, attn_dropout: float, act: str, eps: float):
        super().__init__()
        self.attn_norm, self.ffn_norm = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.attention = CausalSelfAttention(d, n_heads, attn_dropout)
        self.ffn = nn.Sequential(
            nn.Linear(d, inner), nn.GELU() if act == "gelu" else nn.ReLU(), Dropout(dropout), nn.Linear(inner, d)
        )
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attn_norm(x)))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class gSASRec(SequenceLossRecommender):  # noqa: N801 (the paper's name)
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0)  # (n_items, d)
        self.position_embedding = nn.Embedding(self.max_seq_length, d)  # (L, d)
        self.output_embedding = None if config["tie_embeddings"] else nn.Embedding(self.n_items, d, padding_idx=0)
        self.blocks = nn.ModuleList(
            DecoderBlock(d, config["n_heads"], config["inner_size"], config["hidden_dropout_prob"],
                         config["attn_dropout_prob"], config["hidden_act"], eps)
            for _ in range(config["n_layers"])
        )
        self.final_norm = nn.LayerNorm(d, eps=eps)
        self.dropout = Dropout(config["hidden_dropout_prob"])
        for table in (self.item_embedding, self.position_embedding, self.output_embedding):
            if table is not None:
                nn.init.normal_(table.weight, std=config["initializer_range"])
        if self.loss_type != "gBCE":
            self.logger.warning(f"gSASRec with loss_type={self.loss_type}: gBCE is what makes it gSASRec")

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # (L,)
        hidden = self.dropout(self.item_embedding(item_seq) + self.position_embedding(positions)[None])  # (B, L, d)
        for block in self.blocks:
            hidden = block(hidden)
        return self.final_norm(hidden)  # (B, L, d)
