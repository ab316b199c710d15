"""`ExactMean`, the loss metric of every task: weights count, NaN propagates, empty batches weigh nothing."""

from __future__ import annotations

import math

import torch

from nlp_template.metrics.mean import ExactMean


def test_weighted_mean_over_batches():
    metric = ExactMean()
    metric.update(torch.tensor(0.5), 2)
    metric.update(torch.tensor(1.0), torch.tensor(6))
    assert metric.compute().item() == 0.875  # (0.5 x 2 + 1.0 x 6) / 8, not the mean of the batch means (0.75)


def test_a_nan_loss_makes_the_mean_nan_but_an_empty_batch_adds_nothing():
    metric = ExactMean()
    metric.update(torch.tensor(0.5), 2)
    metric.update(torch.tensor(float("nan")), 0)  # no labelled token: a 0/0 loss that weighs nothing
    assert metric.compute().item() == 0.5
    metric.update(torch.tensor(float("nan")), 3)  # a diverged model: its loss must not be averaged away
    assert math.isnan(metric.compute().item())
