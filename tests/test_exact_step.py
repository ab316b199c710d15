"""Exact gradients over an optimizer step: accumulation, uneven micro-batches and ranks give one gradient."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
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


def test_model_config_clipping_applies_and_the_trainer_setting_wins(tmp_path):
    """`model.gradient_clip_val` clips when the Trainer sets none; `trainer.gradient_clip_val` (0: off) overrides it."""
    import lightning as L

    from nlp_template.models.text_classifier import TextClassifier

    def largest_step(model_clip: float | None, trainer_clip: float | None) -> float:
        torch.manual_seed(0)
        model = TextClassifier(config={"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "intermediate_size": 32},
                               id2label={0: "a", 1: "b"}, vocab_size=50, pad_token_id=0,
                               optimizer=partial(torch.optim.SGD, lr=1.0), gradient_clip_val=model_clip)  # fmt: skip
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        batch = {"input_ids": torch.randint(1, 50, (8, 6)), "attention_mask": torch.ones(8, 6, dtype=torch.long),
                 "labels": torch.randint(0, 2, (8,))}  # fmt: skip
        trainer = L.Trainer(max_steps=1, gradient_clip_val=trainer_clip, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            default_root_dir=tmp_path)  # fmt: skip
        trainer.fit(model, torch.utils.data.DataLoader([batch], batch_size=None))
        steps = [(p.detach() - before[name]).flatten() for name, p in model.named_parameters()]
        return float(torch.cat(steps).norm())  # SGD, lr 1: the step is the (clipped) gradient

    unclipped = largest_step(None, None)
    assert unclipped > 0.1  # the gradient norm of this batch, larger than the clips below
    assert largest_step(0.05, None) == pytest.approx(0.05, rel=1e-4)  # the model config's clip
    assert largest_step(0.05, 0.02) == pytest.approx(0.02, rel=1e-4)  # the Trainer's wins
    assert largest_step(0.05, 0) == pytest.approx(unclipped, rel=1e-6)  # trainer.gradient_clip_val=0: off


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed with a grad scaler"])
def test_clipping_works_with_fused_optimizers_under_mixed_precision(tmp_path, precision):
    """Lightning refuses to clip fused optimizers under AMP; the template clips them, unscaling fp16 gradients once.

    Fused SGD with lr 1: the step is the clipped gradient. Under fp16 the loss is scaled by 1024: a step of 1024 x
    the clip would mean the fused step did not unscale, a tiny one that it unscaled twice.
    """
    import lightning as L
    from lightning.pytorch.plugins.precision import MixedPrecision

    from nlp_template.models.text_classifier import TextClassifier

    torch.manual_seed(0)
    model = TextClassifier(config={"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 32},
                           id2label={0: "a", 1: "b"}, vocab_size=50, pad_token_id=0,
                           optimizer=partial(torch.optim.SGD, lr=1.0, fused=True), gradient_clip_val=0.05)  # fmt: skip
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    batch = {"input_ids": torch.randint(1, 50, (8, 6)), "attention_mask": torch.ones(8, 6, dtype=torch.long),
             "labels": torch.randint(0, 2, (8,))}  # fmt: skip
    amp = (
        {"precision": "bf16-mixed"}
        if precision == "bf16-mixed"
        else {"plugins": [MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu", init_scale=1024.0))]}
    )
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, **amp)  # fmt: skip
    trainer.fit(model, torch.utils.data.DataLoader([batch], batch_size=None))
    steps = [(p.detach() - before[name]).flatten() for name, p in model.named_parameters()]
    assert float(torch.cat(steps).norm()) == pytest.approx(0.05, rel=1e-3)
