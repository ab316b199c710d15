"""`MultipleChoice`: a LightningModule around `AutoModelForMultipleChoice` (BERT, RoBERTa, ... or from a config).

The network scores each (context, question + ending) pair with one logit; a softmax over the choices gives each
ending's probability. Loss: the cross-entropy over choices, a mean over the examples; accuracy: the share of
examples whose highest-scoring ending is the right one (torchmetrics, summed across DDP ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from transformers import AutoModelForMultipleChoice

from nlp_template.models.base import TaskModule, truncated_flag
from nlp_template.utils.errors import UserInputError


class MultipleChoice(TaskModule):
    """Multiple choice (SWAG, RACE style).

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a small BERT `{model_type: bert, hidden_size: 128, ...}`.
        num_choices: endings per example (given by the data module).
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass.
        compile: `torch.compile` the network with dynamic shapes.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
    """

    graph_axes: ClassVar[tuple[str, ...]] = ("batch", "choices", "sequence")

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        num_choices: int | None = None,
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
        super().__init__(optimizer, scheduler, gradient_clip_val)
        if not num_choices or num_choices < 2:
            raise UserInputError("MultipleChoice needs num_choices >= 2 (the data module provides it in train.py)")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.network = self.hf_network(AutoModelForMultipleChoice, {"vocab_size": vocab_size,
                                                                     "pad_token_id": pad_token_id})  # fmt: skip
        metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes=num_choices, average="micro")})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Loss (a mean over the examples) and accuracy of a batch."""
        output = self(**batch)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics.update(output.logits.float(), batch["labels"])
        self.log_loss(stage, output.loss, self.loss_count(batch))
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=batch["labels"].shape[0])

    def decode_predictions(self, examples: list[dict], features: list[dict], outputs: Any, **unused: Any) -> list:
        """The chosen ending (its index and text) and every ending's probability."""
        results = []
        for feature, row in zip(features, outputs.logits.float().softmax(-1).tolist(), strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            results.append({"choice": best, "ending": feature["choice_texts"][best], "probabilities": row,
                            **truncated_flag(feature)})  # fmt: skip
        return results

    def export_info(self) -> dict[str, Any]:
        """The number of choices the model was trained with."""
        return {"num_choices": self.hparams.num_choices}
