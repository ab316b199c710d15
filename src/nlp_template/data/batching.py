"""Batch samplers that know sequence lengths: random, length-grouped and token-budget batches, DDP-aware.

Padding is the largest waste in NLP training: random batches of short and long sentences are mostly pad tokens.
`LengthAwareBatchSampler` builds the whole epoch's batches from the examples' lengths, the seed and the epoch, the
same way on every rank, then deals them out across ranks:

- `random`: shuffle, then cut into batches of `batch_size` (the usual DataLoader behaviour);
- `length_grouped`: shuffle, cut into mega-batches of `mega_batch_factor * batch_size`, sort each by length and cut
  it into batches (the Hugging Face Trainer's `group_by_length`), so a batch holds examples of similar length;
- `token_budget`: as length-grouped, but a batch holds as many examples as fit `max_tokens` *including padding*
  (fairseq's `max_tokens`), optionally a multiple of `batch_size_multiple`.

Under DDP every rank gets the same number of batches (otherwise the rank with more would wait forever in the last
all-reduce) and every example is seen exactly once per epoch across ranks: when the batch count does not divide by
the world size, the largest batches are split in two until it does. Batch order is deterministic per seed and epoch,
and the sampler's position can be saved and restored, so a run resumed mid-epoch sees exactly the batches it had
not yet seen. Lightning must not wrap it in its own distributed sampler: the trainer configs set
`use_distributed_sampler: false`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from nlp_template.utils.errors import UserInputError

MODES = ("random", "length_grouped", "token_budget")


class LengthAwareBatchSampler(Sampler[list[int]]):
    """Yields lists of example indices for this rank; see the module docstring for the modes.

    Args:
        lengths: token count of every example (after truncation).
        mode: `random`, `length_grouped` or `token_budget`.
        batch_size: examples per batch (`random`, `length_grouped`); upper bound of `token_budget` batches if set.
        max_tokens: `token_budget` only: most tokens in a batch, counting padding (`longest * count`).
        batch_size_multiple: `token_budget` only: batch sizes are multiples of this where the budget allows.
        mega_batch_factor: mega-batch size in batches for the length-sorted modes.
        shuffle: shuffle (training); without it the batches follow the data order, or length order when sorted.
        seed: base seed; the epoch is mixed in, so each epoch has its own order.
        num_replicas: world size (1 without DDP).
        rank: this process's global rank.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        mode: str = "random",
        batch_size: int | None = 32,
        max_tokens: int | None = None,
        batch_size_multiple: int = 1,
        mega_batch_factor: int = 50,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown batching mode '{mode}'; use one of {list(MODES)}")
        if mode == "token_budget" and not max_tokens:
            raise ValueError("batching=token_budget needs max_tokens (tokens per batch, padding included)")
        if mode != "token_budget" and not batch_size:
            raise ValueError(f"batching={mode} needs a batch_size")
        if len(lengths) < num_replicas:
            raise UserInputError(f"{len(lengths)} example(s) cannot be shared among {num_replicas} processes (each DDP"
                                 " rank needs a batch): give the split more examples or use fewer devices")  # fmt: skip
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.mode = mode
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.batch_size_multiple = max(1, batch_size_multiple)
        self.mega_batch_factor = mega_batch_factor
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._skip = 0  # batches of `self.epoch` already consumed before a resume
        self._cache: tuple[int, list[list[int]]] | None = None

    # --------------------------------------------------------------------------------------------------- planning
    @property
    def sampler(self) -> LengthAwareBatchSampler:
        """Itself: Lightning calls `set_epoch` on `loader.sampler` and `loader.batch_sampler.sampler`, not on this."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch; a new epoch forgets a pending resume position."""
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        """All ranks' batches of the current epoch, in order (rank r takes every `num_replicas`-th from r)."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._plan())
        return self._cache[1]

    def _plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        if self.mode == "random":
            batches = _chunks(order, self.batch_size)
        else:
            # Sort within mega-batches (all of them at once without shuffling: eval in length order, least padding).
            group = self.mega_batch_factor * (self.batch_size or 64) if self.shuffle else len(order)
            batches = []
            for start in range(0, len(order), group):
                members = order[start : start + group]
                members = members[np.argsort(-self.lengths[members], kind="stable")]
                batches += self._pack(members) if self.mode == "token_budget" else _chunks(members, self.batch_size)
            if self.shuffle:
                # Shuffle whole batches, but start with the largest so an out-of-memory error shows up at once.
                batches = [batches[i] for i in rng.permutation(len(batches))]
                largest = max(range(len(batches)), key=lambda i: self._tokens(batches[i]))
                batches.insert(0, batches.pop(largest))
        return _split_until_divisible(batches, self.num_replicas)

    def _pack(self, members: np.ndarray) -> list[list[int]]:
        """Greedy packing of length-sorted examples under the token budget (padding counted)."""
        batches, current, longest = [], [], 0
        for index in members.tolist():
            longest_if_added = max(longest, int(self.lengths[index]))
            too_many = self.batch_size is not None and len(current) >= self.batch_size
            if current and (longest_if_added * (len(current) + 1) > self.max_tokens or too_many):
                keep = len(current) - len(current) % self.batch_size_multiple or len(current)
                batches.append(current[:keep])
                current = current[keep:]
                longest = int(self.lengths[current].max()) if current else 0
            current.append(index)
            longest = max(longest, int(self.lengths[index]))
        if current:
            batches.append(current)
        return batches

    def _tokens(self, batch: list[int]) -> int:
        return int(self.lengths[batch].max()) * len(batch)

    # -------------------------------------------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[list[int]]:
        mine = self.global_batches()[self.rank :: self.num_replicas]
        start, self._skip = self._skip, 0
        self._consumed = start
        for batch in mine[start:]:
            self._consumed += 1
            yield batch

    def __len__(self) -> int:
        return len(self.global_batches()) // self.num_replicas

    # ------------------------------------------------------------------------------------------------ resumption
    def state_dict(self, consumed: int | None = None) -> dict:
        """The position to resume from: the epoch and how many of this rank's batches were used.

        `consumed` overrides the count of batches handed out (the trainer knows how many it actually trained on;
        data loaders fetch ahead).
        """
        used = getattr(self, "_consumed", 0) if consumed is None else consumed
        return {"epoch": self.epoch, "consumed": used, "seed": self.seed, "mode": self.mode}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration of `state['epoch']` skips the batches already consumed."""
        self.epoch = int(state["epoch"])
        self._skip = int(state["consumed"])


