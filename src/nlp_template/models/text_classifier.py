"""Sequence classification: `TextClassifier` (a Hugging Face encoder) on `SequenceClassificationTask`.

`SequenceClassificationTask` owns what every sentence classifier shares: the loss (the network's cross-entropy, a
mean over the examples of the batch; binary cross-entropy per label for multi-label data, mean squared error for
regression), the metrics (torchmetrics), the steps and the predictions; the
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
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelExactMatch,
    MultilabelF1Score,
)
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef
from transformers import AutoModelForSequenceClassification

from nlp_template.models.base import TaskModule, label_maps, metrics_dtype, truncated_flag
from nlp_template.utils.errors import UserInputError

SINGLE, MULTI, REGRESSION = "single_label_classification", "multi_label_classification", "regression"


def _metrics(problem_type: str, num_labels: int, threshold: float) -> MetricCollection:
    """The metrics of a problem type: torchmetrics, whose states are summed or gathered across DDP ranks.

    One class per example: accuracy and macro F1; multi-label: micro/macro F1 and subset accuracy (every label
    right); regression: mean squared error and the Pearson and Spearman correlations.
    """
    if problem_type == REGRESSION:
        # float64 sums: float32 ones differ in the 6th digit between batchings and rank counts (`TaskModule.setup`).
        return MetricCollection(
            {"mse": MeanSquaredError(), "pearson": PearsonCorrCoef(), "spearman": SpearmanCorrCoef()}
        ).set_dtype(torch.float64)
    if problem_type == MULTI:
        return MetricCollection({
            "f1_micro": MultilabelF1Score(num_labels, threshold=threshold, average="micro"),
            "f1_macro": MultilabelF1Score(num_labels, threshold=threshold, average="macro"),
            "subset_acc": MultilabelExactMatch(num_labels, threshold=threshold),
        })  # fmt: skip
    return MetricCollection({
        "acc": MulticlassAccuracy(num_classes=num_labels, average="micro"),
        "f1": MulticlassF1Score(num_classes=num_labels, average="macro"),
    })  # fmt: skip


class SequenceClassificationTask(TaskModule):
    """Steps, metrics and predictions of sentence (pair) classification, multi-label classification and regression.

    Subclasses build `self.network`, whose loss follows the problem type (cross-entropy, binary cross-entropy with
    logits per label, mean squared error).

    Args:
        num_labels: number of classes (1 for regression).
        problem_type: `single_label_classification`, `multi_label_classification` or `regression`.
        threshold: multi-label: a label is predicted when its probability is at least this.
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
    """

    pipeline_task = "text-classification"

    def __init__(
        self,
        num_labels: int,
        problem_type: str = SINGLE,
        threshold: float = 0.5,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, gradient_clip_val)
        if problem_type not in (SINGLE, MULTI, REGRESSION):
            raise UserInputError(f"unknown problem_type '{problem_type}'; use {SINGLE}, {MULTI} or {REGRESSION}")
        self.problem_type, self.threshold = problem_type, threshold
        metrics = _metrics(problem_type, num_labels, threshold)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (softmax), label probabilities (sigmoid) or the predicted value (regression)."""
        logits = logits.float()
        if self.problem_type == REGRESSION:
            return logits.squeeze(-1)
        return logits.sigmoid() if self.problem_type == MULTI else logits.softmax(dim=-1)

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> dict | None:
        """Loss and metric updates of a batch; single-label: returns predictions and probabilities (for callbacks)."""
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        output = self(**batch)
        scores = self.scores(output.logits)
        labels = batch["labels"]
        if self.problem_type == MULTI:
            metrics.update(scores, labels.int())
        elif self.problem_type == REGRESSION:
            metrics.update(scores.to(metrics_dtype(metrics)), labels.to(metrics_dtype(metrics)))
        else:
            metrics.update(scores, labels)
        batch_size = labels.shape[0]
        self.log_loss(stage, output.loss, self.loss_count(batch))  # cross-entropy / BCE / MSE: over the examples
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=batch_size)
        if self.problem_type != SINGLE:
            return None
        # For callbacks (e.g. ClassificationReport): what was predicted, with which probability.
        return {"predictions": scores.argmax(dim=-1), "probabilities": scores.detach()}

    def decode_predictions(
        self, examples: list[dict], features: list[dict], outputs: Any, threshold: float | None = None, **unused: Any
    ) -> list[dict]:
        """One result per example: the label and every label's probability.

        Multi-label: every label at or above `threshold` (default: the model's) and all probabilities; regression:
        the predicted `score`.
        """
        scores = self.scores(outputs.logits).tolist()
        names = [self.hparams.id2label[index] for index in range(len(self.hparams.id2label or {}))]
        threshold = self.threshold if threshold is None else threshold
        results = []
        for feature, row in zip(features, scores, strict=True):
            if self.problem_type == REGRESSION:
                result = {"score": row}
            elif self.problem_type == MULTI:
                result = {"labels": [name for name, p in zip(names, row, strict=True) if p >= threshold],
                          "probabilities": dict(zip(names, row, strict=True))}  # fmt: skip
            else:
                result = {"label": names[max(range(len(names)), key=row.__getitem__)],
                          "probabilities": dict(zip(names, row, strict=True))}  # fmt: skip
            results.append({**result, **truncated_flag(feature)})
        return results

    def export_info(self) -> dict[str, Any]:
        """Label names, the problem type and (multi-label) the threshold."""
        info = {**super().export_info(), "problem_type": self.problem_type}
        if self.problem_type == MULTI:
            info["threshold"] = self.threshold
        return info


def classification_settings(id2label: dict | None, problem_type: str | None, owner: str) -> tuple[dict[int, str], str]:
    """The label names (one `score` output for regression) and the problem type a classifier is built with."""
    problem_type = problem_type or SINGLE
    if problem_type == REGRESSION:
        return {0: "score"}, problem_type
    return label_maps(id2label, owner), problem_type


class TextClassifier(SequenceClassificationTask):
    """Sequence (or sequence-pair) classification with a Hugging Face encoder.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a tiny encoder `{model_type: bert, hidden_size: 128, ...}`.
        id2label: label names by id (given by the data module; none for regression).
        problem_type: single-/multi-label classification or regression (given by the data module).
        threshold: multi-label decision threshold on each label's probability.
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% more compute).
        compile: `torch.compile` the network (not the LightningModule) with dynamic shapes, so the varying
            lengths of dynamic padding do not recompile it for every new length.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
    """

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        id2label: dict[int, str] | None = None,
        problem_type: str | None = None,
        threshold: float = 0.5,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        tokenizer_path: str | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        backbone_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
        peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
    ) -> None:
        names, problem_type = classification_settings(id2label, problem_type, "TextClassifier")
        super().__init__(len(names), problem_type, threshold, optimizer, scheduler, gradient_clip_val)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.hparams.update(id2label=None if problem_type == REGRESSION else names, problem_type=problem_type)
        task_settings = {"id2label": names, "problem_type": problem_type, "vocab_size": vocab_size,
                         "pad_token_id": pad_token_id}  # fmt: skip
        self.network = self.hf_network(AutoModelForSequenceClassification, task_settings)
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)
