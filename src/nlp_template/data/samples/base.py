"""`GeneratedSamples`: what the embedded data sets share (sizes, seed, `load`, `fingerprint`).

Each embedded data set (sentiment, pairs, entities, reviews, QA) is a source like `FileSource`: `load()` gives the
three splits, `fingerprint()` what identifies them for the tokenization cache. A generator only says how to make
one split (`generate`): the splits are drawn one after another from one `random.Random(seed)`, so the data is the
same for a given seed and sizes, whatever the training seed.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Dataset, DatasetDict


@dataclass
class GeneratedSamples:
    """Base of the embedded data sets.

    Args:
        num_train: training examples.
        num_validation: validation examples.
        num_test: test examples.
        seed: generator seed (independent of the training seed, so the data stays fixed while you vary training).
    """

    kind: ClassVar[str] = "samples-v1"  # first part of the fingerprint; change it when the generator changes
    num_train: int = 4000
    num_validation: int = 500
    num_test: int = 1000
    seed: int = 1234

    def load(self) -> DatasetDict:
        """Generate the train, validation and test splits, in that order, from one seeded generator."""
        rng = random.Random(self.seed)
        shared = self.begin(rng)
        sizes = {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}
        return DatasetDict({split: self.generate(rng, split, size, shared) for split, size in sizes.items()})

    def begin(self, rng: random.Random) -> Any:
        """What every split draws from (e.g. a vocabulary), made first; None by default."""
        return None

    def generate(self, rng: random.Random, split: str, size: int, shared: Any) -> Dataset:
        """One split of `size` examples."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """What identifies the generated data (for the tokenization cache): kind, sizes, seed, then other settings."""
        base = ("num_train", "num_validation", "num_test", "seed")
        extra = [str(getattr(self, field.name)) for field in dataclasses.fields(self) if field.name not in base]
        values = [str(getattr(self, name)) for name in base] + extra
        return ":".join([self.kind, *values])
