"""UniSRec (Hou et al., KDD'22): universal item representations from item text, through a mixture-of-experts
whitening adaptor, into a SASRec encoder.

Item i's text → frozen language model → ``x_i`` (plm_size,), computed once and cached
(:func:`recbole_text.text.item_embeddings`). The **MoE adaptor** turns it into the model's space:

    x̃ᵏ_i = (Dropout(x_i) − bᵏ) Wᵏ                      k = 1..G (n_exps), bᵏ zero-init, Wᵏ ~ N(0, 0.02), no bias
    g_i  = softmax(x_i W_g + δ),  δ = ε·(softplus(x_i W_n) + 0.01),  ε ~ N(0, 1) in training, δ = 0 in eval
    v_i  = Σ_k g_ik x̃ᵏ_i                               (n_items, d);  W_g, W_n zero-init: uniform gate at start

``train_stage``: ``inductive_ft`` (and ``pretrain``) score with the text alone, ``transductive_ft`` adds an ID
embedding, ``v_i + e_i``. The sequence encoder is SASRec's (:class:`SeqSASRec`): ``f_j = v_{s_j} (+ e_{s_j}) + p_j``,
LayerNorm, dropout, causal transformer. Scores are cosines over temperature τ against all items,

    score(t, i) = cos(h_t, v_i) / τ          (τ = ``temperature``, 0.07)

so every loss of :class:`SequenceLossRecommender` (softmax CE by default) and every training strategy works
(``sequence``: a loss at every position; ``prefix``: RecBole's rows).

**Pretraining** (``train_stage: pretrain``, RecBole's prefix rows of one dataset or of several domains combined,
see :mod:`recbole_text.data.multi_domain`): ``L = ℓ_SI + λ·ℓ_SS`` with in-batch negatives: ℓ_SI is InfoNCE
between each sequence and its next item's ``v`` (another row whose target is the same item is not counted as a
negative), ℓ_SS between each sequence and an augmented view of itself (with probability 0.9 each item dropped
with p 0.2, else the text vectors word-dropped with ``hidden_dropout_prob``), λ = ``lambda_ss`` (1e-3).
The public code had a broadcasting bug in this loss (``keepdim=True``, fixed upstream Feb 2023): the masks here
are (B, B) throughout.

**Parameter-efficient finetuning** (``freeze_encoder: True``): the transformer and position embeddings keep their
(pretrained) values; the adaptor and the ID embeddings train. It is a real boolean setting (the public script's
``-f`` flag was ``type=bool``, so ``-f False`` still froze, and full finetuning could not be chosen).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from recbole_text.config import ConfigError
from recbole_text.data.sequence_data import compact_left
from recbole_text.model.abstract_recommender import LOSSES, NEGATIVE_SHARING
from recbole_text.model.losses import in_batch_info_nce
from recbole_text.model.sequential_recommender.seqsasrec import SeqSASRec

STAGES = ("pretrain", "inductive_ft", "transductive_ft")
LENGTH_GROUPS = 4  # pretraining encodes rows in this many groups of similar length (see UniSRec.last_states)


class MoEAdaptor(nn.Module):
    """G parametric-whitening experts and a noisy softmax gate over all of them: (…, plm_size) → (…, d)."""

    def __init__(self, n_exps: int, plm_size: int, d: int, dropout: float, noise: bool = True):
        super().__init__()
        self.n_exps, self.d, self.noise = n_exps, d, noise
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(n_exps, plm_size))  # bᵏ
        self.weight = nn.Parameter(torch.randn(n_exps, plm_size, d) * 0.02)  # Wᵏ
        self.gate = nn.Parameter(torch.zeros(plm_size, n_exps))  # W_g
        self.gate_noise = nn.Parameter(torch.zeros(plm_size, n_exps))  # W_n

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """(…, plm_size) → (…, G), rows summing to 1; noisy in training only."""
        logits = x @ self.gate
        if self.training and self.noise:
            logits = logits + torch.randn_like(logits) * (F.softplus(x @ self.gate_noise) + 0.01)
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x − bᵏ)Wᵏ = xWᵏ − bᵏWᵏ: one (…, plm_size) × (plm_size, G·d) matmul instead of G small ones
        plm_size = x.shape[-1]
        stacked = self.weight.transpose(0, 1).reshape(plm_size, self.n_exps * self.d)  # (plm_size, G·d)
        experts = (self.dropout(x) @ stacked).unflatten(-1, (self.n_exps, self.d))  # (…, G, d)
        experts = experts - torch.einsum("gp,gpd->gd", self.bias, self.weight)  # bᵏWᵏ: (G, d)
        return (self.gates(x)[..., None] * experts).sum(dim=-2)  # (…, d)


class UniSRec(SeqSASRec):
    family = "UniSRec"
    setting_choices = {"loss_type": LOSSES, "negatives_per": NEGATIVE_SHARING, "train_stage": STAGES}

    @staticmethod
    def prepare_text(config, dataset) -> None:
        """Fill the text embedding cache (a Ray driver calls this once; trials then only load the table)."""
        from recbole_text.text import ensure_item_embeddings

        ensure_item_embeddings(config, dataset)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)  # ID embedding, positions, SASRec encoder
        from recbole_text.text import item_embeddings

        self.stage = config["train_stage"] or "inductive_ft"
        self.temperature = float(config["temperature"])
        self.lambda_ss = float(config["lambda_ss"])
        self.item_drop = float(config["item_drop_prob"])
        plm = item_embeddings(config, dataset).float()  # (n_items, plm_size), row 0 = padding
        if plm.shape[0] != self.n_items:
            raise ConfigError(f"text embeddings have {plm.shape[0]} rows for {self.n_items} items")
        self.register_buffer("plm_embedding", plm, persistent=False)  # rebuilt from the text cache, never trained
        self.adaptor = MoEAdaptor(config["n_exps"], plm.shape[1], config["hidden_size"], config["adaptor_dropout_prob"])
        self.use_ids = self.stage == "transductive_ft"
        if self.stage == "pretrain" and config["train_strategy"] != "prefix":
            raise ConfigError("UniSRec pretraining contrasts each row with its next item: train_strategy=prefix")
        if config["freeze_encoder"]:
            for module in (self.encoder, self.position_embedding):
                module.requires_grad_(False)
        self._table = None

    # --- item representations ---------------------------------------------------------------------------
    def item_table(self) -> torch.Tensor:
        """(n_items, d): ``v_i`` (+ ``e_i`` when transductive); computed once per step (see ``_one_table``)."""
        if self._table is not None:
            return self._table
        return self.item_vectors(self.plm_embedding, self.item_embedding.weight)

    def item_vectors(self, plm: torch.Tensor, ids_embedding: torch.Tensor) -> torch.Tensor:
        """Adapted text vectors ``v`` of the rows ``plm`` (+ their ID embeddings when transductive): (n, d)."""
        table = self.adaptor(plm)
        return table + ids_embedding if self.use_ids else table

    @contextmanager
    def _one_table(self):
        """Compute the adapted table once for a whole loss or ranking call (it feeds both inputs and scores)."""
        self._table = self.item_table()
        try:
            yield self._table
        finally:
            self._table = None

    def output_embeddings(self) -> torch.Tensor:
        return self.item_table()

    def scoring_table(self) -> torch.Tensor:
        return F.normalize(self.item_table(), dim=-1)

    def scoring_states(self, states: torch.Tensor) -> torch.Tensor:
        return F.normalize(states, dim=-1) / self.temperature

    # --- encoder ------------------------------------------------------------------------------------------
    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, table=None) -> torch.Tensor:
        table = self.item_table() if table is None else table
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)  # (L,)
        hidden = F.embedding(item_seq, table) + self.position_embedding(positions)[None]  # (B, L, d)
        hidden = self.dropout(self.layer_norm(hidden))
        mask = self.get_attention_mask(item_seq)  # (B, 1, L, L)
        return self.encoder(hidden, mask, output_all_encoded_layers=False)[-1]  # (B, L, d)

    def calculate_loss(self, interaction):
        if self.stage == "pretrain":  # in-batch negatives: only the batch's items are adapted
            return self.pretrain_loss(interaction)
        with self._one_table():
            return super().calculate_loss(interaction)

    def predict(self, interaction):
        with self._one_table():
            return super().predict(interaction)

    def full_sort_predict(self, interaction):
        with self._one_table():
            return super().full_sort_predict(interaction)

    @staticmethod
    def new_item_features(config, dataset, attributes: list[dict]) -> torch.Tensor:
        """Frozen text vectors (n, plm_size) of items that are not in ``dataset``, from their ``{key: value}``
        attributes, with the encoder settings of ``config`` (cached like the catalogue's table)."""
        from recbole_text.text.cache import ensure_text_embeddings, load_table
        from recbole_text.text.texts import encoder_text, text_fields

        fields = text_fields(config, dataset)
        texts = [encoder_text(a, fields) for a in attributes]
        empty = [i for i, text in enumerate(texts) if not text]
        if empty:
            raise ValueError(f"{len(empty)} of the items have no text in {', '.join(fields)} (the fields the model "
                             f"reads), e.g. item number {empty[0] + 1} of the file")
        table = ensure_text_embeddings(config, [""] + texts, f"{dataset.dataset_name}-added", fields)
        return torch.from_numpy(load_table(table, len(texts) + 1)[1:].copy())

    def new_item_rows(self, plm_vectors: torch.Tensor) -> torch.Tensor:
        """Scoring rows of items known only by their frozen text vectors: adapted by the MoE adaptor (they have
        no ID embedding) and normalised like the catalogue's."""
        return F.normalize(self.adaptor(plm_vectors), dim=-1)

    def full_sort_predict_with_new_items(self, interaction, features):
        with self._one_table():
            return super().full_sort_predict_with_new_items(interaction, features)

    # --- pretraining --------------------------------------------------------------------------------------
    def augmented_states(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, plm: torch.Tensor,
                         ids_embedding: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """The sequence state of a second view: items dropped (prob 0.9, each with ``item_drop_prob``, at least
        one kept, re-packed to the left) or the text vectors ``plm`` word-dropped and adapted again."""
        if torch.rand(()) < 0.9:
            real = item_seq > 0
            keep = real & (torch.rand(item_seq.shape, device=item_seq.device) >= self.item_drop)
            keep[torch.arange(len(item_seq)), item_seq_len - 1] |= ~keep.any(dim=1)  # never an empty view
            item_seq, item_seq_len = compact_left(item_seq, keep, item_seq.shape[1])
        else:
            table = self.item_vectors(F.dropout(plm, self.dropout.p, training=True), ids_embedding)
        return self.last_states(item_seq, item_seq_len, table)

    def last_states(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, d): the state at each row's last item. Prefix rows are mostly padding (Amazon histories average
        under 10 items), so rows of similar length are encoded together in ``LENGTH_GROUPS`` groups, each cut
        to its own longest row: on Office+Instruments+Games 20,480 positions of a 1024-row batch become ~9,000."""
        order = torch.argsort(item_seq_len)
        parts = []
        for rows in order.chunk(LENGTH_GROUPS):
            lengths = item_seq_len[rows]
            states = self.encode(item_seq[rows, :int(lengths.max())], lengths, table)
            parts.append(self.gather_indexes(states, lengths - 1))
        return torch.cat(parts)[torch.argsort(order)]

    def pretrain_loss(self, interaction) -> torch.Tensor:
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        item_seq = item_seq[:, :int(item_seq_len.max())]  # (B, L') left-aligned: the rest is padding
        targets = interaction[self.POS_ITEM_ID]  # (B,)
        # the batch's own catalogue: id 0 first, so local id 0 is still the padding id
        batch_ids = torch.cat([targets.new_zeros(1), item_seq.flatten(), targets])
        ids, local = torch.unique(batch_ids, return_inverse=True)  # ids (n,) ascending
        local_seq, local_targets = local[1:1 + item_seq.numel()].view_as(item_seq), local[1 + item_seq.numel():]
        plm, ids_embedding = self.plm_embedding[ids], self.item_embedding(ids)  # (n, plm_size), (n, d)
        table = self.item_vectors(plm, ids_embedding)  # (n, d)
        states = self.last_states(local_seq, item_seq_len, table)  # (B, d)
        same_target = targets[:, None] == targets[None, :]  # (B, B)
        seq_item = in_batch_info_nce(states, table[local_targets], same_target, self.temperature)
        augmented = self.augmented_states(local_seq, item_seq_len, plm, ids_embedding, table)
        return seq_item + self.lambda_ss * in_batch_info_nce(states, augmented, same_target, self.temperature)
