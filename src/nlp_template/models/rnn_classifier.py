"""`RNNClassifier`: a (bi)LSTM or GRU over packed variable-length sequences, for sentence (pair) classification.

Classic recurrent models still win on small data and small devices. This one shares everything else with the
transformer classifier: the data module, tokenizer, batching, metrics, optimizer configs and checkpoints.
`pack_padded_sequence` makes the RNN stop at each sequence's real end, so padding neither costs compute nor leaks
into the final states; lengths go to the CPU as PyTorch requires, and `enforce_sorted=False` lets batches come in
any order (the batch sampler already groups by length where configured). ONNX exports trace packing into ONNX's LSTM
operator; ExecuTorch has none, and `torch.export` cannot capture packing: its graph computes the same numbers from a
mask, step by step in a loop (`masked_rnn.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.optim import Optimizer
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_template.models.graph import graph_runtime
from nlp_template.models.masked_rnn import masked_rnn
from nlp_template.models.text_classifier import (
    MULTI,
    REGRESSION,
    SINGLE,
    SequenceClassificationTask,
    classification_settings,
)
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import load_or_explain, resolve_name_or_path

POOLING = ("last", "mean", "max")


class RNNNetwork(nn.Module):
    """Embedding -> (bi)LSTM/GRU over packed sequences -> pooling -> dropout -> linear head.

    Args:
        vocab_size: embedding rows.
        num_labels: classes.
        pad_token_id: embedding row kept at zero for padding.
        embedding_dim: embedding width.
        hidden_size: RNN state width per direction.
        num_layers: stacked RNN layers.
        cell: `lstm` or `gru`.
        bidirectional: read left-to-right and right-to-left.
        pooling: `last` (final states of both directions), `mean` or `max` over the real (unpadded) positions.
        dropout: on embeddings, between layers and before the head.
        problem_type: the loss: cross-entropy (one class), BCE with logits per label (multi-label) or MSE.
    """

    def __init__(
        self, vocab_size: int, num_labels: int, pad_token_id: int = 0, embedding_dim: int = 128,
        hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm", bidirectional: bool = True,
        pooling: str = "max", dropout: float = 0.2, problem_type: str = SINGLE,
    ) -> None:  # fmt: skip
        super().__init__()
        self.problem_type = problem_type
        if cell not in ("lstm", "gru") or pooling not in POOLING:
            raise UserInputError(f"model.cell must be lstm or gru and model.pooling one of {POOLING}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_token_id)
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            embedding_dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **unused: Any,  # token_type_ids of pair inputs: the [SEP] token already marks the boundary
    ) -> SequenceClassifierOutput:
        """Logits (and the cross-entropy when `labels` are given) for a padded batch."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embedded = self.dropout(self.embedding(input_ids))
        outputs, finals = self._encode(embedded, attention_mask)
        pooled = self._pool(outputs, finals, attention_mask)
        logits = self.head(self.dropout(pooled))
        return SequenceClassifierOutput(loss=None if labels is None else self._loss(logits, labels), logits=logits)

    def _encode(self, embedded: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Outputs at every position (zeros at padding) and the top layer's final state per direction."""
        if graph_runtime() == "executorch":  # it has no LSTM operator, and packing cannot be captured: masked steps
            first_kept = attention_mask.clone()
            first_kept[:, 0] = 1  # as the clamp(min=1) below: a row without tokens still reads its first position
            return masked_rnn(self.rnn, embedded, first_kept)
        lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()  # pack_padded_sequence wants CPU lengths
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)
        padded, _ = pad_packed_sequence(outputs, batch_first=True, total_length=attention_mask.shape[1])
        hidden = final[0] if isinstance(final, tuple) else final  # LSTM: (h, c); GRU: h
        directions = 2 if self.rnn.bidirectional else 1
        return padded, list(hidden[-directions:])  # the top layer's final state per direction

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.problem_type == REGRESSION:
            return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
        if self.problem_type == MULTI:
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return nn.functional.cross_entropy(logits, labels)

    def _pool(self, padded: torch.Tensor, finals: list, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":
            return torch.cat(finals, dim=-1)
        mask = attention_mask.unsqueeze(-1).to(padded.dtype)
        if self.pooling == "mean":
            return (padded * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return padded.masked_fill(mask == 0, torch.finfo(padded.dtype).min).max(dim=1).values


class RNNClassifier(SequenceClassificationTask):
    """Sentence (pair) classification with `RNNNetwork`; data, metrics and optimizers as `TextClassifier`.

    Args:
        id2label: label names by id (given by the data module; none for regression).
        problem_type: single-/multi-label classification or regression (given by the data module).
        threshold: multi-label decision threshold on each label's probability.
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        backbone: Hub id or directory of a pretrained model whose input embeddings initialise the embedding (None:
            random). `data.tokenizer` defaults to `model.backbone`, so the data then uses that model's tokenizer
            and the embedding rows match the token ids.
        embedding_dim: embedding width (ignored with `backbone`: the pretrained width is used).
        hidden_size: RNN state width per direction.
        num_layers: stacked RNN layers.
        cell: `lstm` or `gru`.
        bidirectional: read in both directions.
        pooling: `last`, `mean` or `max`.
        dropout: dropout rate.
        freeze_embedding: keep the initialised embedding fixed.
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        compile: `torch.compile` the network with dynamic shapes.
    """

    pipeline_task = None  # not a Hugging Face network: no `transformers.pipeline`

    def __init__(
        self,
        id2label: dict[int, str] | None = None,
        problem_type: str | None = None,
        threshold: float = 0.5,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        tokenizer_path: str | None = None,
        backbone: str | None = None,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        pooling: str = "max",
        dropout: float = 0.2,
        freeze_embedding: bool = False,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        compile: bool = False,
    ) -> None:
        names, problem_type = classification_settings(id2label, problem_type, "RNNClassifier")
        super().__init__(len(names), problem_type, threshold, optimizer, scheduler, gradient_clip_val)
        if not vocab_size:
            raise UserInputError("RNNClassifier needs vocab_size (the data module provides it in train.py)")
        pretrained = _pretrained_embeddings(backbone, vocab_size) if backbone else None
        if pretrained is not None:
            embedding_dim = pretrained.shape[1]
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        # The pretrained embedding is in the state dict from now on: a checkpoint loads without the backbone.
        self.hparams.update(id2label=None if problem_type == REGRESSION else names, problem_type=problem_type,
                            embedding_dim=embedding_dim, backbone=None)  # fmt: skip
        self.network = RNNNetwork(
            vocab_size, len(names), pad_token_id or 0, embedding_dim, hidden_size, num_layers, cell,
            bidirectional, pooling, dropout, problem_type,
        )  # fmt: skip
        if pretrained is not None:
            self.network.embedding.weight.data.copy_(pretrained)
            self.network.embedding.weight.requires_grad = not freeze_embedding
        self.setup_network(compile=compile)


def _pretrained_embeddings(name_or_path: str, vocab_size: int) -> torch.Tensor:
    """The input-embedding matrix of a pretrained model, checked against the tokenizer's vocabulary size."""
    from transformers import AutoModel

    path = resolve_name_or_path(name_or_path, "model", "model.backbone")
    weights = load_or_explain("model weights", path, AutoModel.from_pretrained).get_input_embeddings().weight
    if weights.shape[0] < vocab_size:
        raise UserInputError(
            f"model.backbone has {weights.shape[0]} embeddings but the tokenizer has {vocab_size} tokens; set"
            f" data.tokenizer={name_or_path} so both use the same vocabulary"
        )
    return weights[:vocab_size].detach().clone()
