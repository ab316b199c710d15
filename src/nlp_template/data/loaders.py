"""`BatchLoaders`: the data loaders of `TokenizedDataModule` and the training position saved for a mid-epoch resume.

Every split is batched by `LengthAwareBatchSampler` (`data/batching.py`): training in the configured mode, evaluation
sorted by length (no metric depends on the order, and sorting saves padding), both dealt out across DDP ranks. The
training sampler's position goes into every checkpoint (`state_dict`), so a resumed run sees exactly the batches it
had not yet seen.
"""

from __future__ import annotations

import signal
from typing import Any

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from nlp_template.data.batching import LengthAwareBatchSampler
from nlp_template.utils.errors import UserInputError


class BatchLoaders:
    """Loaders and resume state for a data module with `splits`, the batch settings and `collator()`."""

    splits: Any
    trainer: Any
    _resume: dict | None

    def collator(self) -> Any:
        """The function that pads a list of examples into a batch."""
        raise NotImplementedError

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset: Dataset = self.splits[split]
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        # Overfitting a few batches (debug=overfit) means the same batches every epoch: no shuffling, as Lightning
        # does for its own samplers.
        shuffle = train and not getattr(self.trainer, "overfit_batches", 0)
        sampler = LengthAwareBatchSampler(
            dataset.with_format("numpy")["length"],
            mode=self.batching if train else "length_grouped",
            batch_size=self.batch_size if train else self.eval_batch_size,
            max_tokens=self.max_tokens,
            batch_size_multiple=self.batch_size_multiple,
            shuffle=shuffle,
            seed=self.seed,
            num_replicas=world_size,
            rank=rank,
        )
        # Resume position (kept for every train loader Lightning builds in the resumed epoch); Lightning then calls
        # set_epoch each epoch, which keeps the position only in the epoch it was saved in.
        if train and self._resume:
            sampler.load_state_dict(self._resume)
        return DataLoader(
            dataset.remove_columns("length"),
            batch_sampler=sampler,
            collate_fn=self.collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Worker seeds come from this generator, not from torch's global one: creating an iterator then draws
            # nothing from the stream dropout uses, so a resumed run's random numbers match the uninterrupted run's.
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=ignore_ctrl_c if self.num_workers > 0 else None,
        )

    def pad_multiple(self) -> int | None:
        """The configured multiple, or 8 for 16-bit training on a GPU (tensor cores work on multiples of 8)."""
        if self.pad_to_multiple_of is not None or self.trainer is None:
            return self.pad_to_multiple_of
        half = str(self.trainer.precision).startswith(("16", "bf16"))
        return 8 if half and self.trainer.strategy.root_device.type == "cuda" else None

    def train_dataloader(self) -> DataLoader:
        """Training batches from the configured batching mode, each padded to its own longest sequence."""
        self._train_loader = self._loader("train", train=True)
        return self._train_loader

    def val_dataloader(self) -> DataLoader:
        """Validation batches, sorted by length."""
        return self._loader("validation", train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches, sorted by length (fails clearly when the source has no test split)."""
        if "test" not in self.splits:
            raise UserInputError("the data source has no test split; set data.source.test (or run without testing)")
        return self._loader("test", train=False)

    # ------------------------------------------------------------------------------------------------ resumption
    def state_dict(self) -> dict:
        """The training sampler's position, saved in every checkpoint by Lightning (mid-epoch resume)."""
        loader = getattr(self, "_train_loader", None)
        if loader is None or self.trainer is None:
            return {}
        # Batches whose training step ran (checkpoints are saved in on_train_batch_end, before Lightning counts
        # the batch "completed"); the sampler itself has handed out more, as loaders fetch ahead.
        completed = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"batching": loader.batch_sampler.state_dict(consumed=completed)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume the training sampler where the checkpoint left it (applied when the loader is built)."""
        self._resume = state_dict.get("batching")


def ignore_ctrl_c(worker_id: int) -> None:
    """Make a data loader worker ignore Ctrl-C.

    The terminal sends Ctrl-C to the whole process group; a worker that exited on it would leave the main process,
    which saves at the next batch boundary (`PreemptionCheckpoint`), without batches.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
