"""What the server runs: a checkpoint or an export, predicting through the task's own code as `nlp-predict` does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nlp_template.inference.exported import REPORT
from nlp_template.inference.inputs import parse_records


class RunPredictor:
    """Predictions of a trained run: the run's own encoding, padding and decoding (`predict_records`).

    The run is an `nlp-train` checkpoint (`load_run`, PyTorch) or an `nlp-export` directory (`load_export`: the same
    task around the Hugging Face, ONNX or TorchScript network); either way the JSON is `nlp-predict`'s.

    Args:
        run: the `TrainedRun` (or `ExportedRun`) to serve.
        backend: what runs the network (`pytorch`, `hf`, `onnx`, `torchscript`), for `/info`.
        model_path: the checkpoint file or the export directory; its file's (a directory's `export_report.json`,
            written last) path, size and modification time make the model version.
        data: overrides of the run's data config (as `nlp-predict data=...`).
        settings: task settings passed to the prediction (as `nlp-predict settings=...`).
    """

    def __init__(self, run: Any, backend: str, model_path: Path, data: dict | None = None,
                 settings: dict | None = None) -> None:  # fmt: skip
        self.run, self.backend, self.model_path = run, backend, model_path
        self.version_file = model_path / REPORT if model_path.is_dir() else model_path
        self.datamodule = run.datamodule(data or None)
        self.model = run.model
        self.settings = settings or {}
        self.columns = self.datamodule.prediction_columns()
        self.text_columns = self.datamodule.string_columns()

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The records of a request body; `UserInputError` (one line) when it is not clean."""
        return parse_records(body, "request body", self.columns, self.text_columns)

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each record with its prediction (one model batch: the caller sizes it)."""
        return list(self.model.predict_records(records, self.datamodule, batch_size=max(len(records), 1),
                                               **self.settings))  # fmt: skip

    def info(self) -> dict[str, Any]:
        """What a client needs to know: task, inputs, labels, length limit, and which model version answers."""
        data = self.run.config.data
        id2label = self.model.hparams.get("id2label")
        stat = self.version_file.stat()
        version = hashlib.sha256(f"{self.version_file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return {
            "task": type(self.model).__name__,
            "backend": self.backend,
            "inputs": self.columns,
            "labels": [label for _, label in sorted(id2label.items())] if id2label else None,
            "max_length": data.get("max_length", data.get("block_size")),
            "model_path": str(self.model_path),
            "model_version": version.hexdigest()[:12],
        }


def load_predictor(ckpt_path: str | None, export_dir: str | None, threads: int | None = None,
                   data: dict | None = None, settings: dict | None = None) -> RunPredictor:  # fmt: skip
    """The predictor of a checkpoint (`ckpt_path`) or of an export directory (`export_dir`)."""
    if export_dir:
        from nlp_template.inference.exported import load_export

        run = load_export(export_dir, threads)
        return RunPredictor(run, run.format, run.directory, data, settings)
    from nlp_template.inference.checkpoints import load_run

    run = load_run(ckpt_path)
    return RunPredictor(run, "pytorch", run.ckpt_path, data, settings)
