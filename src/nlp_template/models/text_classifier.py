"""`TextClassifier`: a LightningModule around `AutoModelForSequenceClassification`.

The module owns the loss (the HF model's cross-entropy, a mean over the examples of the batch), the metrics
(torchmetrics accuracy and macro F1) and the optimizer/scheduler (Hydra partials). Its hyperparameters hold plain
values only, including the network's full config, so `TextClassifier.load_from_checkpoint(path)` rebuilds the
network offline from the checkpoint alone; the tokenizer lives beside it (`hparams.tokenizer_path`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.optim import Optimizer
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
from transformers import AutoConfig, AutoModelForSequenceClassification

from nlp_template.models.backbones import build_model
from nlp_template.models.optim import parameter_groups
from nlp_template.utils.errors import UserInputError


class TextClassifier(L.LightningModule):
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
        super().__init__()
        if not id2label:
            raise UserInputError("TextClassifier needs id2label (the data module provides it in train.py)")
        id2label = {int(index): str(label) for index, label in id2label.items()}
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.hparams["id2label"] = id2label
        if backbone_config:  # restoring a checkpoint: same architecture, weights come from the state dict
            settings = dict(backbone_config)
            self.network = AutoModelForSequenceClassification.from_config(
                AutoConfig.for_model(settings.pop("model_type"), **settings)
            )
        else:
            task_settings = {
                "id2label": id2label,
                "label2id": {label: index for index, label in id2label.items()},
                "vocab_size": vocab_size,
                "pad_token_id": pad_token_id,
            }
            task_settings = {key: value for key, value in task_settings.items() if value is not None}
            self.network = build_model(AutoModelForSequenceClassification, backbone, pretrained, config, task_settings)
            self.hparams["backbone_config"] = self.network.config.to_dict()
        if gradient_checkpointing:
            self.network.gradient_checkpointing_enable()
        # Kept out of the module tree (no `_orig_mod.` in checkpoints: they load with or without compile).
        object.__setattr__(self, "_compiled", torch.compile(self.network, dynamic=True) if compile else None)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes=len(id2label), average="micro"),
                "f1": MulticlassF1Score(num_classes=len(id2label), average="macro"),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def forward(self, **batch: torch.Tensor) -> Any:
        """The Hugging Face model's output (logits, and the loss when `labels` is in the batch)."""
        return (self.network if self._compiled is None else self._compiled)(**batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on one batch; a NaN/inf loss stops the run with a hint instead of training on garbage."""
        loss = self(**batch).loss
        if not torch.isfinite(loss):
            raise UserInputError(
                f"training loss is {loss.item()} at step {self.global_step}: lower model.optimizer.lr, clip gradients"
                " (trainer.gradient_clip_val=1.0) or train in 32-bit precision (trainer.precision=32)"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["labels"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], stage: str, metrics: MetricCollection) -> None:
        output = self(**batch)
        metrics.update(output.logits.argmax(dim=-1), batch["labels"])
        batch_size = batch["labels"].shape[0]
        self.log(f"{stage}/loss", output.loss, prog_bar=stage == "val", batch_size=batch_size, sync_dist=True)
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=batch_size)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Loss, accuracy and macro F1 on a validation batch (logged as epoch means)."""
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Loss, accuracy and macro F1 on a test batch."""
        self._evaluate(batch, "test", self.test_metrics)

    def configure_optimizers(self) -> Any:
        """The configured optimizer over decay/no-decay groups, and the scheduler stepped every optimizer step."""
        if self.optimizer_factory is None:
            raise UserInputError("no optimizer configured: set model.optimizer (see conf/model/text_classifier.yaml)")
        weight_decay = getattr(self.optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
        optimizer = self.optimizer_factory(parameter_groups(self.trainer.model, weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
