"""`TokenizedDataModule`: what every task's data module shares, as a template method with hooks.

raw splits (a source) -> checks -> validation carve and subset -> label set -> tokenizer (pretrained, or trained and
cached) -> tokenized splits cached on disk -> length-aware batches padded to their own longest sequence.
`prepare_data` runs these steps; a task's data module only fills in the hooks below and never calls private
methods of this class:

- `columns()`: config key -> column name, checked in every split (a missing one is a one-line error);
- `check_split(split, data)`: labels, texts, ... of one raw split, before the carve (row numbers are the source's);
- `clean_split(split, data)`: a checked split -> the split to use (e.g. rows with missing labels left out);
- `carve_strata(train)`: one label per training row to stratify the validation carve by, or None (at random);
- `prepare_labels(raw)`: decide the label set (`self.labels`) and return the splits to encode;
- `tokenizer_texts(train)`: the texts a tokenizer is trained on when none is configured;
- `encode(batch, split)`: a batch of raw rows -> model inputs, `labels`, `length` and a `truncated` flag per
  feature. Prediction encodes its inputs with this same function (`split="predict"`, no label column);
- `collator()`, `model_kwargs()` (the facts the model needs), `cache_settings()` (what else decides the token ids);
- prediction: `prediction_columns()` (what an input file must hold) and `prediction_examples(records)` (raw
  prediction records -> rows `encode` understands, e.g. words with character offsets for tagging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from datasets import Dataset, DatasetDict
from filelock import FileLock
from transformers import PreTrainedTokenizerBase

from nlp_template.data import splits as raw_splits
from nlp_template.data.batching import check_batching
from nlp_template.data.cache import cache_key, cached_splits
from nlp_template.data.loaders import BatchLoaders
from nlp_template.data.sources import load_source
from nlp_template.data.tokenizer import cached_trained_tokenizer, load_pretrained_tokenizer, tokenizer_fingerprint
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)


class TokenizedDataModule(BatchLoaders, L.LightningDataModule):
    """Base class of the data modules; subclasses fill in the hooks listed in the module docstring.

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
        validation_fraction: share of train carved off as validation when the source has no validation split
            (stratified by label for single-label classification; see `data/splits.py`).
        max_train_examples: train on a random subset of this size (after the validation carve); None: all.
        drop_missing_labels: leave out examples whose label is missing (see `data/labels.py`) instead of failing;
            tasks without labels ignore it.
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
        drop_missing_labels: bool = False,
        seed: int = 0,
        cache_dir: str = ".cache",
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_batching(batching, batch_size, eval_batch_size, max_length, max_tokens, batch_size_multiple)
        raw_splits.check_max_train_examples(max_train_examples)
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
        self.drop_missing_labels = drop_missing_labels
        self.seed = seed
        self.cache_dir = cache_dir
        self.output_dir = output_dir
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.tokenizer_path: str | None = None
        self.splits: DatasetDict | None = None
        self.stats: dict = {}
        self._resume: dict | None = None
        self.labels: list[str] | None = None
        self.reshaped: dict[str, Any] = {"carve": None, "subset": None}  # what `load_splits` did (see gap_hint)

    # ----------------------------------------------------------------------------------------------------- preparation
    # Where a task's data module differs from the others; see the module docstring.
    carve_validation: ClassVar[bool] = True  # carve a validation split from train when the source has none
    cache_version: ClassVar[str] = "v1"  # bump when `encode` changes what it writes, so old cache entries go unused

    def columns(self) -> dict[str, str]:
        """Config key (`data.<key>`) -> column name, for every column each split must have."""
        return {}

    def check_split(self, split: str, data: Dataset) -> None:
        """Check one raw split (labels, texts, ...) before the validation carve; raise `UserInputError`."""

    def clean_split(self, split: str, data: Dataset) -> Dataset:
        """The split to use, once every split passed `check_split` (row numbers change here, so checks come first)."""
        return data

    def carve_strata(self, train: Dataset) -> list | None:
        """One label per training row to stratify the validation carve by; None carves at random."""
        return None

    def prepare_labels(self, raw: DatasetDict) -> DatasetDict:
        """Decide the label set (set `self.labels`), checking every split against it; returns the splits to encode."""
        return raw

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """The texts a tokenizer is trained on when `data.tokenizer` is not set."""
        raise NotImplementedError(f"{type(self).__name__} must implement tokenizer_texts(train)")

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Raw rows (columns of lists) -> model inputs, `labels`, `length` and `truncated`, one entry per feature.

        `split` is `train`, `validation`, `test`, or `predict` (inputs without labels, from `nlp-predict`).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement encode(batch, split)")

    def tokenize(self, raw: DatasetDict) -> tuple[DatasetDict, dict]:
        """All splits -> (encoded splits with a `length` column, per-split statistics); `encode` per batch."""
        return self.encode_splits(raw, self.encode)

    def cache_settings(self) -> list[Any]:
        """Settings of this data module that decide the token ids, besides the data, tokenizer and labels."""
        return []

    def prediction_columns(self) -> list[str]:
        """Columns a prediction input must have (a plain-text input file fills the first one, one line each).

        All of `columns()` by default; a task with label columns returns only its inputs.
        """
        return list(self.columns().values())

    def string_columns(self) -> list[str]:
        """Columns whose values are texts: read as written from CSV/TSV, refused when JSON/Parquet holds another type.

        The prediction inputs by default; a task whose inputs include a non-text column (a number, a list) overrides
        this, and so does one whose `prediction_columns` is left at its default (every column, labels included).
        """
        return self.prediction_columns()

    def prediction_examples(self, records: list[dict]) -> list[dict]:
        """Prediction records (the columns of `prediction_columns`, plus `line`) -> rows for `encode`."""
        return records

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
        """The template: raw splits -> labels -> tokenizer -> encoded splits (cached) -> `splits`, `stats`."""
        raw, data_key = self.load_splits()
        raw = self.prepare_labels(raw)
        self.tokenizer = self.make_tokenizer(self.tokenizer_texts(raw["train"]), cache_key(data_key, self.columns()))
        key = cache_key(
            type(self).__qualname__, self.cache_version, data_key, self.columns(), self.labels,
            tokenizer_fingerprint(self.tokenizer), self.max_length, self.cache_settings(),
        )  # fmt: skip
        self.splits, meta = cached_splits(self.cache_dir, key, lambda: self._tokenize_with_stats(raw))
        self.stats = meta["stats"]
        self.log_truncation()

    def _tokenize_with_stats(self, raw: DatasetDict) -> tuple[DatasetDict, dict]:
        splits, stats = self.tokenize(raw)
        return splits, {"stats": stats}

    def load_splits(self) -> tuple[DatasetDict, str]:
        """The source's splits, checked, validation carved from train if needed, the training subset taken.

        Returns the splits and a key that identifies them. Checks: `columns()` in every split, then `check_split`;
        then `clean_split`, and the carve (`data/splits.py`), stratified by `carve_strata`.
        """
        # File sources read the input columns as texts (as written in CSV/TSV, strings in JSON/Parquet), exactly as
        # nlp-predict reads its inputs (docs/data.md).
        raw = load_source(self.source, self.string_columns())
        if "train" not in raw:
            raise UserInputError(f"the data source has no train split (it has {list(raw)}); configure one")
        raw_splits.check_columns(raw, self.columns())
        for split, data in raw.items():  # before the carve: row numbers in messages are the source's
            self.check_split(split, data)
        raw = DatasetDict({split: self.clean_split(split, data) for split, data in raw.items()})
        carved = None
        if self.carve_validation and "validation" not in raw:
            raw_splits.check_fraction(self.validation_fraction)
            strata = self.carve_strata(raw["train"])
            train, validation = raw_splits.carve_validation(raw["train"], self.validation_fraction, self.seed, strata)
            raw = DatasetDict({**raw, "train": train, "validation": validation})
            self.reshaped["carve"] = (self.validation_fraction, strata is not None)
            # The stratified carve picks other rows than the random one did: a key of its own.
            carved = (self.validation_fraction, self.seed) + (("stratified",) if strata is not None else ())
        subset = None
        if self.max_train_examples and self.max_train_examples < raw["train"].num_rows:
            subset = (self.max_train_examples, self.seed)
            train = raw_splits.take_subset(raw["train"], self.max_train_examples, self.seed)
            raw = DatasetDict({**raw, "train": train})
            self.reshaped["subset"] = self.max_train_examples
        return raw, cache_key(self.source.fingerprint(), carved, subset)

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

    def make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured pretrained tokenizer, or one trained on `texts` (cached by the data and settings)."""
        if self.tokenizer_name:
            return load_pretrained_tokenizer(self.tokenizer_name)
        return cached_trained_tokenizer(
            self.tokenizer_type, texts, data_key, self.vocab_size, self.lowercase, self.cache_dir
        )

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The configured tokenizer without preparing any data (prediction: the run's saved tokenizer)."""
        if self.tokenizer is None:
            if not self.tokenizer_name:
                raise UserInputError("no tokenizer to load: set data.tokenizer to the run's tokenizer directory")
            self.tokenizer = load_pretrained_tokenizer(self.tokenizer_name)
        return self.tokenizer

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

    def log_truncation(self) -> None:
        """Warn how many examples of each split were cut to `max_length`."""
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

    # ------------------------------------------------------------------------------------------------------ prediction
    def encode_records(self, records: list[dict]) -> tuple[list[dict], list[dict]]:
        """Prediction records -> (examples, features): the rows `encode` saw, and its output per feature.

        The same `encode` as training, so a text is tokenized, truncated and windowed exactly as in training.
        """
        self.load_tokenizer()
        examples = self.prediction_examples(records)
        columns = {key for example in examples for key in example}
        encoded = self.encode({key: [example.get(key) for example in examples] for key in columns}, split="predict")
        features = [dict(zip(encoded, values, strict=True)) for values in zip(*encoded.values(), strict=True)]
        return examples, features

    def held_out_features(self, size: int) -> list[dict]:
        """The first `size` encoded examples of the test split (validation where there is none): export checks."""
        dataset = self.splits["test" if "test" in self.splits else "validation"]
        return [dict(row) for row in dataset.select(range(min(size, len(dataset))))]

    def collate_inputs(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """The model inputs of encoded features as one padded batch (as in training, without labels)."""
        names = set(self.tokenizer.model_input_names)
        inputs = [{key: value for key, value in feature.items() if key in names} for feature in features]
        batch = self.collator()(inputs)
        return {key: value for key, value in batch.items() if key in names}

    def inference_settings(self) -> dict[str, Any]:
        """What an exported model needs to be fed like the trained one (written to `export_info.json`)."""
        return {"max_length": self.max_length}

    def model_kwargs(self) -> dict[str, Any]:
        """What the model must know about the data: vocabulary size, pad id, tokenizer location (and more)."""
        assert self.tokenizer is not None, "call prepare_data()/setup() first"
        facts = {
            "vocab_size": len(self.tokenizer),
            "pad_token_id": self.tokenizer.pad_token_id,
            "tokenizer_path": self.tokenizer_path,
        }
        if self.labels:  # classification and tagging: the label set, in id order
            facts["id2label"] = dict(enumerate(self.labels))
        return facts