def _chunks(indices: np.ndarray, size: int) -> list[list[int]]:
    return [indices[i : i + size].tolist() for i in range(0, len(indices), size)]


def _split_until_divisible(batches: list[list[int]], parts: int) -> list[list[int]]:
    """Split the largest batches in two until every rank can get the same number of batches."""
    while len(batches) % parts:
        largest = max(range(len(batches)), key=lambda i: len(batches[i]))
        batch = batches[largest]
        if len(batch) < 2:
            raise UserInputError(f"cannot share {len(batches)} single-example batches equally among {parts} processes"
                                 " (every DDP rank must take as many batches as the others): use a batch size of 2"
                                 " or more (data.batch_size, data.eval_batch_size) or fewer devices")  # fmt: skip
        half = len(batch) // 2
        batches[largest : largest + 1] = [batch[:half], batch[half:]]
    return batches


def check_batching(
    batching: str, batch_size: Any, eval_batch_size: Any, max_length: Any, max_tokens: Any, batch_size_multiple: Any
) -> None:
    """Fail clearly on batch settings that cannot work (before any data is read)."""
    if batching not in MODES:
        raise UserInputError(f"unknown data.batching '{batching}'; use one of {list(MODES)}")
    sizes = {"batch_size": batch_size, "eval_batch_size": eval_batch_size, "max_length": max_length,
             "max_tokens": max_tokens, "batch_size_multiple": batch_size_multiple}  # fmt: skip
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise UserInputError(f"data.{name} must be a positive integer, got {value!r}")
    if batching == "token_budget" and max_tokens is None:
        raise UserInputError(
            "data.batching=token_budget needs data.max_tokens (tokens per batch, padding included), e.g."
            " data.max_tokens=4096"
        )
    if batching != "token_budget" and batch_size is None:
        raise UserInputError(f"data.batching={batching} needs data.batch_size (or use data.batching=token_budget)")
