"""The one place that knows logger classes: what each does with figures, tables and text, its run id, its resuming.

Callbacks and run bookkeeping talk to loggers through `adapter_for(logger)` and never test logger classes
themselves, so supporting another logger is one `register_adapter(LoggerClass, Adapter)` call. Logger config
entries (before any logger exists) are answered from the same registry: `resume_settings`, `stored_run_id` and
`needs_wandb_offline_fallback` import the entry's `_target_` and match the class exactly as an instance is matched.

Built in: TensorBoard, Weights & Biases and MLflow. Every other logger (CSV, unknown ones) gets the base
`LoggerAdapter`, which does nothing. Lightning's classes are registered by import path and imported on first use,
so this module imports nothing optional.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar


class LoggerAdapter:
    """A logger's way of showing figures, tables and text, and its run identity; this base does nothing.

    Methods take `step` (None: the logger's default) and `artifact_file`: the file name for loggers that keep
    what they receive as files (MLflow); None derives one from `key`.

    Attributes:
        prefers_tables: rows read better in this logger's table view than as markdown text (W&B sorts and filters
            tables, and has no text panel), so callers holding both forms send the table.
        wandb_offline_fallback: the logger is W&B's: without an API key it must be switched to offline mode
            before it is built (`loggers.prepare_loggers`).
        name: the registered logger class's name (`WandbLogger`, ...), the key of this logger's run id in
            checkpoints; None for unregistered loggers.
    """

    prefers_tables: ClassVar[bool] = False
    wandb_offline_fallback: ClassVar[bool] = False

    def __init__(self, logger: Any, name: str | None = None) -> None:
        self.logger = logger
        self.name = name

    def log_figure(self, key: str, figure: Any, step: int | None, artifact_file: str | None = None) -> None:
        """Log a matplotlib figure under `key`."""

    def log_table(
        self, key: str, columns: list[str], rows: list[list[Any]], step: int | None, artifact_file: str | None = None
    ) -> None:
        """Log a table (`rows` of values in the order of `columns`) under `key`."""

    def log_text(self, key: str, text: str, step: int | None, artifact_file: str | None = None) -> None:
        """Log markdown text under `key`."""

    def run_id(self) -> str | None:
        """The id of the run this logger writes to, for a resumed training to continue it (None: nothing to store)."""
        return None

    def finish(self) -> None:
        """End the run where the logger would keep it open past this job (the next job of a multirun needs its own)."""

    def is_continued_run(self) -> bool:
        """True when the logger continues a run that already has hyperparameters that cannot be logged again."""
        return False

    @classmethod
    def resume_settings(cls, run_id: str) -> dict[str, Any]:
        """Config fields that make a logger of this kind continue the run `run_id` (empty: it cannot)."""
        return {}


class TensorBoardAdapter(LoggerAdapter):
    """TensorBoard: figures as images, tables and text in its text tab (markdown)."""

    def log_figure(self, key: str, figure: Any, step: int | None, artifact_file: str | None = None) -> None:
        """Log the figure as an image."""
        self.logger.experiment.add_figure(key, figure, global_step=step)

    def log_table(
        self, key: str, columns: list[str], rows: list[list[Any]], step: int | None, artifact_file: str | None = None
    ) -> None:
        """Log the table as a markdown table (TensorBoard has no table view; its text tab renders markdown)."""
        header = f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
        body = "\n".join(f"| {' | '.join(str(value) for value in row)} |" for row in rows)
        self.logger.experiment.add_text(key, header + body, global_step=step)

    def log_text(self, key: str, text: str, step: int | None, artifact_file: str | None = None) -> None:
        """Log the text to the text tab."""
        self.logger.experiment.add_text(key, text, global_step=step)


class WandbAdapter(LoggerAdapter):
    """Weights & Biases: images and tables in the run's panels; run ids continue with `resume: allow`."""

    prefers_tables = True
    wandb_offline_fallback = True

    def log_figure(self, key: str, figure: Any, step: int | None, artifact_file: str | None = None) -> None:
        """Log the figure as an image."""
        self.logger.log_image(key, [figure], step=step)

    def log_table(
        self, key: str, columns: list[str], rows: list[list[Any]], step: int | None, artifact_file: str | None = None
    ) -> None:
        """Log a W&B table."""
        self.logger.log_table(key, columns=columns, data=rows, step=step)

    def log_text(self, key: str, text: str, step: int | None, artifact_file: str | None = None) -> None:
        """Log the text as a one-cell table (W&B shows text only in tables)."""
        self.logger.log_text(key, columns=["text"], data=[[text]], step=step)

    def _started(self) -> bool:
        # Reading `experiment` would start a W&B run (and contact the server) only to name or end it.
        return getattr(self.logger, "_experiment", None) is not None

    def run_id(self) -> str | None:
        """The W&B run id, once the run has started."""
        return self.logger.experiment.id if self._started() else None

    def finish(self) -> None:
        """Finish the W&B run: wandb keeps one run per process, so the next multirun job would otherwise reuse it."""
        if self._started():
            self.logger.experiment.finish()

    @classmethod
    def resume_settings(cls, run_id: str) -> dict[str, Any]:
        """`id` and `resume: allow`: continue the run if W&B has it, else start a run with that id."""
        return {"id": run_id, "resume": "allow"}


