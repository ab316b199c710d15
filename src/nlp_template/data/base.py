"""`TokenizedDataModule`: what every task's data module shares.

raw splits (a source) -> validation carve and subset -> tokenizer (pretrained, or trained and cached) -> tokenized
splits cached on disk -> length-aware batches padded to their own longest sequence. A task's data module (sentence
classification, token classification, language modelling) only says how its examples become token ids and labels
(`_build`) and how a batch is padded (`collator`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from datasets import Dataset, DatasetDict
from filelock import FileLock
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from nlp_template.data.batching import MODES, LengthAwareBatchSampler
from nlp_template.data.cache import cache_key
from nlp_template.data.tokenizer import cached_trained_tokenizer, load_pretrained_tokenizer
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)


class TokenizedDataModule(L.LightningDataModule):
    """Base class of the data modules; subclasses implement `_build()` and `collator()`.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (see `data/sources.py`).
        tokenizer: Hub id or local directory of a pretrained tokenizer; None trains one on the training split.
        tokenizer_type: the kind of tokenizer to train: `wordpiece`, `bpe` (byte-level) or `char`.
        vocab_size: vocabulary size of a trained `wordpiece`/`bpe` tokenizer.
        lowercase: whether a trained tokenizer lowercases.
        max_length: longer inputs are truncated (the number truncated is logged).
        batch_size: training batch size (examples); with `token_budget`, an upper bound (None: none).
        eval_batch_size: validation/test batch size (None: same as `batch_size`, or 64 with `token_budget`).
        batching: `random`, `length_grouped` or `token_budget` (see `data/batching.py`); evaluation batches are
            always sorted by length, which changes no metric and saves padding.
        max_tokens: tokens per training batch, padding included (`token_budget`).
        batch_size_multiple: `token_budget` batch sizes are multiples of this where the budget allows.
        num_workers: data loader worker processes.
        pad_to_multiple_of: pad batches to a multiple of this; None: 8 when training in 16/bf16 precision on a
            GPU (tensor cores), else no rounding.
        validation_fraction: share of train carved off as validation when the source has no validation split.
        max_train_examples: train on a random subset of this size (after the validation carve); None: all.
        seed: seed of the carve and the subset.
        cache_dir: where tokenizers and tokenized splits are cached.
        output_dir: the run directory; the tokenizer is saved to `<output_dir>/tokenizer` so checkpoints are
            self-contained.
    """

    def __init__(
        self,
        source: Any,
        tokenizer: str | None = None,
        tokenizer_type: str = "wordpiece",
        vocab_size: int = 8000,
        lowercase: bool = True,
        max_length: int = 128,
        batch_size: int | None = 32,
        eval_batch_size: int | None = None,
        batching: str = "random",
        max_tokens: int | None = None,
        batch_size_multiple: int = 1,
        num_workers: int = 0,
        pad_to_multiple_of: int | None = None,
        validation_fraction: float = 0.1,
        max_train_examples: int | None = None,
        seed: int = 0,
        cache_dir: str = ".cache",
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        _check_batching(batching, batch_size, eval_batch_size, max_length, max_tokens, batch_size_multiple)
        self.source = source
        self.tokenizer_name = tokenizer
        self.tokenizer_type = tokenizer_type
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size or 64
        self.batching = batching
        self.max_tokens = max_tokens
        self.batch_size_multiple = batch_size_multiple
        self.num_workers = num_workers
        self.pad_to_multiple_of = pad_to_multiple_of
        self.validation_fraction = validation_fraction
        self.max_train_examples = max_train_examples
        self.seed = seed
        self.cache_dir = cache_dir
        self.output_dir = output_dir
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.tokenizer_path: str | None = None
        self.splits: DatasetDict | None = None
        self.stats: dict = {}
        self._resume: dict | None = None

    # ----------------------------------------------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Load, label, tokenize and cache the splits (a cache look-up when another run did it before)."""
        if self.splits is None:  # Lightning calls this again in fit/validate/test; once per object is enough
            # One process prepares, the others wait and then load its cache entry: DDP ranks started together by
            # torchrun or SLURM, or two runs sharing a cache, never tokenize the same data twice at once.
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            with FileLock(str(Path(self.cache_dir) / ".prepare.lock")):
                self._build()
                self._check_token_budget()
                self._save_tokenizer()

    def setup(self, stage: str | None = None) -> None:
        """Attach the cached splits, tokenizer and label set to this object.

        Ranks that Lightning keeps out of `prepare_data` get them here, through the same lock and cache.
        """
        self.prepare_data()

    def _build(self) -> None:
        """Set `self.splits` (tokenized, with a `length` column), `self.tokenizer` and `self.stats`."""
        raise NotImplementedError

    def _load_raw(self, carve: bool = True) -> tuple[DatasetDict, str]:
        """The source's splits (validation carved from train if needed), and a key that identifies them."""
        raw = self.source.load()
        if "train" not in raw:
            raise UserInputError(f"the data source has no train split (it has {list(raw)}); configure one")
        raw = self._check_raw(raw)  # before the carve: row numbers in messages are the source's
        carved = None
        if carve and "validation" not in raw:
            if not 0 < self.validation_fraction < 1:
                raise UserInputError(
                    f"data.validation_fraction must be between 0 and 1 to carve a validation split from train, got"
                    f" {self.validation_fraction}; e.g. data.validation_fraction=0.1 (or set data.source.validation)"
                )
            carved = (self.validation_fraction, self.seed)
            parts = raw["train"].train_test_split(test_size=self.validation_fraction, seed=self.seed)
            raw = DatasetDict({**raw, "train": parts["train"], "validation": parts["test"]})
        subset = None
        if self.max_train_examples and self.max_train_examples < raw["train"].num_rows:
            subset = (self.max_train_examples, self.seed)
            train = raw["train"].shuffle(seed=self.seed).select(range(self.max_train_examples))
            raw = DatasetDict({**raw, "train": train})
        return raw, cache_key(self.source.fingerprint(), carved, subset)

    def _check_raw(self, raw: DatasetDict) -> DatasetDict:
        """Check the source's splits before the carve (subclasses: columns, labels, texts); returns those to use."""
        return raw

    def _check_token_budget(self) -> None:
        """With `batching=token_budget`, every training example must fit `max_tokens` on its own."""
        if self.batching != "token_budget" or not self.splits["train"].num_rows:
            return
        longest = int(np.max(np.asarray(self.splits["train"].with_format("numpy")["length"])))
        if longest > self.max_tokens:
            limit = "data.block_size" if hasattr(self, "block_size") else "data.max_length"
            raise UserInputError(
                f"data.max_tokens={self.max_tokens} is smaller than the longest training example ({longest} tokens),"
                f" which would not fit any batch; set data.max_tokens={longest} or more (or lower {limit})"
            )

    @staticmethod
    def _check_columns(raw: DatasetDict, roles: dict[str, str]) -> None:
        """Fail clearly when a split lacks a configured column; `roles` maps a config key to its column name."""
        for split, data in raw.items():
            for key, column in roles.items():
                if column not in data.column_names:
                    raise UserInputError(
                        f"{split} split has no column '{column}' (data.{key}); its columns are {data.column_names}."
                        f" Set data.{key}=<one of them>"
                    )

    def _make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured pretrained tokenizer, or one trained on `texts` (cached by the data and settings)."""
        if self.tokenizer_name:
            return load_pretrained_tokenizer(self.tokenizer_name)
        return cached_trained_tokenizer(
            self.tokenizer_type, texts, data_key, self.vocab_size, self.lowercase, self.cache_dir
        )

    @staticmethod
    def encode_splits(raw: DatasetDict, encode: Callable[..., dict]) -> tuple[DatasetDict, dict]:
        """Run `encode(batch, split=...)` over every split; returns the encoded splits and per-split statistics.

        `encode` returns the model inputs plus `length` (tokens per example) and `truncated` (a flag per example,
        counted here and dropped). Each split drops its own columns: a test file may have fewer or extra columns
        (e.g. an id) than train.
        """
        encoded = DatasetDict(
            {
                split: data.map(
                    encode,
                    batched=True,
                    remove_columns=data.column_names,
                    desc=f"Tokenizing {split}",
                    fn_kwargs={"split": split},
                )  # fmt: skip
                for split, data in raw.items()
            }
        )
        stats = {
            split: {"examples": data.num_rows, "truncated": int(sum(data["truncated"]))}
            for split, data in encoded.items()
        }
        return encoded.remove_columns("truncated"), stats

    def _log_truncation(self) -> None:
        for split, stat in self.stats.items():
            if stat.get("truncated"):
                log.warning(
                    "%s: %d of %d examples were truncated to max_length=%d tokens",
                    split, stat["truncated"], stat["examples"], self.max_length,
                )  # fmt: skip

    def _save_tokenizer(self) -> None:
        """Keep a copy of the tokenizer in the run directory; without one, point at where it was loaded from."""
        if not self.output_dir:
            self.tokenizer_path = self.tokenizer.name_or_path
            return
        path = Path(self.output_dir) / "tokenizer"
        if not path.is_dir():
            self.tokenizer.save_pretrained(str(path))
        self.tokenizer_path = str(path.resolve())

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data: vocabulary size, pad id, tokenizer location (and more)."""
        assert self.tokenizer is not None, "call prepare_data()/setup() first"
        facts = {
            "vocab_size": len(self.tokenizer),
            "pad_token_id": self.tokenizer.pad_token_id,
            "tokenizer_path": self.tokenizer_path,
        }
        if getattr(self, "labels", None):  # classification and tagging: the label set, in id order
            facts["id2label"] = dict(enumerate(self.labels))
        return facts

    # ------------------------------------------------------------------------------------------------------ loaders
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
        )

    def _pad_multiple(self) -> int | None:
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


def _check_batching(
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


def sorted_labels(values: list) -> list[str]:
    """Distinct labels in a stable order: numeric order for integers, alphabetical for strings."""
    distinct = set(values)
    if None in distinct:
        raise UserInputError("the training split has empty labels; every example needs a label")
    ordered = sorted(distinct) if all(isinstance(v, (int, float)) for v in distinct) else sorted(map(str, distinct))
    return [str(label) for label in ordered]


def check_labels(split: str, values: set[str], labels: list[str]) -> None:
    """Fail clearly when a split holds labels outside the label set."""
    unknown = sorted(values - set(labels))
    if unknown:
        raise UserInputError(
            f"{split} split has labels not in the label set: {unknown[:10]} (label set: {labels}). Fix the data,"
            " or list every label in data.labels=[...]"
        )
