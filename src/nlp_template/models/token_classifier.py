"""`TokenClassifier`: a LightningModule around `AutoModelForTokenClassification` (NER, chunking, POS tagging).

Loss: the network's cross-entropy, a mean over the labelled word pieces of the batch (pieces labelled -100 are
skipped). Metrics are computed on words, never on word pieces: the data module labels only the first piece of each
word in validation and test, so the predictions at labelled positions are exactly one per word. Entity-level
precision, recall and F1 follow conlleval (an `I-X` after `O` starts an entity, as in seqeval's default mode);
token accuracy counts words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torchmetrics.classification import MulticlassAccuracy
from transformers import AutoModelForTokenClassification

from nlp_template.data.token_classification import IGNORE
from nlp_template.metrics.entities import EntityF1, entity_spans
from nlp_template.models.base import TaskModule, label_maps, labelled_tokens, truncated_flag


class TokenClassifier(TaskModule):
    """Token classification with a Hugging Face encoder; the arguments are `TextClassifier`'s.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override (e.g. a tiny encoder from `model_type: bert`).
        id2label: tag names by id (given by the data module).
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

    pipeline_task = "token-classification"

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
        gradient_clip_val: float | None = None,
        backbone_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
        peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, gradient_clip_val)
        id2label = label_maps(id2label, "TokenClassifier")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.hparams["id2label"] = id2label
        task_settings = {"id2label": id2label, "vocab_size": vocab_size, "pad_token_id": pad_token_id}
        self.network = self.hf_network(AutoModelForTokenClassification, task_settings)
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_entities", EntityF1())
            setattr(self, f"{stage}_token_acc", MulticlassAccuracy(len(id2label), average="micro", ignore_index=IGNORE))

    def word_tags(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[list[str]], list[list[str]]]:
        """Predicted and gold tags per example, one per word (the labelled positions), as tag names."""
        predictions, targets = [], []
        for row_logits, row_labels in zip(logits.argmax(dim=-1).tolist(), labels.tolist(), strict=True):
            words = [(p, t) for p, t in zip(row_logits, row_labels, strict=True) if t != IGNORE]
            predictions.append([self.hparams.id2label[p] for p, _ in words])
            targets.append([self.hparams.id2label[t] for _, t in words])
        return predictions, targets

    def loss_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The labelled tokens (the loss is a mean over them)."""
        return labelled_tokens(batch)

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Loss, word accuracy and the entity counts of a batch."""
        output = self(**batch)
        entities, token_acc = getattr(self, f"{stage}_entities"), getattr(self, f"{stage}_token_acc")
        entities.update(*self.word_tags(output.logits, batch["labels"]))
        token_acc.update(output.logits.argmax(dim=-1), batch["labels"])
        self.log_loss(stage, output.loss, self.loss_count(batch))
        self.log(f"{stage}/token_acc", token_acc, batch_size=batch["labels"].shape[0])

    def log_epoch(self, stage: str) -> None:
        """Entity precision, recall and F1 over the whole split."""
        metric = getattr(self, f"{stage}_entities")
        scores = metric.compute()  # summed counts across ranks, then P/R/F1 (a mean of per-batch F1s would be wrong)
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items()}, prog_bar=stage == "val")
        metric.reset()

    def decode_predictions(self, examples: list[dict], features: list[dict], outputs: Any, **unused: Any) -> list:
        """Entities (type, text, character start/end in the input text) and the tag of every word.

        Each word's tag is the prediction on its first word piece; words cut off by truncation stay `O` (and the
        result says `truncated`).
        """
        predicted = outputs.logits.argmax(dim=-1).tolist()
        results = []
        for example, feature, row in zip(examples, features, predicted, strict=True):
            offsets, text = example["word_offsets"], example["text"]
            tags, seen = ["O"] * len(offsets), set()
            for position, word in enumerate(feature["word_ids"]):
                if word >= 0 and word not in seen:
                    seen.add(word)
                    tags[word] = self.hparams.id2label[row[position]]
            entities = [
                {"type": kind, "text": text[offsets[start][0] : offsets[end - 1][1]], "start": offsets[start][0],
                 "end": offsets[end - 1][1]}
                for kind, start, end in sorted(entity_spans(tags), key=lambda span: span[1])
            ]  # fmt: skip
            results.append({"entities": entities, "tags": tags, **truncated_flag(feature)})
        return results