class MLflowAdapter(LoggerAdapter):
    """MLflow: figures, tables and text as artifacts of the run; params are write-once, so resumed runs keep theirs."""

    def _log(self, method: str, value: Any, artifact_file: str) -> None:
        getattr(self.logger.experiment, method)(self.logger.run_id, value, artifact_file)

    def log_figure(self, key: str, figure: Any, step: int | None, artifact_file: str | None = None) -> None:
        """Log the figure as an image artifact (`<key>.png` by default)."""
        self._log("log_figure", figure, artifact_file or f"{key}.png")

    def log_table(
        self, key: str, columns: list[str], rows: list[list[Any]], step: int | None, artifact_file: str | None = None
    ) -> None:
        """Log the table as a JSON table artifact (`<key>.json` by default), which the MLflow UI shows as a table."""
        table = {column: [row[index] for row in rows] for index, column in enumerate(columns)}
        self._log("log_table", table, artifact_file or f"{key}.json")

    def log_text(self, key: str, text: str, step: int | None, artifact_file: str | None = None) -> None:
        """Log the text as a markdown artifact, one file per step (`<key>/step_0000123.md` by default)."""
        self._log("log_text", text, artifact_file or (f"{key}/step_{step:07d}.md" if step is not None else f"{key}.md"))

    def run_id(self) -> str:
        """The MLflow run id (the run is created if it was not yet)."""
        return self.logger.run_id

    def is_continued_run(self) -> bool:
        """True when the logger was given an existing run (a resumed training) that already has parameters."""
        if not getattr(self.logger, "_run_id", None):  # set at construction only when continuing a run
            return False
        return bool(self.logger.experiment.get_run(self.logger.run_id).data.params)

    @classmethod
    def resume_settings(cls, run_id: str) -> dict[str, Any]:
        """`run_id`: log into the existing run."""
        return {"run_id": run_id}


# Logger class (or its import path, imported on first use) -> adapter. Subclasses of a registered class get its
# adapter unless they are registered themselves.
_REGISTRY: dict[type | str, type[LoggerAdapter]] = {
    "lightning.pytorch.loggers.TensorBoardLogger": TensorBoardAdapter,
    "lightning.pytorch.loggers.WandbLogger": WandbAdapter,
    "lightning.pytorch.loggers.MLFlowLogger": MLflowAdapter,
}


def register_adapter(logger_class: type | str, adapter: type[LoggerAdapter]) -> None:
    """Use `adapter` for instances (and config entries) of `logger_class` (a class or its import path)."""
    _REGISTRY[logger_class] = adapter


