"""End-of-run reports: bounded for any label count, and written only after metrics.json."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import FAST

from nlp_template.callbacks.classification_report import ClassificationReport
from nlp_template.train import train
from nlp_template.utils.plots import plot_curves, read_series


def _report_on(tmp_path: Path, labels: torch.Tensor, predictions: torch.Tensor, classes: int) -> ClassificationReport:
    trainer = SimpleNamespace(loggers=[], global_step=1, is_global_zero=True, default_root_dir=str(tmp_path),
                              world_size=1, datamodule=SimpleNamespace(tokenizer=None))  # fmt: skip
    module = SimpleNamespace(device="cpu", hparams=SimpleNamespace(id2label={i: f"label{i}" for i in range(classes)}))
    report = ClassificationReport()
    report.on_test_epoch_start(trainer, module)
    for start in range(0, len(labels), 64):
        rows = slice(start, start + 64)
        probabilities = torch.nn.functional.one_hot(predictions[rows], classes).float()
        batch = {"labels": labels[rows], "input_ids": torch.ones(len(labels[rows]), 2, dtype=torch.long),
                 "attention_mask": torch.ones(len(labels[rows]), 2, dtype=torch.long)}  # fmt: skip
        outputs = {"predictions": predictions[rows], "probabilities": probabilities}
        report.on_test_batch_end(trainer, module, outputs, batch, start // 64)
    report.on_test_epoch_end(trainer, module)
    report.write_report(trainer)
    return report


def test_500_labels_give_the_most_confused_pairs_and_no_matrix(tmp_path):
    # 500 labels x 10 examples drew a 300-inch figure with 250,000 cell labels and was killed at 22.7 GB.
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(500).repeat_interleave(10)
    predictions = torch.where(torch.rand(5000, generator=generator) < 0.5, labels, (labels + 1) % 500)
    predictions[:30] = 7  # label 0 mistaken for label 7 ten times, label 1 and 2 ten times each too
    _report_on(tmp_path, labels, predictions, 500)
    assert not (tmp_path / "confusion_matrix.csv").exists() and not (tmp_path / "confusion_matrix.png").exists()
    with open(tmp_path / "confused_pairs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 50 and [int(row["count"]) for row in rows] == sorted(
        (int(r["count"]) for r in rows), reverse=True
    )
    assert rows[0] == {"label": "label0", "prediction": "label7", "count": "10"}
    assert all(row["label"] != row["prediction"] for row in rows)
    assert len((tmp_path / "test_predictions.jsonl").read_text().splitlines()) == 50


def test_few_labels_keep_the_matrix_and_it_agrees_with_the_pairs(tmp_path):
    labels, predictions = torch.tensor([0, 0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 0, 2, 0, 0])
    _report_on(tmp_path, labels, predictions, 3)
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert rows == ["label \\ prediction,label0,label1,label2", "label0,1,1,0", "label1,1,1,0", "label2,2,0,1"]
    with open(tmp_path / "confused_pairs.csv") as handle:
        pairs = [(row["label"], row["prediction"], row["count"]) for row in csv.DictReader(handle)]
    assert pairs == [("label2", "label0", "2"), ("label0", "label1", "1"), ("label1", "label0", "1")]


class BrokenReport(ClassificationReport):
    def write_report(self, trainer) -> None:
        assert (Path(trainer.default_root_dir) / "metrics.json").is_file()  # reports come after the numbers
        raise MemoryError("a report too large for this machine")


@pytest.mark.slow
def test_metrics_json_is_written_before_reports_and_a_failing_report_is_a_warning(make_cfg, caplog):
    cfg = make_cfg(["experiment=sentiment_tiny", *FAST, "trainer.max_epochs=1", "callbacks=model_checkpoint",
                    "+callbacks.report._target_=test_reports.BrokenReport"])  # fmt: skip
    with caplog.at_level("WARNING"):
        metrics = train(cfg)
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["test/acc"] == metrics["test/acc"]
    assert "BrokenReport's report could not be written (MemoryError" in caplog.text
    if importlib.util.find_spec("matplotlib"):  # the other reports still ran: the curves beside metrics.json
        assert (Path(cfg.paths.output_dir) / "curves.png").stat().st_size > 0


def test_curves_are_read_from_the_csv_log_and_drawn(tmp_path):
    (tmp_path / "csv").mkdir()
    rows = ["epoch,step,train/loss,val/loss,val/acc,lr-AdamW/pg1"]
    rows += [f"0,{step},{1 / (step + 1)},,,{0.001 * step}" for step in range(0, 40, 10)]
    rows += ["0,39,,0.5,0.7,", "1,79,,0.4,0.8,", "1,79,,nan,,"]  # validation rows; a NaN is left out
    (tmp_path / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    series = read_series(tmp_path / "csv" / "metrics.csv")
    assert series["val/loss"] == [(39.0, 0.5), (79.0, 0.4)] and len(series["train/loss"]) == 4
    assert "epoch" not in series
    if importlib.util.find_spec("matplotlib"):
        assert plot_curves(tmp_path, "val/acc") == tmp_path / "curves.png"
        assert (tmp_path / "curves.png").stat().st_size > 0
    assert plot_curves(tmp_path / "nowhere", "val/acc") is None  # no CSV log: nothing drawn, nothing raised
