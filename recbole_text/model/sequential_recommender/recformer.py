"""Recformer (Li et al., KDD'23, "Text Is All You Need"): items as key-value sentences, one Longformer for
sequences and items, cosine scores — no item IDs anywhere.

An item is its attributes flattened to ``key value key value …`` tokens; a sequence is ``[CLS]`` followed by its
items most recent first (:mod:`recbole_text.text.item_tokens`). The embedding of token ``w`` is

    E_w = LayerNorm(A_w + B_w + C_w + D_w)        word + token position + token type + item position

with token types {[CLS], key, value, pad} and item position 0 for [CLS], k for the k-th most recent item. The
Longformer (:mod:`recbole_text.text.longformer`: a Longformer checkpoint, or a BERT encoder such as the packaged
MiniLM converted; sliding-window attention of ``attention_window``, global attention on [CLS]; computed with
dense masks, ``attention_impl: dense``, or Hugging Face's chunked kernels, ``longformer``, same results) gives

    s = h_[CLS]( [CLS] items… )        the sequence,          I_i = h_[CLS]( [CLS] item i )   item i,
    score(s, i) = cos(s, I_i) / τ      (τ = ``temperature``, 0.05), softmax over all items.

``recformer_pooling: mean`` replaces ``h_[CLS]`` by the mean of the input's real token states (not the paper's:
the packaged MiniLM was trained as a mean-pooled sentence encoder, and its [CLS] state is not one).

``train_stage``:

``pretrain``
    ``L = L_IIC + λ·L_MLM`` (λ = ``mlm_weight``, 0.1). Both inputs of a row, its sequence and its next item,
    are masked: whole words of their key and value tokens with probability ``mlm_probability`` (0.15; of their
    tokens 80 % → [MASK], 10 % → a random token, 10 % kept). MLM predicts them from both encodings with
    ``LayerNorm(GELU(W h + b))`` · word embeddingsᵀ; IIC is the InfoNCE between the two ``h_[CLS]`` of the same
    forward passes, with gradients on both sides and in-batch negatives (rows with the same target are not
    negatives). Word embeddings stay frozen. One or several datasets (``--dataset=A,B``). Pairs: ``train_strategy``
    ``sampled_prefix`` (the paper's: one per user per epoch, the target from the second half of the sequence) or
    ``prefix`` (every prefix); ``max_steps`` and ``eval_step: 0`` bound a pretraining run on large data.
``finetune``
    Two stages (the paper's Algorithm 1). Stage 1: at the start of every epoch the whole item table ``I`` is
    re-encoded (chunks of ``item_encode_batch_size``, no gradients, a progress bar) and the sequence side trains
    against it; the table is a buffer of the model, so the best checkpoint on validation holds the best
    (model, table) pair. Stage 2 (``finetune_stage2``): from that best checkpoint, with a fresh optimizer and
    schedule (the public code kept one optimizer and one decayed schedule across both stages), the table frozen
    for good. ``epochs=0`` evaluates a (pretrained) model as it is: zero-shot, the table encoded on first use.

Training rows are RecBole's prefix rows, RSS draws or sampled prefixes, none of which has an empty history
(the public code's one random target per user per epoch could leave ``[CLS]`` alone).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_text.config import ConfigError
from recbole_text.model.abstract_recommender import SequenceLossRecommender
from recbole_text.model.losses import in_batch_info_nce
from recbole_text.text.encoder import POOLINGS, pool
from recbole_text.text.longformer import dense_forward

STAGES = ("pretrain", "finetune")
ATTENTION = ("dense", "longformer")  # the same attention: dense masks (fast for short inputs) or HF's chunks
MASK_KEEP, MASK_RANDOM = 0.1, 0.1  # of the masked tokens: kept as they are / replaced by a random token


class Recformer(SequenceLossRecommender):
    output = "sequence"
    family = "Recformer"
    train_strategies = ("prefix", "rss", "sampled_prefix")
    setting_choices = {"loss_type": ("CE",), "train_stage": STAGES, "attention_impl": ATTENTION,
                       "recformer_pooling": POOLINGS}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        from recbole_text.text.item_tokens import item_tokens, load_tokenizer
        from recbole_text.text.longformer import load_longformer

        self.stage = config["train_stage"] or "finetune"
        self.temperature = float(config["temperature"])
        self.max_token_num, self.max_item_num = int(config["max_token_num"]), int(config["max_item_num"])
        self.encode_batch_size = int(config["item_encode_batch_size"])
        self.show_progress = bool(config["show_progress"])
        # evaluation and item-table encoding autocast (bf16 on CPU: ~3x faster, tables at cosine 1.0000 to fp32)
        self.eval_amp, self.amp_dtype = bool(config["eval_amp"]), config["amp_dtype"]
        self.attention_impl = config["attention_impl"] or "dense"
        self.pooling = config["recformer_pooling"] or "cls"
        self.backbone, folder = load_longformer(config["plm_name"], int(config["attention_window"]))
        if config["attention_dropout"] is not None:  # ~ keeps the backbone's attention_probs_dropout_prob
            set_attention_dropout(self.backbone, float(config["attention_dropout"]))  # checked by the config
        positions = self.backbone.config.max_position_embeddings - self.backbone.config.pad_token_id - 1
        if not 2 <= self.max_token_num <= positions:
            raise ConfigError(f"max_token_num={self.max_token_num} must be in 2..{positions} (the backbone's "
                              "token positions)")
        d = self.backbone.config.hidden_size
        self.item_position_embedding = nn.Embedding(self.max_item_num + 1, d)  # D: 0 = [CLS] / padding
        nn.init.zeros_(self.item_position_embedding.weight)  # start as the backbone; training shapes it
        self.catalogue = item_tokens(config, dataset, folder)
        # the item table I and whether it holds the current model's encodings; both saved in checkpoints
        self.register_buffer("item_table", torch.zeros(self.n_items, d))
        self.register_buffer("item_table_ready", torch.zeros((), dtype=torch.bool))
        self.table_frozen = False
        if self.stage == "pretrain":
            if config["train_strategy"] not in ("prefix", "sampled_prefix"):
                raise ConfigError("Recformer pretraining pairs each prefix with its next item: train_strategy="
                                  "sampled_prefix (one pair per user per epoch, the target from the second half, as "
                                  "the paper) or prefix (every prefix)")
            self.backbone.embeddings.word_embeddings.requires_grad_(False)
            self.mlm_probability, self.mlm_weight = float(config["mlm_probability"]), float(config["mlm_weight"])
            self.mlm_transform = nn.Sequential(nn.Linear(d, d), nn.GELU(),
                                               nn.LayerNorm(d, eps=self.backbone.config.layer_norm_eps))
            self.mlm_bias = nn.Parameter(torch.zeros(self.backbone.config.vocab_size))
            tokenizer = load_tokenizer(folder)
            self.mask_id = tokenizer.mask_token_id
            self.register_buffer("word_start", word_starts(tokenizer), persistent=False)  # (vocab,) bool

    @staticmethod
    def prepare_text(config, dataset) -> None:
        """Fill the tokenised-catalogue cache (a Ray driver calls this once; trials then only load it)."""
        from recbole_text.text.item_tokens import item_tokens
        from recbole_text.text.longformer import resolve_encoder

        item_tokens(config, dataset, resolve_encoder(config["plm_name"]))

    # --- encoder ------------------------------------------------------------------------------------------
    def encode_tokens(self, inputs: dict, cls_only: bool = False) -> torch.Tensor:
        """Inputs of :func:`~recbole_text.text.item_tokens.sequence_inputs` → (B, W, d) hidden states; with
        ``cls_only`` the dense path may return [CLS]'s alone, (B, 1, d), skipping most of the last layer."""
        embeddings = self.backbone.embeddings.word_embeddings(inputs["input_ids"])  # A
        embeddings = embeddings + self.item_position_embedding(inputs["item_position_ids"])  # + D
        # the backbone's embeddings add B (token positions) and C (token types), then LayerNorm and dropout
        if self.attention_impl == "dense":
            return dense_forward(self.backbone, embeddings, inputs["attention_mask"], inputs["token_type_ids"],
                                 inputs["global_attention_mask"], cls_only=cls_only)
        return self.backbone(inputs_embeds=embeddings, attention_mask=inputs["attention_mask"],
                             token_type_ids=inputs["token_type_ids"],
                             global_attention_mask=inputs["global_attention_mask"]).last_hidden_state

    def pool(self, hidden: torch.Tensor, inputs: dict) -> torch.Tensor:
        """(B, W, d) hidden states → (B, d) float32: ``h_[CLS]``, or with ``recformer_pooling: mean`` the mean of
        the real tokens' states ([CLS] included, padding not), the pooling a sentence encoder such as MiniLM was
        trained with (on Scientific level with [CLS] zero-shot and after one epoch)."""
        return pool(hidden, inputs["attention_mask"], self.pooling)

    def encode(self, inputs: dict) -> torch.Tensor:
        """Inputs → (B, d) pooled representations."""
        return self.pool(self.encode_tokens(inputs, cls_only=self.pooling == "cls"), inputs)

    def catalogue_on(self, device):
        """The tokenised catalogue on ``device``: moved once, with the first batch on the model's device."""
        self.catalogue = self.catalogue.to(device)  # ItemTokens.to returns itself when already there
        return self.catalogue

    def sequence_inputs(self, item_seq, item_seq_len) -> dict:
        from recbole_text.text.item_tokens import sequence_inputs

        return sequence_inputs(self.catalogue_on(item_seq.device), item_seq, item_seq_len, self.max_token_num,
                               self.max_item_num)

    def input_widths(self, item_seq, item_seq_len) -> torch.Tensor:
        """(B,) tokens of each row's sequence input, [CLS] included (``group_by_length`` batches by them)."""
        from recbole_text.text.item_tokens import input_widths

        return input_widths(self.catalogue, item_seq, item_seq_len, self.max_token_num, self.max_item_num)

    def inference_autocast(self, device: torch.device):
        """Autocast of evaluation and item-table encoding (``eval_amp``; bf16 only where the hardware has it, as
        training's autocast, which is the trainer's)."""
        from recbole_text.text.encoder import autocast_dtype

        dtype = autocast_dtype(self.amp_dtype, device) if self.eval_amp else None
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def encode_sequence(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.encode(self.sequence_inputs(item_seq, item_seq_len))
        with self.inference_autocast(item_seq.device):
            return torch.cat([self.encode(self.sequence_inputs(item_seq[i:i + self.encode_batch_size],
                                                               item_seq_len[i:i + self.encode_batch_size]))
                              for i in range(0, len(item_seq), self.encode_batch_size)])

    def encode_items(self, item_ids: torch.Tensor, catalogue=None) -> torch.Tensor:
        """(N,) item ids → (N, d): ``I_i = h_[CLS]([CLS] item i)`` (or its mean pooling) of ``catalogue``
        (default the dataset's), with gradients when training."""
        from recbole_text.text.item_tokens import item_inputs

        catalogue = self.catalogue_on(item_ids.device) if catalogue is None else catalogue.to(item_ids.device)
        return self.encode(item_inputs(catalogue, item_ids, self.max_token_num))

    @torch.no_grad()
    def encode_catalogue(self, catalogue=None, desc: str = "Recformer item table") -> torch.Tensor:
        """(n_items − 1, d) float32: every item of ``catalogue`` (default the dataset's) but the padding id, in
        eval mode, ``item_encode_batch_size`` items at a time, with a progress bar. Items are encoded shortest
        first, so a chunk pads little (Scientific at 128 tokens: 192 k token positions instead of 269 k)."""
        from tqdm import tqdm

        catalogue = self.catalogue if catalogue is None else catalogue
        was_training = self.training
        self.eval()
        device = self.item_table.device
        order = torch.argsort(catalogue.lengths()[1:], stable=True).to(device)  # (n_items − 1,) by width
        chunks = tqdm((order + 1).split(self.encode_batch_size), desc=desc, disable=not self.show_progress,
                      leave=False)
        with self.inference_autocast(device):
            encoded = torch.cat([self.encode_items(chunk, catalogue) for chunk in chunks])
        self.train(was_training)
        return torch.empty_like(encoded).index_copy_(0, order, encoded)  # back in id order

    def refresh_item_table(self) -> None:
        """Re-encode the whole item table (row 0, padding, stays zero)."""
        self.item_table[1:] = self.encode_catalogue()
        self.item_table_ready.fill_(True)

    # --- stages (trainer hooks) ---------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        if self.stage == "finetune" and not self.table_frozen:
            self.refresh_item_table()

    def on_stage_start(self, name: str) -> None:
        if name == "stage2":
            self.table_frozen = True  # the best stage-1 table, loaded with the best checkpoint, stays as it is

    @classmethod
    def next_stages(cls, config) -> list[tuple[str, dict]]:
        """Stages trained after the first (by ``recbole_text.run`` and Ray trials): stage 2 of finetuning."""
        if (config["train_stage"] or "finetune") != "finetune" or not config["finetune_stage2"] or not config["epochs"]:
            return []
        return [("stage2", {"learning_rate": config["stage2_learning_rate"] or config["learning_rate"],
                            "epochs": config["stage2_epochs"] or config["epochs"],
                            "stopping_step": config["stage2_stopping_step"] or config["stopping_step"]})]

    # --- scores -------------------------------------------------------------------------------------------
    def output_embeddings(self) -> torch.Tensor:
        if not bool(self.item_table_ready):
            self.refresh_item_table()  # e.g. zero-shot: a model evaluated before any epoch
        return self.item_table

    def scoring_table(self) -> torch.Tensor:
        return F.normalize(self.output_embeddings(), dim=-1)

    def scoring_states(self, states: torch.Tensor) -> torch.Tensor:
        return F.normalize(states, dim=-1) / self.temperature

    def new_item_features(self, config, dataset, attributes: list[dict]) -> torch.Tensor:
        """(n, d) representations ``I`` of items that are not in ``dataset``, from their ``{key: value}``
        attributes: tokenised like the catalogue, encoded by the model as it is now."""
        from recbole_text.text.item_tokens import attribute_keys, load_tokenizer, tokenize_items
        from recbole_text.text.longformer import resolve_encoder

        keys = attribute_keys(config, dataset)
        catalogue = tokenize_items(load_tokenizer(resolve_encoder(config["plm_name"])), [{}] + list(attributes), keys,
                                   max_attr_num=int(config["max_attr_num"]), max_attr_length=int(config["max_attr_length"]))
        empty = (catalogue.lengths()[1:] == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"{len(empty)} of the items have none of the attributes {', '.join(keys)}, e.g. item "
                             f"number {empty[0] + 1} of the file")
        return self.encode_catalogue(catalogue, desc="new items")

    def new_item_rows(self, vectors: torch.Tensor) -> torch.Tensor:
        """Scoring rows of items given by their representations (:meth:`new_item_features`)."""
        return F.normalize(vectors, dim=-1)

    # --- pretraining --------------------------------------------------------------------------------------
    def calculate_loss(self, interaction):
        if self.stage != "pretrain":
            return super().calculate_loss(interaction)
        from recbole_text.text.item_tokens import item_inputs

        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        targets = interaction[self.POS_ITEM_ID]  # (B,)
        sequences, sequence_labels = self.mask_words(self.sequence_inputs(item_seq, item_seq_len))
        items, item_labels = self.mask_words(item_inputs(self.catalogue_on(targets.device), targets,
                                                         self.max_token_num))
        sequence_hidden, item_hidden = self.encode_tokens(sequences), self.encode_tokens(items)  # (B, W·, d)
        iic = in_batch_info_nce(self.pool(sequence_hidden, sequences), self.pool(item_hidden, items),
                                targets[:, None] == targets[None, :], self.temperature)
        hidden = torch.cat([sequence_hidden[sequence_labels >= 0], item_hidden[item_labels >= 0]])  # (M, d)
        labels = torch.cat([sequence_labels[sequence_labels >= 0], item_labels[item_labels >= 0]])  # (M,)
        if not len(labels):
            return iic
        word_logits = self.mlm_transform(hidden) @ self.backbone.embeddings.word_embeddings.weight.T
        return iic + self.mlm_weight * F.cross_entropy(word_logits + self.mlm_bias, labels)

    def mask_words(self, inputs: dict) -> tuple[dict, torch.Tensor]:
        """Whole-word masking of the item tokens: ``(inputs with masked ids, labels (B, W))``, labels = the
        original id where masked, −1 elsewhere. A word is a token that starts one plus its continuations."""
        ids, types = inputs["input_ids"], inputs["token_type_ids"]
        maskable = (types == 1) | (types == 2)  # key and value tokens
        starts = maskable & self.word_start[ids]
        word = torch.cumsum(starts.reshape(-1), 0).view_as(ids)  # (B, W) word number, continuing tokens share it
        chosen_word = torch.rand(int(word.max()) + 1, device=ids.device) < self.mlm_probability
        chosen = maskable & chosen_word[word]
        roll = torch.rand(ids.shape, device=ids.device)
        random_ids = torch.randint_like(ids, self.backbone.config.vocab_size)
        new_ids = torch.where(chosen & (roll >= MASK_KEEP + MASK_RANDOM), self.mask_id, ids)
        new_ids = torch.where(chosen & (roll < MASK_RANDOM), random_ids, new_ids)
        return {**inputs, "input_ids": new_ids}, torch.where(chosen, ids, -1)


def set_attention_dropout(backbone, probability: float) -> None:
    """Dropout on the attention probabilities of every layer (both attention paths read the layer's float). On a
    CPU its masks cost ~28 ms a layer for 16 × 128 tokens: an fp32 MiniLM epoch trains 14-16% faster without."""
    backbone.config.attention_probs_dropout_prob = probability
    for layer in backbone.encoder.layer:
        layer.attention.self.dropout = probability


def word_starts(tokenizer) -> torch.Tensor:
    """(vocab,) bool: which token ids begin a word — WordPiece marks continuations with ``##``, byte-level BPE
    (RoBERTa, Longformer) marks word starts with ``Ġ``."""
    vocab = tokenizer.get_vocab()
    byte_level = any(token.startswith("Ġ") for token in list(vocab)[:5000])
    starts = torch.ones(max(vocab.values()) + 1, dtype=torch.bool)
    for token, index in vocab.items():
        starts[index] = token.startswith("Ġ") if byte_level else not token.startswith("##")
    return starts
