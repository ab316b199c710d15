"""Loggers write offline, receive the config and run metadata, never a secret; W&B runs offline without a key."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST

from nlp_template.train import train
from nlp_template.utils.config import PROJECT_ROOT, print_and_save, redact

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
