"""Base class for this package's sequential models: one encoder, every training strategy, every loss.

A subclass declares what its encoder gives (``output``) and implements one of

* ``output = "positions"``: ``encode(item_seq, item_seq_len) → (batch, max_len, d)``, the state at every position
  (causal, so position t sees items ≤ t): SASRec-style decoders, GRUs;
* ``output = "sequence"``: ``encode_sequence(item_seq, item_seq_len) → (batch, d)``, one vector per sequence
  (e.g. a ``[CLS]`` state): bidirectional text encoders such as Recformer's;

and ``output_embeddings() → (n_items, d)``, the table items are scored against (an ID embedding, or an item
table a text model encodes). ``train_strategies`` lists the training strategies it supports (the config refuses
others); a sequence-vector model cannot take a loss at every position, so it lists ``rss`` and ``prefix``.
Optional hooks the trainer calls: ``on_epoch_start(epoch)`` before every training epoch (text models re-encode
their item table there) and ``on_stage_start(name)`` when a new training stage begins
(:meth:`recbole_text.trainer.SafeCheckpointMixin.begin_stage`). ``family`` names the model family whose
checkpoints ``--pretrained`` accepts (default: the class name).

This class then provides RecBole's contract (``calculate_loss``, ``predict``, ``full_sort_predict``) for all
training strategies of :mod:`recbole_text.data.sequence_data`, with the same losses and scoring for both outputs:

=================  ==============================================  =====================================
batch holds        states used                                     targets
=================  ==============================================  =====================================
``target_id_list`` every position (loss at every position)          the next item at each position
``rss_targets``    the sequence state (last input position)         the sampled RSS target set
``item_id``        the sequence state (RecBole's prefix rows)       the next item
=================  ==============================================  =====================================

``loss_type``: ``CE`` (softmax over all items), ``BCE`` (binary over all items), ``gBCE`` (k sampled negatives,
calibrated by ``gbce_t``), ``LambdaRank`` (pairwise over all items, NDCG-weighted); see
:mod:`recbole_text.model.losses`.

gBCE's ``k`` negatives are drawn once per sequence and shared by its positions (``negatives_per: sequence``,
one (batch, k, d) gather) or drawn afresh for every position with a target (``position``, as gSASRec's reference
code does; (positions, k, d) memory).

``item_bias`` adds a learnable per-item bias to every score, ``score(t, i) = h_t · E_out[i] + b_i``, initialised
at ``b_i = −log(N − 1)``, the logit of "a random item is the next one". Binary losses need it: they must push
all N − 1 wrong items to a low probability, and without a bias the model spends its state on that common
offset and stays at the popularity ranking (ml-100k gSASRec, seen items excluded: valid NDCG@10 0.028 without,
0.0765 with, after 50 epochs). It is implemented as one extra dimension (states ⊕ 1, E_out ⊕ b), so every loss
is unchanged.

``popularity_prior`` (β ≥ 0, default 0) adds a fixed prior to the scores of ``predict`` and ``full_sort_predict``
(not to the training loss): ``score(t, i) + β·log(1 + n_i)``, ``n_i`` the item's interactions in the dataset the
model is built on (the training split when trained and tested, every interaction of the dataset when the recommend
API serves it; items added at inference have ``n_i = 0``). Cosine scores
(Recformer, UniSRec) carry no popularity at all, since every item's vector has the same norm: on Scientific a
finetuned Recformer validated at NDCG@10 0.0627 with β = 0 and 0.0757 with β = 0.75. ``popularity_prior: auto``
chooses β on validation after training (:meth:`recbole_text.trainer.SafeCheckpointMixin.choose_popularity_prior`).

``train_popularity_prior`` (β_t ≥ 0, default 0) puts the prior inside the training loss as well (logit adjustment,
Menon et al., ICLR'21): every loss sees ``score(t, i) + β_t·log(1 + n_i)``, so the encoder learns what popularity
does not already explain. Its scores then need the prior back at inference: ``popularity_prior: auto`` validates
with β = β_t until it has chosen, and a fixed ``popularity_prior`` is used as given (0: the popularity-free part).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_text.config import ConfigError
from recbole_text.data.sequence_data import RSS_TARGETS, TARGETS
from recbole_text.model import losses

LOSSES = ("CE", "BCE", "gBCE", "LambdaRank")
NEGATIVE_SHARING = ("sequence", "position")
OUTPUTS = ("positions", "sequence")
EVAL_TOKENS = 1 << 16  # positions encoded at once outside training (see forward)


class SequenceLossRecommender(SequentialRecommender):
    input_type = InputType.POINTWISE  # RecBole's negative sampler stays off; gBCE samples its own negatives
    output = "positions"
    train_strategies = ("sequence", "rss", "prefix", "sampled_prefix")
    setting_choices = {"loss_type": LOSSES, "negatives_per": NEGATIVE_SHARING}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.output not in OUTPUTS:
            raise TypeError(f"{cls.__name__}.output must be one of {OUTPUTS}, got {cls.output!r}")
        if cls.output == "sequence" and "sequence" in cls.train_strategies:
            raise TypeError(f"{cls.__name__} gives one vector per sequence: it cannot train with a loss at every "
                            "position (train_strategies must not list 'sequence')")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.loss_type = config["loss_type"]
        self.num_negatives = int(config["num_negatives"] or 0)
        self.gbce_t = float(config["gbce_t"] or 0.0)
        self.negatives_per = config["negatives_per"] or "sequence"
        if self.loss_type == "gBCE":
            if not 0 < self.num_negatives < self.n_items - 1:
                raise ConfigError(f"num_negatives must be in 1..{self.n_items - 2}, got {self.num_negatives}")
            self.gbce_beta = losses.gbce_beta(self.num_negatives, self.n_items - 1, self.gbce_t)
        self.item_bias = None
        if config["item_bias"]:
            self.item_bias = nn.Parameter(torch.full((self.n_items,), -math.log(max(self.n_items - 2, 1))))
        self.train_popularity_prior = float(config["train_popularity_prior"] or 0.0)
        prior = config["popularity_prior"]
        # auto: the training loss's β until β is chosen on validation
        self.popularity_prior = self.train_popularity_prior if prior == "auto" else float(prior or 0.0)
        items = dataset.inter_feat[dataset.iid_field]  # a tensor, or a pandas column before RecBole's loaders
        items = items if isinstance(items, torch.Tensor) else torch.from_numpy(items.to_numpy())
        counts = torch.bincount(items.long(), minlength=self.n_items)
        # not saved with the weights: the counts are the dataset's the model is built on (zero-shot: the target's)
        self.register_buffer("log_popularity", torch.log1p(counts[:self.n_items].float()), persistent=False)

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """(batch, max_len) item ids → (batch, max_len, d) states (``output = "positions"`` models)."""
        raise NotImplementedError(f"{type(self).__name__} declares output={self.output!r} but has no encode()")

    def encode_sequence(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """(batch, max_len) item ids → (batch, d), one vector per sequence (``output = "sequence"`` models)."""
        raise NotImplementedError(f"{type(self).__name__} declares output={self.output!r} but has no encode_sequence()")

    def output_embeddings(self) -> torch.Tensor:
        """The (n_items, d) table scores are taken against: ``self.output_embedding`` when the subclass made a
        separate one, else its input ``self.item_embedding`` (tied)."""
        table = getattr(self, "output_embedding", None)
        return (table if table is not None else self.item_embedding).weight

    def scoring_table(self) -> torch.Tensor:
        """(n_items, d) output embeddings, or (n_items, d + 1) with the item bias as the last column."""
        table = self.output_embeddings()
        return table if self.item_bias is None else torch.cat([table, self.item_bias[:, None]], dim=-1)

    def scoring_states(self, states: torch.Tensor) -> torch.Tensor:
        """States (…, d), or (…, d + 1) with a constant 1 that meets the item bias column."""
        return states if self.item_bias is None else torch.cat([states, torch.ones_like(states[..., :1])], dim=-1)

    def position_states(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """``encode`` over the columns that hold items: (batch, max(item_seq_len), d). Inputs are left-aligned,
        so every column past the longest input is padding and costs nothing here."""
        return self.encode(item_seq[:, :int(item_seq_len.max())], item_seq_len)

    def forward(self, item_seq, item_seq_len):
        """The sequence state: (batch, d), the last real position's state or the model's sequence vector.

        Outside training the batch is encoded in chunks of at most ``EVAL_TOKENS`` positions, so evaluation
        memory does not grow with ``eval_batch_size`` × history length (4096 rows × 200 positions took 1.6 GB
        of gSASRec activations on the 1M-interaction benchmark); the states are the same."""
        if self.training or item_seq.numel() <= EVAL_TOKENS:
            return self._sequence_state(item_seq, item_seq_len)
        rows = max(1, EVAL_TOKENS // item_seq.shape[1])
        return torch.cat([self._sequence_state(item_seq[i:i + rows], item_seq_len[i:i + rows])
                          for i in range(0, len(item_seq), rows)])

    def _sequence_state(self, item_seq, item_seq_len):
        if self.output == "sequence":
            return self.encode_sequence(item_seq, item_seq_len)
        return self.gather_indexes(self.position_states(item_seq, item_seq_len), item_seq_len - 1)

    def calculate_loss(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        if TARGETS in interaction:
            states = self.position_states(item_seq, item_seq_len)  # (B, W, d), W = longest input
            targets = interaction[TARGETS][:, :states.shape[1], None]  # (B, W, 1)
        else:
            states = self.forward(item_seq, item_seq_len)[:, None, :]  # (B, 1, d)
            found = interaction[RSS_TARGETS] if RSS_TARGETS in interaction else interaction[self.POS_ITEM_ID][:, None]
            targets = found[:, None, :]  # (B, 1, T)
        return self.loss(states, targets)

    def loss(self, states: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        states, embeddings = self.scoring_states(states), self.scoring_table()
        if self.train_popularity_prior:  # one more column, as item_bias: every loss sees score + β_t·log(1 + n_i)
            states = torch.cat([states, torch.ones_like(states[..., :1])], dim=-1)
            prior = self.train_popularity_prior * self.log_popularity[:, None].to(embeddings.dtype)
            embeddings = torch.cat([embeddings, prior], dim=-1)
        if self.loss_type == "CE":
            return losses.softmax_ce(states, targets, embeddings)
        if self.loss_type == "BCE":
            return losses.full_bce(states, targets, embeddings)
        if self.loss_type == "LambdaRank":
            return losses.lambdarank(states, targets, embeddings)
        if self.negatives_per == "position":  # every scored position becomes its own row: (M, 1, ·)
            states, targets = (x[:, None] for x in losses.scored_rows(states, targets))
        negatives = losses.sample_negatives(states.shape[0], self.num_negatives, self.n_items, states.device)
        return losses.gbce(states, targets, embeddings, negatives, self.gbce_beta)

    def prior(self) -> torch.Tensor:
        """(n_items,) the score prior ``β·log(1 + n_i)`` (zeros with β = 0)."""
        return self.popularity_prior * self.log_popularity

    def predict(self, interaction):
        state = self.scoring_states(self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]))
        items = interaction[self.ITEM_ID]
        return (state * self.scoring_table()[items]).sum(-1) + self.prior()[items]

    def full_sort_predict(self, interaction):
        state = self.scoring_states(self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]))
        return state @ self.scoring_table().T + self.prior()  # (B, n_items)

    def full_sort_predict_with_new_items(self, interaction, features) -> torch.Tensor:
        """(B, n_items + n_new): ``full_sort_predict``'s scores, then those of items outside the catalogue (text
        models: ``features`` from their ``new_item_features``, made scoring rows by their ``new_item_rows``), from
        one encoding of the sequences."""
        state = self.scoring_states(self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]))
        new_rows = self.new_item_rows(features.to(state.device))  # (n_new, d)
        prior = torch.cat([self.prior(), self.prior().new_zeros(len(new_rows))])  # new items: n_i = 0
        return state @ torch.cat([self.scoring_table(), new_rows]).T + prior
