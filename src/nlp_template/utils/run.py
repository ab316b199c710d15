"""Run bookkeeping shared by the entry points: warnings, checkpoint keys, metrics.json."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
RUN_CONFIG_KEY = "nlp_template_config"
LOGGERS_KEY = "nlp_template_logger_runs"
WORK_DIR_KEY = "work_dir"  # in the run config of a checkpoint: the absolute directory the training run started in
SPLITS = ("train", "validation", "test")


def apply_extras(cfg: DictConfig) -> None:
    """Settings from `cfg.extras`: silence known-harmless warnings; allow remote code only if asked to."""
    from nlp_template.utils.hub import set_trust_remote_code

    set_trust_remote_code(bool(cfg.get("extras") and cfg.extras.get("trust_remote_code")))
    if cfg.get("extras") and cfg.extras.get("ignore_warnings"):
        # Two data-loader workers or fewer is the norm on small machines; Lightning warns about it on every loader.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
        # Lightning advertises its cloud logger at every start.
        logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
            lambda record: "litlogger" not in record.getMessage()
        )
        # torchao (pulled in by ExecuTorch's XNNPACK backend, then imported by peft) fails to load its CUDA kernels on
        # a CPU machine and registers enums with torch's pytree, which logs a deprecation: both at import, both
        # about things this project does not use.
        for name in ("torchao", "torch.utils._pytree"):
            logging.getLogger(name).setLevel(logging.ERROR)


def plain_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Tensors and numbers as plain floats (NaN/inf as None, which JSON can hold)."""
    result = {}
    for key, value in metrics.items():
        number = float(value.item() if isinstance(value, torch.Tensor) else value)
        result[key] = number if math.isfinite(number) else None
    return result


def check_fresh_run_dir(output_dir: str | Path) -> None:
    """Refuse a run directory that holds a finished run (its `metrics.json`, which `write_metrics` never replaces).

    `nlp-train` checks before writing `config.yaml` there; `training.train` again, for runs started from Python.
    """
    if (Path(output_dir) / "metrics.json").is_file():
        raise UserInputError(f"{output_dir} holds a finished run (metrics.json); choose another hydra.run.dir or leave"
                             " it to Hydra (to train on from that run: ckpt_path=<its checkpoint>)")  # fmt: skip


def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write `<output_dir>/metrics.json`, refusing to overwrite one a previous run left there."""
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x") as handle:  # "x": never overwrite another run's results
        json.dump(metrics, handle, indent=2, sort_keys=True)
    log.info("Metrics written to %s", path)
    return path


def data_files(data_cfg: DictConfig | dict) -> dict[str, dict[str, str]]:
    """The local files a data config reads, per split: absolute path and SHA-256 of the content.

    Relative paths are taken against the working directory, as the data sources open them. Splits without a
    local file (Hub data, generated samples, a split not configured) are left out.
    """
    from nlp_template.data.split_files import content_sha256  # the hashing FileSource keys its caches with

    source = (data_cfg or {}).get("source") or {}
    files = {}
    for split in SPLITS:
        value = source.get(split)
        path = Path(value).expanduser() if isinstance(value, str) and "://" not in value else None
        if path is not None and path.is_file():
            files[split] = {"path": str(path.resolve()), "sha256": content_sha256(path)}
    return files
