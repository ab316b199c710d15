"""From an `nlp-train` checkpoint back to a usable run: its config, task module, data module and tokenizer.

The library the entry points (`nlp-eval`, `nlp-predict`, `nlp-export`) and callbacks (`export_best`) share; none of
them imports another entry point. A checkpoint carries the run's resolved data and model configs (see
`callbacks.run_config.RunConfigInCheckpoint`), so nothing has to be repeated on the command line. `ckpt_path=last/auto`
(continue the newest run of an experiment) is resolved by `utils.resume.resolve_checkpoint`.

Relative data paths of the checkpoint's config are read against the directory the training run started in (stored
in the checkpoint as `work_dir`), wherever `nlp-eval` runs: started elsewhere it must not test on that directory's
`data/test.csv`. Paths given as overrides (`+data.source.test=other.tsv`) are the user's, typed where the command
runs: they stay relative to the working directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.checks import check_positions, network_positions
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.resume import read_checkpoint, resolve_checkpoint
from nlp_template.utils.run import RUN_CONFIG_KEY, SPLITS, WORK_DIR_KEY

__all__ = ["TrainedRun", "load_run", "load_run_config", "resolve_checkpoint", "task_class", "tokenizer_location"]
log = logging.getLogger(__name__)


def load_run_config(ckpt_path: Path) -> DictConfig:
    """The data and model configs the checkpoint was trained with."""
    if not ckpt_path.is_file():
        raise UserInputError(f"checkpoint not found: {ckpt_path} (set ckpt_path=<run dir>/checkpoints/<file>.ckpt)")
    # Memory-mapped: only the config is read here; load_from_checkpoint reads the weights once, later.
    checkpoint = read_checkpoint(ckpt_path)
    if RUN_CONFIG_KEY not in checkpoint:
        raise UserInputError(f"{ckpt_path} was not written by nlp-train (it holds no '{RUN_CONFIG_KEY}')")
    return OmegaConf.create(checkpoint[RUN_CONFIG_KEY])


def tokenizer_location(saved_path: str | None, ckpt_path: Path, work_dir: str | None = None) -> str:
    """The run's saved tokenizer; if the run directory was moved, the `tokenizer` folder beside `checkpoints/`.

    A relative `saved_path` is a directory relative to the training run's `work_dir` where one is there, else a Hub
    id.
    """
    if saved_path and work_dir and not Path(saved_path).is_absolute() and (Path(work_dir) / saved_path).is_dir():
        return str(Path(work_dir) / saved_path)
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
        model_class = task_class(self.config, self.ckpt_path)
        model = model_class.load_from_checkpoint(self.ckpt_path, map_location="cpu", weights_only=True)
        return model.eval()

    @cached_property
    def tokenizer_path(self) -> str:
        """Where the run saved its tokenizer (model hyperparameters, else the run directory)."""
        saved = self.model.hparams.get("tokenizer_path")
        if not saved and self.config.data.get("output_dir"):
            saved = str(Path(self.config.data.output_dir) / "tokenizer")
        return tokenizer_location(saved, self.ckpt_path, self.config.get(WORK_DIR_KEY))

    def data_config(self, overrides: Any = None) -> DictConfig:
        """The run's data config, its relative paths read in the training run's directory, `overrides` merged in.

        Never a re-derived (possibly different) label order or tokenizer: both come from the checkpoint. An input
        length (`max_length`) longer than the model's position embeddings is refused.
        """
        moved = self._source_paths()
        data_cfg = OmegaConf.merge(self.config.data, {"source": moved} if moved else {}, overrides or {})
        id2label = self.model.hparams.get("id2label")
        if id2label and "labels" in data_cfg:
            data_cfg.labels = [label for _, label in sorted(id2label.items())]
        data_cfg.tokenizer = self.tokenizer_path
        data_cfg.output_dir = None
        if "block_size" not in data_cfg and isinstance(data_cfg.get("max_length"), int):
            check_positions(data_cfg.max_length, network_positions(self.model))
        return data_cfg

    def datamodule(self, overrides: Any = None) -> Any:
        """The run's data module: `data_config(overrides)` instantiated."""
        return hydra.utils.instantiate(self.data_config(overrides))

    def _source_paths(self) -> dict[str, str]:
        """The data source's relative split files (`data.source.train/...`) as paths in the training run's directory.

        An older checkpoint, without that directory, keeps them relative to this one, with a warning.
        """
        source = self.config.data.get("source") or {}
        relative = {split: source[split] for split in SPLITS if _is_relative_path(source.get(split))}
        work_dir = self.config.get(WORK_DIR_KEY)
        if relative and not work_dir:
            log.warning("%s does not say which directory its run started in (written before work_dir was stored):"
                        " its relative data paths %s are read in the current directory %s", self.ckpt_path,
                        sorted(relative.values()), Path.cwd())  # fmt: skip
            return {}
        return {split: str(Path(work_dir) / path) for split, path in relative.items()}


def task_class(config: DictConfig, source: Path) -> type:
    """The task module class a run config names (`model._target_`); refused unless it is a task of this project."""
    from nlp_template.models.base import TaskModule

    target = config.model.get("_target_", "")
    try:
        model_class = hydra.utils.get_class(target)
    except Exception:
        model_class = None
    if model_class is None or not issubclass(model_class, TaskModule):
        raise UserInputError(f"{source} holds a '{target}' model, which is not a task of this project (a TaskModule"
                             " subclass importable here); give a checkpoint of nlp-train")  # fmt: skip
    return model_class


def load_run(ckpt_path: str | Path) -> TrainedRun:
    """The checkpoint's run (config read now; model and data built when first used)."""
    path = Path(ckpt_path).expanduser()
    return TrainedRun(path, load_run_config(path))


def _is_relative_path(value: Any) -> bool:
    """A relative local path (not absolute, not `~/...`, not a URL such as `hf://...`)."""
    return isinstance(value, str) and bool(value) and "://" not in value and not Path(value).expanduser().is_absolute()
