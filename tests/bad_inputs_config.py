"""Bad-input catalogue table: config values refused by the pre-flight checks (`utils/checks.py`) in one line that
names the key, the value and a fix, before any data is read or anything built.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import pytest
import torch
from catalogue import SAMPLE, Case

FILES: dict = {}  # the cases use the earlier run and the main table's inputs.txt

# The refusals of a missing accelerator can only be seen where it is missing.
NO_CUDA = (pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU"),)
NO_MPS = (pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's Metal (MPS)"),)
POSITIONS = r"^data.max_length=1000 is larger than the model's 512 position embeddings: an input longer than 512" \
            r" tokens would crash it; set data.max_length=512 or less$"  # fmt: skip
PREDICT = ["ckpt_path={ckpt}", "input={tmp}/inputs.txt", "output={tmp}/new.jsonl"]

# fmt: off
CASES = [
    # ---- the machine
    Case("config-gpu-without-a-gpu", "train", [*SAMPLE, "trainer=gpu"],
         r"^trainer.accelerator=gpu, but this machine has no CUDA GPU \(torch.cuda.is_available\(\) is false\); train"
         r" on the CPU with trainer=cpu \(or trainer.accelerator=cpu\)", marks=NO_CUDA),
    Case("config-ddp-without-a-gpu", "train", [*SAMPLE, "trainer=ddp"],
         r"^trainer.accelerator=gpu, but this machine has no CUDA GPU", marks=NO_CUDA),
    Case("config-mps-without-mps", "train", [*SAMPLE, "trainer=mps"],
         r"^trainer.accelerator=mps, but Apple's Metal \(MPS\) is not available here; train on the CPU with"
         r" trainer=cpu",
         marks=NO_MPS),
    Case("config-eval-on-a-gpu-without-one", "eval", ["ckpt_path={ckpt}", "trainer=gpu"],
         r"^trainer.accelerator=gpu, but this machine has no CUDA GPU", marks=NO_CUDA),
    # ---- the training length
    Case("config-max-epochs-infinite-without-max-steps", "train", [*SAMPLE, "trainer.max_epochs=-1"],
         r"^trainer.max_epochs=-1 trains until trainer.max_steps, which is not set, and the learning-rate schedule"
         r" \(model.scheduler\) needs a length; set \+trainer.max_steps=1000 \(or trainer.max_epochs=10\)$"),
    Case("config-nonfinite-action-unknown", "train", [*SAMPLE, "nonfinite_loss.action=maybe"],
         r"^nonfinite_loss.action=maybe is not one of stop, skip$"),
    Case("config-max-epochs-below-minus-one", "train", [*SAMPLE, "trainer.max_epochs=-2"],
         r"^trainer.max_epochs must be a positive whole number \(or -1: until trainer.max_steps\), got -2;"
         r" e.g. trainer.max_epochs=10$"),
    Case("config-max-epochs-not-a-number", "train", [*SAMPLE, "trainer.max_epochs=abc"],
         r"^trainer.max_epochs must be a whole number, got 'abc'; e.g. trainer.max_epochs=10$"),
    Case("config-max-epochs-fraction", "train", [*SAMPLE, "trainer.max_epochs=2.5"],
         r"^trainer.max_epochs must be a whole number, got 2.5; e.g. trainer.max_epochs=10$"),
    # ---- types of other settings, checked against the signatures of what they build
    Case("config-seed-not-a-number", "train", [*SAMPLE, "seed=abc"],
         r"^seed must be a whole number from 0 to 4294967295 \(or null\), got 'abc'; e.g. seed=42$"),
    Case("config-seed-negative", "train", [*SAMPLE, "seed=-1"],
         r"^seed must be a whole number from 0 to 4294967295 \(or null\), got -1; e.g. seed=42$"),
    Case("config-lr-not-a-number", "train", [*SAMPLE, "model.optimizer.lr=fast"],
         r"^model.optimizer.lr must be a number, got 'fast'; e.g. model.optimizer.lr=0.001$"),
    Case("config-callback-setting-not-a-number", "train", [*SAMPLE, "callbacks.early_stopping.patience=abc"],
         r"^callbacks.early_stopping.patience must be a whole number, got 'abc'; e.g."
         r" callbacks.early_stopping.patience=3$"),
    Case("config-flag-not-true-or-false", "train", [*SAMPLE, "model.pretrained=maybe"],
         r"^model.pretrained must be true/false, got 'maybe'; e.g. model.pretrained=true$"),
    Case("config-unknown-precision", "train", [*SAMPLE, "trainer.precision=bf17"],
         r"^trainer.precision must be one of \[.*'bf16-mixed'.*\], got 'bf17'; e.g. trainer.precision=bf16$"),
    # ---- input length against the model's position embeddings: training, and a checkpoint's model
    Case("config-max-length-over-positions", "train", [*SAMPLE, "data.max_length=1000"], POSITIONS),
    Case("config-eval-max-length-over-positions", "eval", ["ckpt_path={ckpt}", "+data.max_length=1000"], POSITIONS),
    Case("config-predict-max-length-over-positions", "predict", [*PREDICT, "+data.max_length=1000"], POSITIONS),
]
# fmt: on
