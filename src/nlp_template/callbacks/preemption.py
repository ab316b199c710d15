"""`PreemptionCheckpoint`: a preempted or killed job saves where it is and exits, so a requeued job continues there.

Clusters and spot instances announce the end: SLURM sends a warning signal before the time limit (submitit's
`USR2`, Lightning's SLURM plugin listens for `USR1`) and `SIGTERM` before killing; cloud spot instances send
`SIGTERM`. Python runs signal handlers between any two bytecodes, which may be halfway through an optimizer step,
so this callback only notes the signal there and acts at the next batch boundary, where the state is whole:

- `SIGTERM` (Lightning notes it as `trainer.received_sigterm`): save `<checkpoints>/last.ckpt` and stop with
  `SIGTERMException`; `nlp-train` then prints one line and exits with status 143 (128 + SIGTERM, what a shell
  reports for a process SIGTERM stopped, so schedulers see the run did not finish).
- `USR1`/`USR2`: save `last.ckpt`, then run the handler that was there before (submitit's or Lightning's), which
  requeues the job and ends this one.

In DDP the ranks first agree that one of them was signalled (one all-reduce of a flag per step), so they all save at
the same step. A requeued job given `ckpt_path=auto` (or `last`) resumes from that checkpoint mid-epoch, with the
data position, RNG states and logger runs restored.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class PreemptionCheckpoint(L.Callback):
    """Save `last.ckpt` at the batch boundary after SIGTERM or a requeue signal, then stop (or let the requeue run).

    Args:
        dirpath: where `last.ckpt` goes (the run's checkpoint folder, where `ckpt_path=last` looks).
        signals: the requeue warning signals to catch besides SIGTERM (names such as `SIGUSR1`, `SIGUSR2`).
    """

    def __init__(self, dirpath: str, signals: list[str] = ("SIGUSR1", "SIGUSR2")) -> None:
        self.dirpath = Path(dirpath)
        self.signals = [getattr(signal, name) for name in signals]
        self.pending: int | None = None  # the requeue signal noted, not yet acted on
        self.previous: dict[int, Any] = {}
        self.saved_path: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Chain a note-taking handler in front of whatever handles the requeue signals now."""
        for signum in self.signals:
            try:
                self.previous[signum] = signal.signal(signum, self._note)
            except ValueError:  # not the main thread: signals cannot be handled here
                return

    def _note(self, signum: int, frame: Any) -> None:
        self.pending = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """At the batch boundary: save and stop (SIGTERM) or save and hand over to the requeue handler."""
        sigterm, requeue = bool(trainer.received_sigterm), self.pending is not None
        if trainer.world_size > 1:  # every rank saves at the same step, or the save's barrier would hang
            sigterm = trainer.strategy.reduce_boolean_decision(sigterm, all=False)
            requeue = trainer.strategy.reduce_boolean_decision(requeue, all=False)
        if not (sigterm or requeue):
            return
        self._save(trainer, "SIGTERM" if sigterm else signal.Signals(self.pending or signal.SIGUSR1).name)
        if sigterm:
            raise SIGTERMException
        signum, self.pending = self.pending or self.signals[0], None
        handler = self.previous.get(signum)
        if callable(handler):  # e.g. submitit: requeue this job and exit; Lightning's SLURM plugin: the same
            handler(signum, None)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """SIGTERM noticed by Lightning itself (between epochs, in validation, in DDP): save if not saved yet."""
        if isinstance(exception, SIGTERMException) and self.saved_path is None:
            self._save(trainer, "SIGTERM")
        self._restore()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Give the signals back to their earlier handlers."""
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _save(self, trainer: L.Trainer, reason: str) -> None:
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)
        self.saved_path = path
        log.warning("%s at step %d: saved %s; continue with ckpt_path=last (or auto)", reason, trainer.global_step,
                    path)  # fmt: skip
