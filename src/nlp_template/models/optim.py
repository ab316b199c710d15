"""Optimizer parameter groups and learning-rate schedules, used through Hydra `_partial_` configs."""

from __future__ import annotations

import torch
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
