"""Loggers write offline, receive the config and run metadata, never a secret; W&B runs offline without a key."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import Mock

import pytest
import torch
from conftest import FAST
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import OmegaConf

import nlp_template
from nlp_template.callbacks.classification_report import ClassificationReport
from nlp_template.train import train
from nlp_template.utils import logger_adapters
from nlp_template.utils.config import PROJECT_ROOT, print_and_save, redact
from nlp_template.utils.logger_adapters import (
    LoggerAdapter,
    MLflowAdapter,
    TensorBoardAdapter,
    WandbAdapter,
    adapter_for,
    logger_run_ids,
    needs_wandb_offline_fallback,
    register_adapter,
    resume_settings,
    stored_run_id,
)
from nlp_template.utils.resume import continue_logger_runs
from nlp_template.utils.run import LOGGERS_KEY

# A short real training run: loggers are off under fast_dev_run, so limit the batches instead.
SHORT = [*FAST, "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2", "callbacks=none", "+trainer.enable_checkpointing=false"]  # fmt: skip


def test_secret_looking_values_are_redacted():
    config = {"tokenizer": "bert", "max_tokens": 4096, "pad_token_id": 0, "hf_token": "hf_abc",
              "wandb": {"api_key": "k", "token": None}, "db": [{"password": "p"}]}  # fmt: skip
    assert redact(config) == {"tokenizer": "bert", "max_tokens": 4096, "pad_token_id": 0, "hf_token": "***",
                              "wandb": {"api_key": "***", "token": None}, "db": [{"password": "***"}]}  # fmt: skip


@pytest.mark.slow
def test_many_loggers_get_config_metadata_and_no_secret(make_cfg):
    pytest.importorskip("mlflow")
    pytest.importorskip("tensorboard")
    cfg = make_cfg([*SHORT, "logger=many", "tags=[smoke,ci]", "+hf_token=hf_SECRET123",
                    "callbacks=classification_report"])  # fmt: skip
    print_and_save(cfg, cfg.paths.output_dir, show=False)  # as the entry point does
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    saved = (run_dir / "config.yaml").read_text()
    assert "hf_SECRET123" not in saved and "hf_token: '***'" in saved and "- smoke" in saved
    hparams = (run_dir / "csv" / "hparams.yaml").read_text()
    assert "hf_SECRET123" not in hparams and "smoke" in hparams
    run = json.loads((run_dir / "run.json").read_text())
    assert len(run["git"]["commit"]) == 40 and isinstance(run["git"]["dirty"], bool)
    assert run["versions"]["torch"] and run["parameters"]["total"] >= run["parameters"]["trainable"] > 0
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    with sqlite3.connect(Path(cfg.paths.log_dir) / "mlflow.db") as db:
        params = dict(db.execute("select key, value from params").fetchall())
        metrics = {row[0] for row in db.execute("select key from metrics")}
    assert params["run/git/commit"] == run["git"]["commit"] and params["hf_token"] == "***"
    assert "val/acc" in metrics and "test/acc" in metrics
    artifacts = {p.name for p in (Path(cfg.paths.log_dir) / "mlartifacts").rglob("*") if p.is_file()}
    assert {"confusion_matrix.png", "test_predictions.json"} <= artifacts  # the report reached MLflow


@pytest.mark.slow
def test_wandb_without_a_key_logs_offline(make_cfg, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")  # no `wandb login` on file either
    monkeypatch.setenv("HOME", str(Path(make_cfg([]).paths.output_dir).parent))
    cfg = make_cfg([*SHORT, "logger=wandb", "tags=[smoke]", "callbacks=classification_report"])
    train(cfg)
    assert os.environ["WANDB_MODE"] == "offline"
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_each_multirun_job_is_its_own_wandb_run(tmp_path):
    pytest.importorskip("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "nlp_template.train", "-m", "logger=wandb", "seed=1,2",
               *SHORT, f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache"]  # fmt: skip
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=600)
    jobs = sorted((tmp_path / "logs" / "train" / "multiruns").glob("*/[0-9]"))
    assert len(jobs) == 2
    runs = [list((job / "wandb").glob("offline-run-*")) for job in jobs]
    assert [len(found) for found in runs] == [1, 1] and runs[0][0].name != runs[1][0].name


@pytest.mark.slow
def test_classification_report_files_and_tensorboard(make_cfg):
    pytest.importorskip("tensorboard")
    cfg = make_cfg([*SHORT, "logger=tensorboard", "callbacks=classification_report"])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    rows = (run_dir / "confusion_matrix.csv").read_text().splitlines()
    assert rows[0] == "label \\ prediction,negative,positive" and len(rows) == 3
    counts = [int(value) for row in rows[1:] for value in row.split(",")[1:]]
    correct = int(rows[1].split(",")[1]) + int(rows[2].split(",")[2])
    assert correct / sum(counts) == pytest.approx(metrics["test/acc"], abs=1e-6)  # the matrix matches the metric
    predictions = [json.loads(line) for line in (run_dir / "test_predictions.jsonl").read_text().splitlines()]
    assert predictions and {"text", "label", "prediction", "probability"} <= set(predictions[0])
    assert predictions[0]["label_probability"] <= predictions[-1]["label_probability"]  # worst first
    if importlib.util.find_spec("matplotlib"):
        assert (run_dir / "confusion_matrix.png").stat().st_size > 0
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_debug_profiler_writes_a_report(make_cfg):
    cfg = make_cfg(["debug=profiler", *FAST, "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
                    "trainer.limit_test_batches=2"])  # fmt: skip
    train(cfg)
    report = (Path(cfg.paths.output_dir) / "fit-profile.txt").read_text()
    assert "run_training_epoch" in report or "training_step" in report


@pytest.mark.slow
def test_resumed_run_continues_the_mlflow_run(make_cfg, tmp_path):
    pytest.importorskip("mlflow")
    common = [*FAST, "logger=mlflow", "callbacks=model_checkpoint", "trainer.max_epochs=2"]
    log_dir = tmp_path / "logs"

    def config(overrides: list[str], run: str):
        cfg = make_cfg([*common, *overrides], run=f"logs/train/runs/{run}")
        cfg.paths.log_dir = str(log_dir)
        cfg.logger.mlflow.tracking_uri = f"sqlite:///{log_dir}/mlflow.db"
        return cfg

    train(config(["+callbacks.stop._target_=test_resume.StopAfterFirstEpoch"], "first"))
    train(config(["ckpt_path=last"], "resumed"))
    with sqlite3.connect(log_dir / "mlflow.db") as db:
        runs = db.execute("select count(*) from runs").fetchone()[0]
        epochs = sorted(row[0] for row in db.execute("select distinct step from metrics where key = 'val/acc'"))
    assert runs == 1  # one MLflow run, continued
    steps_per_epoch = 13  # 400 training examples, batches of 32
    assert min(epochs) <= steps_per_epoch < 2 * steps_per_epoch - 1 <= max(epochs)  # both epochs' validations in it


class RecordingLogger(Logger):
    """A logger this project does not know: it only records what its adapter hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class RecordingAdapter(LoggerAdapter):
    def log_figure(self, key: str, figure: Any, step: int | None, artifact_file: str | None = None) -> None:
        self.logger.calls.append(("figure", key, step))

    def log_table(self, key, columns, rows, step, artifact_file=None) -> None:
        self.logger.calls.append(("table", key, columns, rows))

    def run_id(self) -> str:
        return "run-7"

    @classmethod
    def resume_settings(cls, run_id: str) -> dict[str, Any]:
        return {"version": run_id}


