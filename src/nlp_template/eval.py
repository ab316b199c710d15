"""Evaluation entry point: `nlp-eval ckpt_path=PATH` or `python -m nlp_template.eval ckpt_path=PATH`.

The checkpoint carries the run's data and model configs (see `utils.run.RunConfigInCheckpoint`) and the model's
label set and tokenizer location, so no training overrides need repeating. `+data.KEY=VALUE` changes the data
config, e.g. `+data.source.test=other.tsv` to test on another file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.config import CONFIG_DIR, print_and_save, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error, one_line_config_errors
from nlp_template.utils.resume import read_checkpoint
from nlp_template.utils.run import RUN_CONFIG_KEY, apply_extras, plain_metrics, write_metrics

log = logging.getLogger(__name__)
register_resolvers()


def load_run_config(ckpt_path: Path) -> DictConfig:
    """The data and model configs the checkpoint was trained with."""
    if not ckpt_path.is_file():
        raise UserInputError(f"checkpoint not found: {ckpt_path} (set ckpt_path=<run dir>/checkpoints/<file>.ckpt)")
    # Memory-mapped: only the config is read here; load_from_checkpoint reads the weights once, below.
    checkpoint = read_checkpoint(ckpt_path)
    if RUN_CONFIG_KEY not in checkpoint:
        raise UserInputError(f"{ckpt_path} was not written by nlp-train (it holds no '{RUN_CONFIG_KEY}')")
    return OmegaConf.create(checkpoint[RUN_CONFIG_KEY])


def tokenizer_location(saved_path: str | None, ckpt_path: Path) -> str | None:
    """The saved tokenizer; if the run directory was moved, look beside the checkpoint's folder."""
    if saved_path and (Path(saved_path).is_dir() or not Path(saved_path).is_absolute()):
        return saved_path
    moved = ckpt_path.resolve().parent.parent / "tokenizer"
    if moved.is_dir():
        return str(moved)
    raise UserInputError(f"the run's tokenizer is missing: {saved_path} (nor found at {moved})")


def load_task_module(ckpt_path: Path) -> tuple[DictConfig, Any]:
    """The run config and the trained task module (on the CPU) of an `nlp-train` checkpoint."""
    from nlp_template.models.base import TaskModule

    run_cfg = load_run_config(ckpt_path)
    target = run_cfg.model.get("_target_", "")
    try:
        model_class = hydra.utils.get_class(target)
    except Exception:
        model_class = None
    if model_class is None or not issubclass(model_class, TaskModule):
        raise UserInputError(f"{ckpt_path} holds a '{target}' model, which is not a task of this project; give a"
                             " checkpoint of TextClassifier, RNNClassifier, TokenClassifier or CausalLM")  # fmt: skip
    return run_cfg, model_class.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)


def checkpoint_datamodule(run_cfg: DictConfig, model: Any, ckpt_path: Path, overrides: Any = None) -> Any:
    """The run's data module (with `overrides` merged in) on the model's own label order and tokenizer."""
    data_cfg = OmegaConf.merge(run_cfg.data, overrides or {})
    # Never a re-derived (possibly different) label order or tokenizer.
    if model.hparams.get("id2label"):
        data_cfg.labels = [label for _, label in sorted(model.hparams.id2label.items())]
    data_cfg.tokenizer = tokenizer_location(model.hparams.tokenizer_path, ckpt_path)
    data_cfg.output_dir = None
    return hydra.utils.instantiate(data_cfg)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint on the test split of its data (or of the overridden data); returns the metrics."""
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    run_cfg, model = load_task_module(ckpt_path)
    datamodule = checkpoint_datamodule(run_cfg, model, ckpt_path, cfg.get("data"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=False)
    metrics = plain_metrics(trainer.test(model, datamodule=datamodule)[0])
    metrics["ckpt_path"] = str(ckpt_path.resolve())
    if trainer.is_global_zero:
        write_metrics(cfg.paths.output_dir, metrics)
    return metrics


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    apply_extras(cfg)
    print_and_save(cfg, cfg.paths.output_dir, show=cfg.extras.get("print_config", True))
    evaluate(cfg)
    print(f"Run directory: {cfg.paths.output_dir}")


if __name__ == "__main__":
    main()
