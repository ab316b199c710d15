"""`ClassificationReport`: the confusion matrix and sample predictions of the test split, as files and in loggers.

Numbers say how often a classifier is wrong; the confusion matrix says which classes it mixes up, and a table of
predictions with their texts says why. Testing collects (label, prediction) pairs; `write_report` (which
`nlp-train` calls once metrics.json is written, so a report can never cost the run its numbers) writes on rank 0:

- `<run dir>/confused_pairs.csv`: the `num_pairs` most frequent (label, prediction) mistakes, for any label count;
- `<run dir>/confusion_matrix.csv` and `.png` (with matplotlib) up to `max_matrix_labels` labels: beyond that a
  matrix is neither readable nor cheap (500 labels: 250,000 cells, a figure of 300 inches);
- `<run dir>/test_predictions.jsonl`: the first `num_samples` test examples (text, label, prediction, probability),
  worst first;

and sends the figure and the table to TensorBoard (`add_figure`/`add_text`), W&B (`log_image`/`log_table`) and
MLflow (`log_figure`/`log_table`) when those loggers are on. Memory stays bounded by the test split's size: pairs
are counted sparsely, never as a labels x labels matrix. It does nothing for tasks without class predictions.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

from nlp_template.utils.logger_adapters import adapter_for

log = logging.getLogger(__name__)


class ClassificationReport(L.Callback):
    """Collect test predictions; write and log the confused pairs, the confusion matrix and sample predictions.

    `nlp-train` calls `write_report(trainer)` after metrics.json; code that runs `trainer.test` itself calls it too.

    Args:
        num_samples: test examples kept for the predictions table (the first ones in test order).
        num_pairs: most frequent mistakes listed in `confused_pairs.csv`.
        max_matrix_labels: the matrix (CSV, figure) is written up to this many labels.
    """

    def __init__(self, num_samples: int = 50, num_pairs: int = 50, max_matrix_labels: int = 50) -> None:
        self.num_samples, self.num_pairs, self.max_matrix_labels = num_samples, num_pairs, max_matrix_labels
        self._reset()

    def _reset(self) -> None:
        self.codes: list[torch.Tensor] = []  # label * classes + prediction, one per test example
        self.classes = 0
        self.samples: list[dict[str, Any]] = []
        self.pending: tuple[list[str], torch.Tensor, torch.Tensor] | None = None  # names, pairs, counts

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start empty (one test run, one report)."""
        self._reset()

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        """Note each (label, prediction) pair and keep the first examples with their texts."""
        if not isinstance(outputs, dict) or "predictions" not in outputs:
            return
        labels, predictions = batch["labels"].cpu(), outputs["predictions"].cpu()
        self.classes = outputs["probabilities"].shape[-1]
        self.codes.append(labels.long() * self.classes + predictions.long())
        tokenizer = getattr(trainer.datamodule, "tokenizer", None)
        for row in range(min(len(labels), self.num_samples - len(self.samples))):
            ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
            self.samples.append(
                {
                    "text": tokenizer.decode(ids, skip_special_tokens=True) if tokenizer else ids.tolist(),
                    "label": int(labels[row]),
                    "prediction": int(predictions[row]),
                    "probability": float(outputs["probabilities"][row, predictions[row]]),
                    "label_probability": float(outputs["probabilities"][row, labels[row]]),
                }
            )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Gather every rank's pairs (a collective, on every rank); rank 0 keeps the counts for `write_report`."""
        if not self.codes:
            return
        codes = torch.cat(self.codes)
        if trainer.world_size > 1:  # each rank saw part of the split (not always the same number of examples)
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, codes)
            codes = torch.cat(gathered)  # the sample predictions stay rank 0's
        pairs, counts = torch.unique(codes, return_counts=True)
        names = [pl_module.hparams.id2label[index] for index in range(self.classes)]
        self.pending = (names, pairs, counts) if trainer.is_global_zero else None

    def write_report(self, trainer: L.Trainer) -> None:
        """Write the files and log the figure and the table (rank 0; nothing when the test collected nothing)."""
        if self.pending is None:
            return
        names, pairs, counts = self.pending
        self.pending = None
        for sample in self.samples:
            sample["label"], sample["prediction"] = names[sample["label"]], names[sample["prediction"]]
        self.samples.sort(key=lambda sample: sample["label_probability"])  # worst first
        output_dir = Path(trainer.default_root_dir)
        _write_pairs(output_dir / "confused_pairs.csv", names, pairs, counts, self.num_pairs)
        with open(output_dir / "test_predictions.jsonl", "w") as handle:
            handle.writelines(json.dumps(sample) + "\n" for sample in self.samples)
        figure = None
        if len(names) <= self.max_matrix_labels:
            confusion = torch.zeros(len(names) ** 2, dtype=torch.long).index_add_(0, pairs, counts)
            confusion = confusion.view(len(names), len(names))
            _write_csv(output_dir / "confusion_matrix.csv", names, confusion)
            figure = _plot(names, confusion)
            if figure is not None:
                figure.savefig(output_dir / "confusion_matrix.png", dpi=120, bbox_inches="tight")
        else:
            log.info("%d labels: the confusion matrix is left out (over callbacks.classification_report."
                     "max_matrix_labels=%d); confused_pairs.csv lists the most frequent mistakes", len(names),
                     self.max_matrix_labels)  # fmt: skip
        self._log(trainer, figure)

    def _log(self, trainer: L.Trainer, figure: Any) -> None:
        columns = ["text", "label", "prediction", "probability"]
        rows = [[sample[column] for column in columns] for sample in self.samples]
        for adapter in map(adapter_for, trainer.loggers):
            if figure is not None:
                adapter.log_figure(
                    "test/confusion_matrix", figure, trainer.global_step, artifact_file="confusion_matrix.png"
                )
            # Step None, as the table has always been logged: TensorBoard files it under step 0.
            adapter.log_table("test/predictions", columns, rows, None, artifact_file="test_predictions.json")


def _write_pairs(path: Path, names: list[str], pairs: torch.Tensor, counts: torch.Tensor, limit: int) -> None:
    """The `limit` most frequent (label, prediction) mistakes with their counts, most frequent first."""
    classes = len(names)
    wrong = pairs // classes != pairs % classes
    order = torch.argsort(counts[wrong], descending=True, stable=True)[:limit]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "prediction", "count"])
        for pair, count in zip(pairs[wrong][order].tolist(), counts[wrong][order].tolist(), strict=True):
            writer.writerow([names[pair // classes], names[pair % classes], count])


def _write_csv(path: Path, names: list[str], confusion: torch.Tensor) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label \\ prediction", *names])
        writer.writerows([name, *row] for name, row in zip(names, confusion.tolist(), strict=True))


def _plot(names: list[str], confusion: torch.Tensor) -> Any:
    """The confusion matrix as a matplotlib figure, or None without matplotlib (an optional dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: confusion_matrix.png is not drawn (the CSV is written)")
        return None
    size = max(3.0, 0.6 * len(names) + 1.5)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(confusion.numpy(), cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("prediction")
    axes.set_ylabel("label")
    for (row, column), count in zip(
        [(r, c) for r in range(len(names)) for c in range(len(names))], confusion.flatten().tolist(), strict=True
    ):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=8)
    plt.close(figure)  # keep no global state; the figure object stays usable
    return figure
