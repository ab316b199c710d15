"""Optimizer parameter groups and learning-rate schedules, used through Hydra `_partial_` configs."""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_linear_schedule_with_warmup

# Biases and normalisation weights are not decayed (as in BERT and the HF Trainer).
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with `weight_decay`, biases and norm weights without."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]


def linear_warmup_decay(optimizer: Optimizer, num_training_steps: int, warmup_fraction: float = 0.1) -> LambdaLR:
    """Linear warm-up over `warmup_fraction` of the steps, then linear decay to 0 at `num_training_steps`."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup = int(round(warmup_fraction * num_training_steps))
    return get_linear_schedule_with_warmup(optimizer, warmup, num_training_steps)


def warmup_cosine(
    optimizer: Optimizer, num_training_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.1
) -> LambdaLR:
    """Linear warm-up, then cosine decay to `min_lr_ratio` times the peak at `num_training_steps` (nanoGPT's)."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup = int(round(warmup_fraction * num_training_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, num_training_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def clip_gradients(module: L.LightningModule, optimizer: Optimizer, value: float | None, algorithm: str | None) -> None:
    """Clip the gradients of `optimizer` at `value` (`norm` or `value` algorithm), also for fused optimizers in AMP.

    Lightning's mixed-precision plugin refuses to clip for optimizers that unscale inside their step (the fused AdamW
    of every config here), which crashed `bf16-mixed` with any pretrained config. Clipping them is sound: bf16 has no
    grad scaler, and under fp16 `GradScaler.unscale_` before the clip makes the scaler's step skip the fused
    optimizer's own unscaling (torch's `GradScaler.step`, `OptState.UNSCALED`), so gradients are unscaled exactly once.
    """
    plugin = module.trainer.precision_plugin
    if not (value and isinstance(plugin, MixedPrecision) and getattr(optimizer, "_step_supports_amp_scaling", False)):
        module.clip_gradients(optimizer, value, algorithm)
        return
    if plugin.scaler is not None:
        plugin.scaler.unscale_(optimizer)
    # The base class's clipping, without MixedPrecision's refusal.
    Precision.clip_gradients(plugin, optimizer, value, GradClipAlgorithmType(algorithm or "norm"))