@functools.cache
def _import_class(path: str) -> type | None:
    """The class at the import path `path` ("package.module.Class"), or None where there is none."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
            for attribute in parts[split:]:
                found = getattr(found, attribute)
        except Exception:  # any failure means "not that class": instantiating the entry reports the error
            continue
        return found if isinstance(found, type) else None
    return None


def _match(cls: type) -> tuple[type, type[LoggerAdapter]] | None:
    """The registered class `cls` is or derives from (the nearest in its MRO), with its adapter."""
    registered = {}
    for key, adapter in _REGISTRY.items():
        resolved = key if isinstance(key, type) else _import_class(key)
        if resolved is not None:  # an uninstalled optional logger is simply not matched
            registered[resolved] = adapter
    for base in cls.__mro__:  # isinstance, but the most specific registration wins
        if base in registered:
            return base, registered[base]
    return None


def adapter_for(logger: Any) -> LoggerAdapter:
    """The adapter of a logger instance: the registered one for its class, else the base, which does nothing."""
    match = _match(type(logger))
    return match[1](logger, name=match[0].__name__) if match else LoggerAdapter(logger)


def _entry_match(entry_target: str) -> tuple[str | None, type[LoggerAdapter]]:
    """A config entry's registered class name and adapter class, from its `_target_` (None, base: unregistered)."""
    cls = _import_class(entry_target) if entry_target else None
    match = _match(cls) if cls is not None else None
    return (match[0].__name__, match[1]) if match else (None, LoggerAdapter)


def logger_run_ids(loggers: Iterable[Any]) -> dict[str, str]:
    """The run ids to store in a checkpoint: {registered class name, e.g. "WandbLogger": run id}.

    The format stays as checkpoints have always stored it, so older checkpoints still resume their runs.
    """
    runs = {}
    for adapter in map(adapter_for, loggers):
        run_id = adapter.run_id()
        if adapter.name and run_id is not None:
            runs[adapter.name] = run_id
    return runs


def stored_run_id(entry_target: str, run_ids: Mapping[str, str]) -> str | None:
    """The run id that `logger_run_ids` stored for loggers of the config entry with `_target_` `entry_target`."""
    name, _ = _entry_match(entry_target)
    return run_ids.get(name) if name else None


def resume_settings(entry_target: str, run_id: str | None) -> dict[str, Any]:
    """The config fields to set on the logger entry with `_target_` `entry_target` so it continues `run_id`.

    Empty without a run id or for loggers that cannot continue a run (then the entry is left as it is).
    """
    return _entry_match(entry_target)[1].resume_settings(run_id) if run_id else {}


def needs_wandb_offline_fallback(entry_target: str) -> bool:
    """True for W&B logger entries: without an API key they must log offline (decided before they are built)."""
    return _entry_match(entry_target)[1].wandb_offline_fallback


def log_samples(trainer: Any, samples: list[dict[str, str]]) -> None:
    """Generated samples (dicts with the same keys; the first key heads each sample) at the trainer's step.

    Appended as markdown to `<run dir>/samples.md` and sent to every logger: a table where it prefers tables (W&B),
    else the markdown (TensorBoard renders it; MLflow keeps it as samples/step_NNNNNNN.md).
    """
    step, columns = trainer.global_step, list(samples[0])
    lines = [f"## step {step}\n"]
    for sample in samples:
        head, *rest = columns
        lines += [f"**{head}** `{sample[head]!r}`\n", *(f"- {key}: `{sample[key]!r}`" for key in rest), ""]
    text = "\n".join(lines) + "\n"
    logging.getLogger(__name__).info("Generated at step %d: %r -> %r", step, samples[0][columns[0]],
                                     samples[0][columns[-1]])  # fmt: skip
    if trainer.default_root_dir:
        with open(Path(trainer.default_root_dir) / "samples.md", "a") as handle:
            handle.write(text)
    rows = [[sample[column] for column in columns] for sample in samples]
    for adapter in map(adapter_for, trainer.loggers):
        if adapter.prefers_tables:  # W&B: a column per field, instead of the markdown
            adapter.log_table("samples", columns, rows, step)
        else:
            adapter.log_text("samples", text, step)
