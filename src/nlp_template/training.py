"""Training: what `nlp-train` runs once its config is composed (`train.py` is the thin entry point).

seed -> data module (labels, tokenizer, cached token ids) -> model (told the labels and vocabulary by the data)
-> callbacks, loggers, trainer -> fit -> validate and test the best checkpoint -> metrics.json -> the metric that
sweepers optimise.
"""

from __future__ import annotations

import inspect
import logging
import shlex
import time
from collections.abc import Callable
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import DictConfig, OmegaConf

from nlp_template.models.adapters import parameter_counts
from nlp_template.utils.config import register_resolvers, resolved, task_overrides
from nlp_template.utils.distributed import install_hydra_ddp_fix
from nlp_template.utils.instantiate import instantiate_list
from nlp_template.utils.loggers import finish_loggers, log_run, prepare_loggers
from nlp_template.utils.plots import plot_curves
from nlp_template.utils.precision import warn_about_precision
from nlp_template.utils.resume import continue_logger_runs, resolve_checkpoint
from nlp_template.utils.run import check_fresh_run_dir, plain_metrics, write_metrics

log = logging.getLogger(__name__)
register_resolvers()
install_hydra_ddp_fix()  # DDP children started by Lightning re-run this Hydra job (utils/distributed.py)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the model the config describes; returns the metrics also written to `metrics.json`."""
    output_dir = cfg.paths.output_dir
    check_fresh_run_dir(output_dir)  # now, not after the training, when metrics.json could not be written
    if cfg.get("seed") is not None:  # 0 is a valid seed
        L.seed_everything(cfg.seed, workers=True)

    log.info("Instantiating data module <%s>", cfg.data._target_)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")

    log.info("Instantiating model <%s>", cfg.model._target_)
    model = hydra.utils.instantiate(cfg.model, _convert_="all", **accepted(cfg.model, datamodule.model_kwargs()))

    ckpt_path = resolve_checkpoint(cfg)  # None, a path, or the newest last.ckpt of this experiment (last/auto)
    callbacks = instantiate_list(cfg.get("callbacks")) + instantiate_list(cfg.get("run_callbacks"))
    continue_logger_runs(cfg, ckpt_path)
    prepare_loggers(cfg.get("logger"))
    loggers = instantiate_list(cfg.get("logger"))
    warn_about_precision(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("precision", "32-true"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    without_validation(trainer)
    log_run(trainer, resolved(cfg), model, output_dir)  # config, git commit, versions, parameter counts

    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - start
    trained = {"global_step": trainer.global_step, "epochs": trainer.current_epoch}  # before checkpoints reload

    # Report the best checkpoint's scores; fast_dev_run and runs without checkpointing use the final weights.
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint else ""
    ckpt = best_path or None
    metrics: dict[str, Any] = dict(
        _first(trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False))
    )
    if cfg.get("test") and "test" in datamodule.splits:
        metrics.update(_first(trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)))
    for callback in trainer.callbacks:  # callbacks that summarise the run, e.g. the throughput monitor's medians
        if hasattr(callback, "summary"):
            metrics.update(callback.summary())
    metrics = plain_metrics(metrics)
    counts = parameter_counts(model.network)  # with model.peft: the adapters (and head) of the frozen network
    metrics.update(
        best_model_path=best_path or None,
        **trained,
        fit_seconds=round(fit_seconds, 2),
        trainable_parameters=counts["trainable"],
        total_parameters=counts["total"],
    )
    if trainer.is_global_zero:
        write_metrics(output_dir, metrics)
    write_reports(trainer)  # after metrics.json: a report that fails or runs long cannot cost the run its numbers
    finish_loggers(trainer)  # flushes csv/metrics.csv, which the curves are drawn from
    if trainer.is_global_zero:
        _best_effort("curves.png", plot_curves, output_dir, OmegaConf.select(cfg, "monitor.metric"))
    return metrics


def without_validation(trainer: L.Trainer) -> None:
    """With `trainer.limit_val_batches=0` there is no score to stop early on or to pick a best checkpoint by: say so.

    Early stopping is removed (it would wait for a metric that never comes); the checkpoints keep the last weights,
    which are the ones tested.
    """
    if trainer.limit_val_batches != 0:
        return
    trainer.callbacks = [callback for callback in trainer.callbacks if not isinstance(callback, EarlyStopping)]
    saved = any(getattr(callback, "save_last", False) for callback in trainer.checkpoint_callbacks)
    log.warning("No validation (trainer.limit_val_batches=0): early stopping and best-checkpoint selection are off;"
                " the final weights are tested%s", " and saved as last.ckpt" if saved else "")  # fmt: skip


def write_reports(trainer: L.Trainer) -> None:
    """Let the callbacks that report on the test split (`write_report`) write their files; a failure is a warning."""
    for callback in trainer.callbacks:
        if hasattr(callback, "write_report"):
            _best_effort(f"{type(callback).__name__}'s report", callback.write_report, trainer)


def _best_effort(what: str, func: Callable[..., Any], *args: Any) -> None:
    """Run an optional end-of-run step; a failure is a warning (metrics.json is already written)."""
    try:
        func(*args)
    except Exception as error:  # noqa: BLE001 - say what is missing instead of losing the run
        log.warning("%s could not be written (%s: %s); metrics.json is complete", what, type(error).__name__, error)


def accepted(model_cfg: DictConfig, facts: dict[str, Any]) -> dict[str, Any]:
    """The data's facts (labels, vocabulary size, ...) that the model's constructor takes.

    A model takes what it needs and no more: a model that builds no embedding does not declare `vocab_size`.
    """
    names: set[str] = set()
    for cls in hydra.utils.get_class(model_cfg._target_).__mro__:  # a subclass's **kwargs go to its parent's init
        parameters = inspect.signature(cls.__init__).parameters
        names |= set(parameters)
        if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
            return {key: value for key, value in facts.items() if key in names}
    return facts


def resume_command() -> str:
    """The run's command line with `ckpt_path=last` (secret values shown as `***`, to be typed again)."""
    overrides = [o for o in task_overrides() if o.split("=")[0].lstrip("+~") != "ckpt_path"]
    return " ".join(["nlp-train", *map(shlex.quote, overrides), "ckpt_path=last"])


def _first(results: list[dict]) -> dict:
    """The first dataloader's metrics (empty when the loop ran no batch, e.g. trainer.limit_val_batches=0)."""
    return results[0] if results else {}
