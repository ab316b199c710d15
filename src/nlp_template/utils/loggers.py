"""What every logger receives, and the W&B conveniences.

Every logger gets the resolved config plus `run`: the git commit (and whether the tree had uncommitted changes), the
versions of the packages that decide the numbers, and the model's parameter counts; the same goes to
`<run dir>/run.json`, with the directories the run depended on (`work_dir`: where it started, against which its
relative data paths were read; `project_root`: whose conf/ it composed; `code`: where its Python code came from).
Values of secret keys (`utils.config.SECRET_KEY`: keys ending in api_key, token, password, ...) are replaced by
`***` before anything is logged or saved. W&B without an API key switches to offline mode with a one-line hint
instead of failing, and each job of a multirun finishes its own W&B run.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import netrc
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from nlp_template.utils.config import PACKAGE_CLONE, find_project_root, redact, saved_config, task_overrides
from nlp_template.utils.logger_adapters import adapter_for, needs_wandb_offline_fallback

log = logging.getLogger(__name__)
PACKAGES = ("torch", "lightning", "transformers", "tokenizers", "datasets", "hydra-core", "torchmetrics", "numpy")


def git_state(root: Path | None = None) -> dict[str, Any] | None:
    """The commit checked out at `root` and whether tracked files differ from it (None outside a git repository).

    `root` defaults to the clone the code runs from (what the commit must reproduce), else the project root.
    """
    root = root or PACKAGE_CLONE or find_project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def run_metadata(model: L.LightningModule | None = None) -> dict[str, Any]:
    """Git state, directories, Python and package versions, and parameter counts of `model`."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    # With the resolved config (config.yaml beside run.json), what it takes to run it again.
    metadata: dict[str, Any] = {"git": git_state(), "versions": versions, "overrides": task_overrides()}
    # Relative data paths of the config were read against work_dir (nlp-eval resolves them the same way).
    metadata.update(work_dir=os.getcwd(), project_root=str(find_project_root()), code=str(Path(__file__).parents[1]))
    if model is not None:
        parameters = list(model.parameters())
        metadata["parameters"] = {
            "total": sum(p.numel() for p in parameters),
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
        }
    return metadata


def log_run(trainer: L.Trainer, config: dict[str, Any], model: L.LightningModule, output_dir: str | Path) -> None:
    """Send the redacted config and the run metadata to every logger; write them to `<output_dir>/run.json`.

    The config also goes to `config.yaml` where the command line has not already saved it (runs started in Python).
    """
    metadata = run_metadata(model)
    hyperparameters = {**redact(config), "run": metadata}
    for logger in trainer.loggers:
        adapter = adapter_for(logger)
        if adapter.is_continued_run():  # MLflow params are write-once; the resumed run keeps the first ones
            log.info("%s run %s continues: its parameters stay as first logged", adapter.name, adapter.run_id())
            continue
        logger.log_hyperparams(hyperparameters)
    if trainer.is_global_zero:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "run.json").write_text(json.dumps(metadata, indent=2))
        if not (Path(output_dir) / "config.yaml").exists():  # runs started from Python (tests, notebooks)
            (Path(output_dir) / "config.yaml").write_text(OmegaConf.to_yaml(saved_config(config)))


def prepare_loggers(logger_config: Any) -> None:
    """Before the loggers are built: folders of local SQLite stores (MLflow), and W&B's offline fallback."""
    entries = [entry for entry in (logger_config or {}).values() if entry]
    for entry in entries:
        uri = str(entry.get("tracking_uri") or "")
        if uri.startswith("sqlite:///"):  # SQLite cannot create the database's folder
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if any(needs_wandb_offline_fallback(str(entry.get("_target_", ""))) for entry in entries):
        _wandb_offline_without_key()


def _wandb_offline_without_key() -> None:
    """Without a W&B API key or `WANDB_MODE`, log offline and say how to upload, instead of failing at start."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY") or _wandb_login_on_file():
        return
    os.environ["WANDB_MODE"] = "offline"
    log.warning(
        "W&B: no API key (WANDB_API_KEY or `wandb login`), logging offline to <run dir>/wandb/; upload later with"
        " `wandb sync <run dir>/wandb/offline-run-*`"
    )


def _wandb_login_on_file() -> bool:
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def finish_loggers(trainer: L.Trainer) -> None:
    """End the W&B run of this job, so the next job of a multirun starts its own."""
    for logger in trainer.loggers:
        adapter_for(logger).finish()
