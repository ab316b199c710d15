"""Exact gradients over an optimizer step: every loss term weighs the same, whatever the batching and ranks.

A network's loss is a mean over its batch's loss terms (examples, or labelled tokens). Lightning divides each
micro-batch's mean by `accumulate_grad_batches` and DDP averages the ranks' gradients, so a term in a batch with few
terms weighs more than one in a batch with many: with token-budget batches (their sizes vary) 4 x 8 accumulated
examples do not give the gradient of 1 x 32, and a rank whose batch holds fewer labelled tokens counts as much as one
with more. (The Hugging Face Trainer fixed the same thing with `num_items_in_batch`.)

Here each micro-batch's loss becomes its sum (mean x count), scaled up by what Lightning and DDP divide by, and its
count is added to the step's total; before the optimizer step (after fp16 unscaling, before gradient clipping) the
total is summed across ranks and every gradient is divided by it, which leaves the gradient of the mean over all the
step's terms. Counts are known once a micro-batch is seen, so nothing is read ahead (the HF Trainer prefetches a
step's batches to count them). DeepSpeed accumulates and averages inside its engine, out of reach of this hook: runs
under it keep the mean of means.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.optim import Optimizer

_TERMS = "_exact_step_terms"  # the loss terms of the optimizer step so far, on this rank


def applies(module: L.LightningModule) -> bool:
    """Whether the module is in a fit whose gradients this hook can reach."""
    trainer = module._trainer
    return trainer is not None and trainer.training and "deepspeed" not in type(trainer.strategy).__name__.lower()


def scaled_loss(module: L.LightningModule, loss: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The micro-batch's summed loss times what Lightning (accumulation) and DDP (ranks) divide it by."""
    if not applies(module):
        return loss
    count = count.detach().to(loss.device)
    so_far = getattr(module, _TERMS, None)
    object.__setattr__(module, _TERMS, count if so_far is None else so_far + count)
    trainer = module.trainer
    return loss * count * (trainer.accumulate_grad_batches * trainer.world_size)


def normalize_gradients(module: L.LightningModule, optimizer: Optimizer) -> None:
    """Divide every gradient by the step's loss terms summed over its micro-batches and the ranks."""
    terms = getattr(module, _TERMS, None)
    if terms is None or not applies(module):
        return
    object.__setattr__(module, _TERMS, None)
    total = terms.float()
    if module.trainer.world_size > 1:
        total = module.trainer.strategy.reduce(total, reduce_op="sum")
    gradients = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if gradients:
        torch._foreach_div_(gradients, total.clamp_min(1).item())
