"""`NonFiniteLoss`: a NaN/inf training loss stops the run with a clear message, or that batch's update is skipped.

Training on a NaN/inf loss only spreads NaN through the weights. `action: stop` (the default) ends the run with one
line naming the step and what to try; `action: skip` is for rare bad batches (an fp16 overflow, one corrupt example):
the batch's gradients are dropped before the optimizer step, so no weight and no optimizer moment changes (with
gradient accumulation the whole accumulated step is skipped), and past `max_skipped` skipped batches the run stops
anyway. In DDP the ranks agree first (one all-reduce of a flag per step), so all of them stop or skip at the same
step: a lone rank doing either would leave the others waiting in the gradient all-reduce.

Lightning cannot skip a step in DDP from `training_step` (returning None is refused there); a hook between the
backward pass every rank takes and the optimizer step can, which is why this is a callback and not model code.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.optim import Optimizer

from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
HINT = ("lower model.optimizer.lr, clip gradients (trainer.gradient_clip_val=1.0), train in 32-bit precision"
        " (trainer.precision=32) or look for a broken batch")  # fmt: skip


class NonFiniteLoss(L.Callback):
    """Stop on, or skip, training batches whose loss is NaN/inf.

    Args:
        action: `stop` (raise a one-line error) or `skip` (drop the batch's gradients).
        max_skipped: with `skip`, the run stops once more than this many batches were skipped.
    """

    def __init__(self, action: str = "stop", max_skipped: int = 10) -> None:
        if action not in ("stop", "skip"):
            raise UserInputError(f"nonfinite_loss.action={action} is not one of stop, skip")
        self.action, self.max_skipped = action, int(max_skipped)
        self.skipped_steps = 0
        self._drop_gradients = False

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        """Check the loss (all ranks together); stop, or mark the step to be skipped."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return
        value = loss.item() if not torch.isfinite(loss.detach()).all() else "NaN/inf on another rank"
        step = trainer.global_step
        if self.action == "stop":
            raise UserInputError(f"training loss is {value} at step {step}: {HINT}; or skip such batches with"
                                 " nonfinite_loss.action=skip")  # fmt: skip
        self.skipped_steps += 1
        if self.skipped_steps > self.max_skipped:
            raise UserInputError(f"training loss was NaN/inf in {self.skipped_steps} batches (last at step {step},"
                                 f" over nonfinite_loss.max_skipped={self.max_skipped}): {HINT}")  # fmt: skip
        log.warning("Training loss is %s at step %d: batch skipped (%d so far)", value, step, self.skipped_steps)
        pl_module.log("train/skipped_steps", float(self.skipped_steps), reduce_fx="max")
        self._drop_gradients = True

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        """Drop the gradients of a skipped batch: the optimizer leaves parameters without one alone.

        Under fp16 mixed precision the gradient scaler skips a step whose gradients hold NaN/inf by itself; it
        must see them (with none at all its `update()` fails when the optimizer is fused), so they stay.
        """
        if self._drop_gradients:
            if getattr(trainer.strategy.precision_plugin, "scaler", None) is None:
                for group in optimizer.param_groups:
                    for parameter in group["params"]:
                        parameter.grad = None
            self._drop_gradients = False

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: a resumed run keeps counting towards `max_skipped` where it left off."""
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Restore the count of skipped batches."""
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    def summary(self) -> dict[str, int]:
        """For metrics.json: how many updates were left out."""
        return {"skipped_steps": self.skipped_steps}
