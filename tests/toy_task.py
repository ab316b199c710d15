"""A task that is not part of the project: "does this text mention a number?", written as a user would.

Everything a task needs lives here (a source, a data module, a LightningModule with a small non-Hugging Face
network) plus three YAML files in tests/toy_conf/ reached through Hydra's search path. tests/test_plugin_task.py
trains, evaluates, predicts and exports it without any change to src/: the proof that a task is a plug-in.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from torchmetrics.classification import BinaryAccuracy
from transformers import DataCollatorWithPadding
from transformers.modeling_outputs import SequenceClassifierOutput

from nlp_template.data.base import TokenizedDataModule
from nlp_template.models.base import TaskModule

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "under",
    "mat",
    "box",
    "red",
    "blue",
    "big",
    "small",
    "quietly",
    "today",
]
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty"]


@dataclass
class NumberSamples:
    """Generated sentences; half of them contain a number word."""

    num_train: int = 600
    num_validation: int = 100
    num_test: int = 100
    seed: int = 0

    def load(self) -> DatasetDict:
        """Three splits of `{"text", "label"}` rows."""
        rng = random.Random(self.seed)
        sizes = {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}
        return DatasetDict({split: Dataset.from_list([self._row(rng) for _ in range(n)]) for split, n in sizes.items()})

    def fingerprint(self) -> str:
        """The settings decide the data."""
        return f"numbers:{self.num_train}:{self.num_validation}:{self.num_test}:{self.seed}"

    @staticmethod
    def _row(rng: random.Random) -> dict:
        words = rng.choices(WORDS, k=rng.randint(3, 12))
        label = rng.random() < 0.5
        if label:
            words.insert(rng.randint(0, len(words)), rng.choice(NUMBERS))
        return {"text": " ".join(words), "label": int(label)}


class NumberDataModule(TokenizedDataModule):
    """Texts and 0/1 labels; only the hooks, no private method of the base class."""

    def columns(self) -> dict[str, str]:
        return {"text_column": "text", "label_column": "label"}

    def prediction_columns(self) -> list[str]:
        return ["text"]

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        return iter(train["text"])

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        encoded = self.tokenizer(batch["text"], truncation=True, max_length=self.max_length)
        if split != "predict":
            encoded["labels"] = [float(label) for label in batch["label"]]
        encoded["truncated"] = [bool(e.overflowing) for e in encoded.encodings]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return dict(encoded)

    def collator(self) -> Any:
        return DataCollatorWithPadding(self.tokenizer)


class MaxPoolNetwork(torch.nn.Module):
    """Embedding -> masked max over positions -> one logit."""

    def __init__(self, vocab_size: int, pad_token_id: int, width: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, width, padding_idx=pad_token_id)
        self.head = torch.nn.Linear(width, 1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None):
        embedded = self.embedding(input_ids).masked_fill(attention_mask.unsqueeze(-1) == 0, -1e4)
        pooled = embedded.max(dim=1).values
        logits = self.head(pooled).squeeze(-1)
        loss = None if labels is None else torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class NumberDetector(TaskModule):
    """Takes only the data facts it needs (no labels, no backbone)."""

    def __init__(self, vocab_size: int, pad_token_id: int = 0, tokenizer_path: str | None = None, width: int = 32,
                 optimizer: Any = None, scheduler: Any = None) -> None:  # fmt: skip
        super().__init__(optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        self.network = MaxPoolNetwork(vocab_size, pad_token_id, width)
        self.setup_network()
        self.val_accuracy, self.test_accuracy = BinaryAccuracy(), BinaryAccuracy()  # summed counts across ranks

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        output = self(**batch)
        getattr(self, f"{stage}_accuracy").update((output.logits > 0).long(), batch["labels"].long())
        self.log_loss(stage, output.loss, batch["labels"].shape[0])  # exact under DDP, as every task's loss
        self.log(f"{stage}/acc", getattr(self, f"{stage}_accuracy"))

    def decode_predictions(self, examples: list[dict], features: list[dict], outputs: Any, **settings: Any) -> list:
        probabilities = outputs.logits.sigmoid().tolist()
        return [{"has_number": p >= 0.5, "probability": p} for p in probabilities]
