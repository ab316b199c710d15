"""`RandomStateInCheckpoint`: a resumed run continues the random streams where the checkpoint left them.

Lightning restores weights, optimizer, scheduler, loops and the data module's state, but not the random number
generators, so after a resume dropout draws other masks than the uninterrupted run would have, and results drift
apart. This callback saves the Python, NumPy and torch (CPU and CUDA) generator states in every checkpoint and restores
them when the resumed training starts (its first epoch or, resumed mid-epoch, its first batch), after the sanity
check, which the uninterrupted run did at its own start. The data loaders draw their worker seeds from their own
generator (`data/base.py`), so nothing else moves the global streams in between: on CPU a resumed run continues
bit for bit, from end-of-epoch and mid-epoch checkpoints alike (tests/test_resume.py).
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

KEY = "nlp_template_random_state"


class RandomStateInCheckpoint(L.Callback):
    """Save the generator states with each checkpoint; restore them at the start of resumed training."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Store this process's generator states."""
        checkpoint[KEY] = {
            "python": random.getstate(),
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Keep the saved states until the first training epoch starts (the sanity check runs in between)."""
        self._pending = checkpoint.get(KEY)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Restore the saved states, once (resumed at an epoch boundary)."""
        self._restore()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, index: int) -> None:
        """Restore the saved states, once (resumed mid-epoch: Lightning skips `on_train_epoch_start` then)."""
        self._restore()

    def _restore(self) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        random.setstate(state["python"])
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state() -> tuple:
    """NumPy's state as plain Python values: Lightning loads checkpoints with `weights_only=True` (no arrays)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return name, keys.tolist(), int(position), int(has_gauss), float(cached)
