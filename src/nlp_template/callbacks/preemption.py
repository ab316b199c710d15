"""`PreemptionCheckpoint`: a preempted or killed job saves where it is and exits, so a requeued job continues there.

Clusters and spot instances announce the end: SLURM sends a warning signal before the time limit (submitit's
`USR2`, Lightning's SLURM plugin listens for `USR1`) and `SIGTERM` before killing; cloud spot instances send
`SIGTERM`. Python runs signal handlers between any two bytecodes, which may be halfway through an optimizer step,
so this callback only notes the signal there and acts at the next batch boundary, where the state is whole:

- `SIGTERM` (Lightning notes it as `trainer.received_sigterm`): save `<checkpoints>/last.ckpt` and stop with
  `SIGTERMException`; `nlp-train` then prints one line and exits with status 143 (128 + SIGTERM, what a shell
  reports for a process SIGTERM stopped, so schedulers see the run did not finish).
- `SIGINT` (Ctrl-C) the first time: as SIGTERM, but `nlp-train` exits with status 130 (128 + SIGINT) and prints the
  command that resumes; a second Ctrl-C before the save aborts at once (Lightning's KeyboardInterrupt shutdown).
- `USR1`/`USR2`: save `last.ckpt`, then run the handler that was there before: submitit's requeues the job and
  exits; Lightning's SLURM plugin saves its own checkpoint and requeues (SLURM then ends the job); with no handler
  the signal's default action (termination) follows, now with the state saved.

In DDP the ranks first agree on what was received (one all-reduce of two numbers per step: any SIGTERM, and the
requeue signal), so they all save at the same step and hand over to the same handler. A requeued job given
`ckpt_path=auto` (or `last`) resumes from that checkpoint mid-epoch, with the data position, RNG states and logger
runs restored.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class StoppedByUser(SIGTERMException):
    """The run saved `last.ckpt` after a Ctrl-C and stopped (a `SIGTERMException`, so Lightning stops as for one)."""


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
        self.sigterm = False
        self.sigint = False
        self.announce = False  # rank 0 says what a Ctrl-C does
        self.previous: dict[int, Any] = {}
        self.saved_path: Path | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install note-taking handlers for SIGTERM and the requeue signals (the earlier ones are kept to restore).

        Lightning's own SIGTERM handler is replaced while training: it broadcasts from inside the handler and kills
        the other DDP ranks, which hangs or crashes a DDP run at an arbitrary point (measured with trainer=ddp_sim);
        noting the signal and agreeing at the batch boundary does not.
        """
        self.announce = trainer.is_global_zero
        handlers = {signal.SIGTERM: self._note_sigterm, signal.SIGINT: self._note_sigint,
                    **dict.fromkeys(self.signals, self._note)}  # fmt: skip
        for signum, handler in handlers.items():
            try:
                self.previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread: signals cannot be handled here
                return

    def _note(self, signum: int, frame: Any) -> None:
        self.pending = signum

    def _note_sigterm(self, signum: int, frame: Any) -> None:
        self.sigterm = True

    def _note_sigint(self, signum: int, frame: Any) -> None:
        if self.sigint:  # the second Ctrl-C: the user does not want to wait for the save
            raise KeyboardInterrupt
        self.sigint = True
        if self.announce:  # os.write, not print: print inside a handler can collide with a write in progress
            os.write(2, b"\nCtrl-C: saving last.ckpt at the next batch boundary, then stopping (again: abort now)\n")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """At the batch boundary: save and stop (SIGTERM, Ctrl-C) or save and hand over to the requeue handler."""
        self._act(trainer)

    def _act(self, trainer: L.Trainer) -> None:
        sigterm, sigint, signum = self.sigterm or bool(trainer.received_sigterm), self.sigint, self.pending or 0
        if trainer.world_size > 1:  # every rank saves at the same step, or the save's barrier would hang
            noted = torch.tensor([float(sigterm), float(sigint), float(signum)], device=trainer.strategy.root_device)
            noted = trainer.strategy.reduce(noted, reduce_op="max")  # one all-reduce: any SIGTERM/SIGINT, the signal
            sigterm, sigint, signum = bool(noted[0]), bool(noted[1]), int(noted[2])
        if not (sigterm or sigint or signum):
            return
        self._save(trainer, "SIGTERM" if sigterm else "Ctrl-C" if sigint else signal.Signals(signum).name)
        if sigterm:
            raise SIGTERMException
        if sigint:
            raise StoppedByUser
        self.pending = None
        self._hand_over(signum)

    def _hand_over(self, signum: int) -> None:
        """What would have happened without this callback: the earlier handler, or the default action."""
        handler = self.previous.get(signum)
        if callable(handler):  # submitit: requeue and exit; Lightning's SLURM plugin: hpc checkpoint and requeue
            handler(signum, None)
        elif handler == signal.SIG_DFL:  # USR1/USR2 terminate by default: still do, now with the state saved
            self._restore()
            signal.raise_signal(signum)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """SIGTERM noticed by Lightning itself (between epochs, in validation, in DDP): save if not saved yet.

        Only while fitting: a SIGTERM in the validation or test that `nlp-train` runs after `fit` finds the fit's
        last.ckpt already written, and saving there would store the best checkpoint's weights as "last".
        """
        fitting = trainer.state.fn == TrainerFn.FITTING
        if isinstance(exception, SIGTERMException) and self.saved_path is None and fitting:
            self._save(trainer, "SIGTERM")
        self._restore()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Act on a signal noted after the last training batch (in the last validation), then give the signals back.

        Without this, a Ctrl-C during the final validation would be forgotten and the run would go on to test.
        """
        try:
            if self.saved_path is None:
                self._act(trainer)
        finally:
            self._restore()

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            if handler is not None:  # None: a handler installed from C, which Python cannot reinstall
                signal.signal(signum, handler)
        self.previous = {}

    def _save(self, trainer: L.Trainer, reason: str) -> None:
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)
        self.saved_path = path
        if trainer.is_global_zero:
            log.warning("%s at step %d: saved %s; continue with ckpt_path=last (or auto)", reason,
                        trainer.global_step, path)  # fmt: skip
