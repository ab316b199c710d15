"""Exact gradients over an optimizer step: accumulation, uneven micro-batches and ranks give one gradient."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.task("language_modeling")  # the driver's model is a causal LM (token-weighted loss)


@pytest.fixture
def one_step():
    """tests/drivers/one_step.py, imported when a test runs (a stripped project without causal LMs deselects them)."""
    sys.path.insert(0, str(Path(__file__).parent / "drivers"))
    try:
        import one_step

        return one_step
    finally:
        sys.path.pop(0)


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest weight difference."""
    return max((a[name] - b[name]).abs().max().item() for name in a)


def test_accumulated_uneven_micro_batches_give_the_gradient_of_one_batch(one_step):
    whole = one_step.step([[32]])
    # Token-budget-like micro-batches: different numbers of sequences and of labelled tokens each.
    assert close(one_step.step([[4, 12, 6, 10]]), whole) < 1e-6
    assert close(one_step.step([[20, 12]]), whole) < 1e-6


def test_the_mean_of_micro_batch_means_would_differ(one_step):
    """What the exact step replaces: the same micro-batches, each loss a mean, averaged over the step."""
    start = one_step.model()
    reference = one_step.step([[32]])
    network = start.network
    sizes = [4, 12, 6, 10]
    for batch in one_step.micro_batches([sizes], 0):
        (network(**batch).loss / len(sizes)).backward()
    with torch.no_grad():
        naive = {name: value - value.grad if value.grad is not None else value
                 for name, value in network.named_parameters()}  # fmt: skip
    weights = {name: naive.get(name, value) for name, value in network.state_dict().items()}
    assert close(weights, reference) > 1e-4  # the unequal weighting is visible at this tolerance


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun")
def test_two_ranks_with_uneven_batches_give_the_gradient_of_one_batch(tmp_path, one_step):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    plan = [[4, 6], [12, 10]]  # rank 0: 10 sequences in 2 micro-batches; rank 1: 22 in 2
    command = [TORCHRUN, "--nproc-per-node", "2", str(Path(one_step.__file__)), json.dumps(plan), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert close(torch.load(out, weights_only=True), one_step.step([[32]])) < 1e-6
