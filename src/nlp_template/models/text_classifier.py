"""Sequence classification: `TextClassifier` (a Hugging Face encoder) on `SequenceClassificationTask`.

`SequenceClassificationTask` owns what every sentence classifier shares: the loss (the network's cross-entropy, a
mean over the examples of the batch), the metrics (torchmetrics accuracy and macro F1) and the steps; the
recurrent classifier (`rnn_classifier.py`) uses it with another network. Hyperparameters hold plain values only,
including the network's full config, so `TextClassifier.load_from_checkpoint(path)` rebuilds the network offline
from the checkpoint alone; the tokenizer lives beside it (`hparams.tokenizer_path`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import AutoModelForSequenceClassification

from nlp_template.models.base import TaskModule, label_maps


class SequenceClassificationTask(TaskModule):
    """Steps and metrics of sentence (pair) classification; subclasses build `self.network`.

    Args:
        num_labels: number of classes.
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
    """

    def __init__(
        self,
        num_labels: int,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes=num_labels, average="micro"),
                "f1": MulticlassF1Score(num_classes=num_labels, average="macro"),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict:
        """Loss, accuracy and macro F1 of a batch; returns the predictions and probabilities (for callbacks)."""
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        output = self(**batch)
        predictions = output.logits.argmax(dim=-1)
        metrics.update(predictions, batch["labels"])
        batch_size = batch["labels"].shape[0]
        self.log(f"{stage}/loss", output.loss, prog_bar=stage == "val", batch_size=batch_size, sync_dist=True)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=batch_size)
        # For callbacks (e.g. ClassificationReport): what was predicted, with which probability.
        return {"predictions": predictions, "probabilities": output.logits.float().softmax(dim=-1).detach()}


class TextClassifier(SequenceClassificationTask):
    """Sequence (or sequence-pair) classification with a Hugging Face encoder.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a tiny encoder `{model_type: bert, hidden_size: 128, ...}`.
        id2label: label names by id (given by the data module).
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% more compute).
        compile: `torch.compile` the network (not the LightningModule) with dynamic shapes, so the varying
            lengths of dynamic padding do not recompile it for every new length.
    """

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        id2label: dict[int, str] | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        tokenizer_path: str | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        backbone_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
    ) -> None:
        id2label = label_maps(id2label, "TextClassifier")
        super().__init__(len(id2label), optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.hparams["id2label"] = id2label
        task_settings = {"id2label": id2label, "vocab_size": vocab_size, "pad_token_id": pad_token_id}
        self.network = self.hf_network(AutoModelForSequenceClassification, task_settings)
        self.setup_network(gradient_checkpointing, compile)
