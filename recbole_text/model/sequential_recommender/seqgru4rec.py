"""SeqGRU4Rec: GRU4Rec (Hidasi et al., ICLR'16; RecBole's variant) trained on whole sequences or with RSS.

    x_t = Dropout(E_in[s_t])                  (batch, L, e)
    g_t = GRU(x_1..x_t)                       (batch, L, h)      causal by construction
    h_t = W g_t + b                           (batch, L, d)      d = embedding_size
    score(t, i) = h_t · E_out[i]

A non-transformer model that uses every training strategy of :class:`SequenceLossRecommender`
(``sequence``: loss at every position; ``rss``: recency-sampled targets; ``prefix``: RecBole's rows) and every
loss (``CE``, ``BCE``, ``gBCE``). Defaults in ``properties/model/SeqGRU4Rec.yaml``.
"""
import torch
from torch import nn

from recbole_text.model.abstract_recommender import SequenceLossRecommender


class SeqGRU4Rec(SequenceLossRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        e, h = config["embedding_size"], config["hidden_size"]
        self.item_embedding = nn.Embedding(self.n_items, e, padding_idx=0)
        self.output_embedding = None if config["tie_embeddings"] else nn.Embedding(self.n_items, e, padding_idx=0)
        self.dropout = nn.Dropout(config["dropout_prob"])
        self.gru = nn.GRU(e, h, num_layers=config["num_layers"], batch_first=True)
        self.dense = nn.Linear(h, e)
        nn.init.xavier_normal_(self.item_embedding.weight)
        if self.output_embedding is not None:
            nn.init.xavier_normal_(self.output_embedding.weight)

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.dropout(self.item_embedding(item_seq)))  # (B, L, h)
        return self.dense(states)  # (B, L, e)
