"""From an `nlp-train` checkpoint back to a usable run: its config, task module, data module and tokenizer.

The library the entry points (`nlp-eval`, `nlp-predict`, `nlp-export`) and callbacks (`export_best`) share; none of
them imports another entry point. A checkpoint carries the run's resolved data and model configs (see
`utils.run.RunConfigInCheckpoint`), so nothing has to be repeated on the command line. `ckpt_path=last/auto`
(continue the newest run of an experiment) is resolved by `utils.resume.resolve_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.errors import UserInputError
from nlp_template.utils.resume import read_checkpoint, resolve_checkpoint
from nlp_template.utils.run import RUN_CONFIG_KEY

__all__ = ["TrainedRun", "load_run", "load_run_config", "resolve_checkpoint", "tokenizer_location"]


def load_run_config(ckpt_path: Path) -> DictConfig:
    """The data and model configs the checkpoint was trained with."""
    if not ckpt_path.is_file():
        raise UserInputError(f"checkpoint not found: {ckpt_path} (set ckpt_path=<run dir>/checkpoints/<file>.ckpt)")
    # Memory-mapped: only the config is read here; load_from_checkpoint reads the weights once, later.
    checkpoint = read_checkpoint(ckpt_path)
    if RUN_CONFIG_KEY not in checkpoint:
        raise UserInputError(f"{ckpt_path} was not written by nlp-train (it holds no '{RUN_CONFIG_KEY}')")
    return OmegaConf.create(checkpoint[RUN_CONFIG_KEY])


def tokenizer_location(saved_path: str | None, ckpt_path: Path) -> str:
    """The run's saved tokenizer; if the run directory was moved, the `tokenizer` folder beside `checkpoints/`."""
    if saved_path and (Path(saved_path).is_dir() or not Path(saved_path).is_absolute()):
        return saved_path
    moved = ckpt_path.resolve().parent.parent / "tokenizer"
    if moved.is_dir():
        return str(moved)
    raise UserInputError(f"the run's tokenizer is missing: {saved_path} (nor found at {moved})")


@dataclass
class TrainedRun:
    """A checkpoint with its run config; the model, data module and tokenizer are built on first use (CPU)."""

    ckpt_path: Path
    config: DictConfig

    @cached_property
    def model(self) -> Any:
        """The trained task module (`TaskModule` subclass named in the run config), in eval mode, on the CPU."""
        from nlp_template.models.base import TaskModule

        target = self.config.model.get("_target_", "")
        try:
            model_class = hydra.utils.get_class(target)
        except Exception:
            model_class = None
        if model_class is None or not issubclass(model_class, TaskModule):
            raise UserInputError(f"{self.ckpt_path} holds a '{target}' model, which is not a task of this project (a"
                                 " TaskModule subclass importable here); give a checkpoint of nlp-train")  # fmt: skip
        model = model_class.load_from_checkpoint(self.ckpt_path, map_location="cpu", weights_only=True)
        return model.eval()

    @cached_property
    def tokenizer_path(self) -> str:
        """Where the run saved its tokenizer (model hyperparameters, else the run directory)."""
        saved = self.model.hparams.get("tokenizer_path")
        if not saved and self.config.data.get("output_dir"):
            saved = str(Path(self.config.data.output_dir) / "tokenizer")
        return tokenizer_location(saved, self.ckpt_path)

    def datamodule(self, overrides: Any = None) -> Any:
        """The run's data module (with `overrides` merged in) on the model's own label order and tokenizer.

        Never a re-derived (possibly different) label order or tokenizer: both come from the checkpoint.
        """
        data_cfg = OmegaConf.merge(self.config.data, overrides or {})
        id2label = self.model.hparams.get("id2label")
        if id2label and "labels" in data_cfg:
            data_cfg.labels = [label for _, label in sorted(id2label.items())]
        data_cfg.tokenizer = self.tokenizer_path
        data_cfg.output_dir = None
        return hydra.utils.instantiate(data_cfg)


def load_run(ckpt_path: str | Path) -> TrainedRun:
    """The checkpoint's run (config read now; model and data built when first used)."""
    path = Path(ckpt_path).expanduser()
    return TrainedRun(path, load_run_config(path))