def test_a_new_logger_is_one_registration(monkeypatch, tmp_path):
    monkeypatch.setattr(logger_adapters, "_REGISTRY", dict(logger_adapters._REGISTRY))  # undone after the test
    register_adapter(RecordingLogger, RecordingAdapter)
    logger = RecordingLogger()
    trainer = SimpleNamespace(loggers=[logger], global_step=5, is_global_zero=True, default_root_dir=str(tmp_path),
                              world_size=1,
                              datamodule=SimpleNamespace(tokenizer=None),
                              strategy=SimpleNamespace(reduce=lambda tensor, reduce_op: tensor))  # fmt: skip
    module = SimpleNamespace(device="cpu", hparams=SimpleNamespace(id2label={0: "negative", 1: "positive"}))
    batch = {"labels": torch.tensor([0, 1, 1]), "input_ids": torch.tensor([[5, 6], [7, 8], [9, 0]]),
             "attention_mask": torch.tensor([[1, 1], [1, 1], [1, 0]])}  # fmt: skip
    outputs = {"predictions": torch.tensor([0, 0, 1]),
               "probabilities": torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])}  # fmt: skip
    report = ClassificationReport()
    report.on_test_epoch_start(trainer, module)
    report.on_test_batch_end(trainer, module, outputs, batch, 0)
    report.on_test_epoch_end(trainer, module)
    report.write_report(trainer)  # nlp-train calls it once metrics.json is written

    tables = [call for call in logger.calls if call[0] == "table"]
    assert tables == [("table", "test/predictions", ["text", "label", "prediction", "probability"],
                       [[[7, 8], "positive", "negative", pytest.approx(0.6)],
                        [[9], "positive", "positive", pytest.approx(0.8)],
                        [[5, 6], "negative", "negative", pytest.approx(0.9)]])]  # fmt: skip
    if importlib.util.find_spec("matplotlib"):
        assert ("figure", "test/confusion_matrix", 5) in logger.calls
    # The same registration stores its run id in checkpoints and points its config entry back at that run.
    assert logger_run_ids([logger]) == {"RecordingLogger": "run-7"}
    checkpoint = tmp_path / "last.ckpt"
    torch.save({LOGGERS_KEY: logger_run_ids([logger])}, checkpoint)
    cfg = OmegaConf.create({"logger": {"recording": {"_target_": f"{__name__}.RecordingLogger"}, "off": None}})
    continue_logger_runs(cfg, str(checkpoint))
    assert cfg.logger.recording.version == "run-7"


