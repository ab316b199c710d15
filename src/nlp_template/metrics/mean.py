"""`ExactMean`: a count-weighted mean whose sums are all-reduced before the division, NaN included.

torchmetrics' `MeanMetric` would do, but it drops NaN values with a warning by default (a diverged model would report
a finite loss computed on the batches that happened to be finite), and with `nan_strategy="disable"` it ignores the
weights altogether (torchmetrics 1.9). This metric keeps both: a NaN loss makes the split's loss NaN.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ExactMean(Metric):
    """sum(value x weight) / sum(weight) over every update of every rank, in float64 sums."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: torch.Tensor | float) -> None:
        """Add a batch's mean `value` over its `weight` terms (a batch of weight 0 adds nothing, even a 0/0 NaN)."""
        weight = torch.as_tensor(weight, dtype=self.total.dtype, device=self.total.device)
        # torch.where, not an `if`: no device-to-host sync per batch on a GPU.
        self.total += torch.where(weight > 0, value.detach().to(self.total.dtype) * weight, 0.0)
        self.weight += weight

    def compute(self) -> torch.Tensor:
        """The mean (NaN when nothing was added)."""
        return self.total / self.weight
