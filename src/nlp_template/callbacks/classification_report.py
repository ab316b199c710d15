"""`ClassificationReport`: the confusion matrix and sample predictions of the test split, as files and in loggers.

Numbers say how often a classifier is wrong; the confusion matrix says which classes it mixes up, and a table of
predictions with their texts says why. At the end of testing (rank 0), this callback writes
`<run dir>/confusion_matrix.csv` (and `.png` when matplotlib is installed) and `<run dir>/test_predictions.jsonl`
(the first `num_samples` test examples: text, label, prediction, probability, sorted worst first), and sends the
figure and the table to TensorBoard (`add_figure`/`add_text`), W&B (`log_image`/`log_table`) and MLflow
(`log_figure`/`log_table`) when those loggers are on. It does nothing for tasks without class predictions.
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
    """Collect test predictions; write and log the confusion matrix and sample predictions.

    Args:
        num_samples: test examples kept for the predictions table (the first ones in test order).
    """

    def __init__(self, num_samples: int = 50) -> None:
        self.num_samples = num_samples
        self._reset()

    def _reset(self) -> None:
        self.confusion: torch.Tensor | None = None
        self.samples: list[dict[str, Any]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start an empty matrix (one test run, one report)."""
        self._reset()

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        """Count (label, prediction) pairs and keep the first examples with their texts."""
        if not isinstance(outputs, dict) or "predictions" not in outputs:
            return
        labels, predictions = batch["labels"].cpu(), outputs["predictions"].cpu()
        classes = outputs["probabilities"].shape[-1]
        if self.confusion is None:
            self.confusion = torch.zeros(classes, classes, dtype=torch.long)
        self.confusion += torch.bincount(labels * classes + predictions, minlength=classes * classes).view(
            classes, classes
        )
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
        """Write the files and log the figure and table (rank 0)."""
        if self.confusion is None:
            return
        # Under DDP each rank saw part of the test split: sum the matrices on every rank (a collective), then only
        # rank 0 writes; the sample predictions are rank 0's.
        confusion = trainer.strategy.reduce(self.confusion.to(pl_module.device), reduce_op="sum").cpu()
        if not trainer.is_global_zero:
            return
        names = [pl_module.hparams.id2label[index] for index in range(len(confusion))]
        for sample in self.samples:
            sample["label"], sample["prediction"] = names[sample["label"]], names[sample["prediction"]]
        self.samples.sort(key=lambda sample: sample["label_probability"])  # worst first
        output_dir = Path(trainer.default_root_dir)
        _write_csv(output_dir / "confusion_matrix.csv", names, confusion)
        with open(output_dir / "test_predictions.jsonl", "w") as handle:
            handle.writelines(json.dumps(sample) + "\n" for sample in self.samples)
        figure = _plot(names, confusion)
        if figure is not None:
            figure.savefig(output_dir / "confusion_matrix.png", dpi=120, bbox_inches="tight")
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
