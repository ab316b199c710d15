"""`RunConfigInCheckpoint`: checkpoints carry the run's data and model configs, seed, monitor and directory.

So `nlp-eval ckpt_path=...` needs no other file and no repeated command-line overrides, and `ckpt_path=last` can
tell which checkpoints belong to the same experiment. `work_dir` is the directory the run started in: relative data
paths of the config were read against it, and `checkpoints.TrainedRun` reads them there again. The W&B/MLflow run
ids travel too, so a resumed run continues the same logger runs.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.logger_adapters import logger_run_ids
from nlp_template.utils.run import LOGGERS_KEY, RUN_CONFIG_KEY, WORK_DIR_KEY


class RunConfigInCheckpoint(L.Callback):
    """Store the run's configs under `RUN_CONFIG_KEY` and the logger run ids under `LOGGERS_KEY` in checkpoints.

    Args:
        data: the run's data config (`${data}` in conf/train.yaml; instantiated with `_recursive_: false`).
        model: the run's model config.
        seed: the run's seed, part of what makes two runs the same experiment (`ckpt_path=auto`).
        monitor: the run's monitored metric and mode (`{"metric": "val/acc", "mode": "max"}`), for tools that judge
            the model later (the int8 export's metric check).
    """

    def __init__(self, data: DictConfig | dict, model: DictConfig | dict, seed: int | None = None,
                 monitor: DictConfig | dict | None = None) -> None:  # fmt: skip
        self.config: dict[str, Any] = {key: _plain(value) for key, value in (("data", data), ("model", model))}
        self.config["seed"] = seed
        self.config["monitor"] = _plain(monitor) if monitor else None
        self.config[WORK_DIR_KEY] = os.getcwd()  # hydra.job.chdir is false: the data module reads relative to it

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Add the config and the W&B/MLflow run ids (for resuming)."""
        checkpoint[RUN_CONFIG_KEY] = self.config
        checkpoint[LOGGERS_KEY] = logger_run_ids(trainer.loggers)


def _plain(config: DictConfig | dict) -> dict:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else dict(config)