WANDB = "lightning.pytorch.loggers.wandb.WandbLogger"
MLFLOW = "lightning.pytorch.loggers.mlflow.MLFlowLogger"


def test_logger_entries_resume_their_runs_from_checkpoints_of_the_old_format():
    stored = {"WandbLogger": "w1", "MLFlowLogger": "m1"}  # as checkpoints have always stored them
    assert resume_settings(WANDB, stored_run_id(WANDB, stored)) == {"id": "w1", "resume": "allow"}
    assert resume_settings("lightning.pytorch.loggers.WandbLogger", "w1") == {"id": "w1", "resume": "allow"}
    assert resume_settings(MLFLOW, stored_run_id(MLFLOW, stored)) == {"run_id": "m1"}
    assert resume_settings(WANDB, stored_run_id(WANDB, {"MLFlowLogger": "m1"})) == {}  # W&B was not on then
    for target in ("lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger",
                   "no_such_module.Logger", ""):  # fmt: skip
        assert stored_run_id(target, stored) is None and resume_settings(target, "x") == {}
        assert not needs_wandb_offline_fallback(target)
    assert needs_wandb_offline_fallback(WANDB) and not needs_wandb_offline_fallback(MLFLOW)
    assert needs_wandb_offline_fallback(f"{__name__}.MyWandbLogger")  # subclasses get their base's adapter


def _wandb_subclass() -> type:
    from lightning.pytorch.loggers import WandbLogger

    return type("MyWandbLogger", (WandbLogger,), {})


MyWandbLogger = _wandb_subclass()  # importable by path, as a config `_target_` is


def test_unknown_loggers_get_an_adapter_that_does_nothing(tmp_path):
    adapter = adapter_for(CSVLogger(tmp_path))
    assert type(adapter) is LoggerAdapter and adapter.name is None
    adapter.log_figure("f", object(), 1)
    adapter.log_table("t", ["a"], [[1]], 1)
    adapter.log_text("x", "text", 1)
    adapter.finish()
    assert adapter.run_id() is None and not adapter.is_continued_run()
    assert logger_run_ids([CSVLogger(tmp_path)]) == {}


def test_builtin_adapters_log_as_before():
    tensorboard = SimpleNamespace(experiment=Mock())
    TensorBoardAdapter(tensorboard).log_table("test/predictions", ["a", "b"], [[1, "x"], [2, "y"]], None)
    tensorboard.experiment.add_text.assert_called_once_with(
        "test/predictions", "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |", global_step=None
    )
    mlflow = SimpleNamespace(run_id="r1", experiment=Mock())
    MLflowAdapter(mlflow).log_text("samples", "text", 13)
    mlflow.experiment.log_text.assert_called_once_with("r1", "text", "samples/step_0000013.md")
    MLflowAdapter(mlflow).log_table("t", ["a", "b"], [[1, 2], [3, 4]], None, artifact_file="t.json")
    mlflow.experiment.log_table.assert_called_once_with("r1", {"a": [1, 3], "b": [2, 4]}, "t.json")
    wandb = SimpleNamespace(_experiment=None)  # never started: no run id to store, nothing to finish
    assert WandbAdapter(wandb).run_id() is None
    WandbAdapter(wandb).finish()
    assert WandbAdapter.prefers_tables and not TensorBoardAdapter.prefers_tables


def test_only_the_adapter_module_names_logger_classes():
    package = Path(nlp_template.__file__).parent
    adapters = package / "utils" / "logger_adapters.py"
    named = [f"{path.relative_to(package)}: {name}" for path in sorted(package.rglob("*.py")) if path != adapters
             for name in ("WandbLogger", "MLFlowLogger", "TensorBoardLogger") if name in path.read_text()]  # fmt: skip
    assert not named, f"logger classes belong in utils/logger_adapters.py (register an adapter): {named}"
