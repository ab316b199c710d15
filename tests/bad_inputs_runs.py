"""Bad-input catalogue table: runs whose settings once crashed them at the end (`handled`: they must finish).

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

from catalogue import SAMPLE, Case

FILES: dict = {}

# fmt: off
CASES = [
    # EarlyStopping checked at the end of a training epoch that had no validation: a RuntimeError at the end of fit.
    Case("config-max-steps-mid-epoch", "train", [*SAMPLE, "+trainer.max_steps=5"],
         r"max_steps=5. reached", handled=True),
    Case("config-no-validation", "train", [*SAMPLE, "trainer.max_epochs=1", "+trainer.limit_val_batches=0"],
         r"No validation \(trainer.limit_val_batches=0\): early stopping and best-checkpoint selection are off",
         handled=True),
]
# fmt: on
