"""What the server runs: a trained checkpoint's task module and data module, predicting as `nlp-predict` does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from nlp_template.inference.inputs import parse_records


class CheckpointPredictor:
    """Predictions of an `nlp-train` checkpoint: the run's own encoding, padding and decoding (`predict_records`).

    Args:
        ckpt_path: the checkpoint.
        data: overrides of the run's data config (as `nlp-predict data=...`).
        settings: task settings passed to the prediction (as `nlp-predict settings=...`).
    """

    def __init__(self, ckpt_path: str | Path, data: dict | None = None, settings: dict | None = None) -> None:
        from nlp_template.inference.checkpoints import load_run

        self.ckpt_path = Path(ckpt_path).expanduser()
        self.run = load_run(self.ckpt_path)
        self.datamodule = self.run.datamodule(data or None)
        self.model = self.run.model
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
        stat = self.ckpt_path.stat()
        version = hashlib.sha256(f"{self.ckpt_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
        return {
            "task": type(self.model).__name__,
            "inputs": self.columns,
            "labels": [label for _, label in sorted(id2label.items())] if id2label else None,
            "max_length": data.get("max_length", data.get("block_size")),
            "checkpoint": str(self.ckpt_path),
            "model_version": version[:12],
        }
