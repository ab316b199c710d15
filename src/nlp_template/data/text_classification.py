"""`TextClassificationDataModule`: raw splits -> labels -> tokenizer -> cached token ids -> padded batches.

One data module serves every classification data set; what differs between data sets (where the text comes from,
the column names, the label set) is configuration in `conf/data/`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from datasets import ClassLabel, Dataset, DatasetDict, Value
from filelock import FileLock
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from nlp_template.data.batching import LengthAwareBatchSampler
from nlp_template.data.cache import cache_key, cached_splits
from nlp_template.data.tokenizer import cached_wordpiece, load_pretrained_tokenizer, tokenizer_fingerprint
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)


class TextClassificationDataModule(L.LightningDataModule):
    """Sentence (or sentence-pair) classification data.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (see `data/sources.py`).
        text_column: column with the text.
        text_pair_column: optional second text column for sentence-pair tasks.
        label_column: column with the labels (strings or integers).
        labels: the label set in id order; None takes the sorted labels of the training split.
        tokenizer: Hub id or local directory of a pretrained tokenizer; None trains a WordPiece tokenizer on the
            training split (`vocab_size`, `lowercase`).
        vocab_size: vocabulary size of a trained tokenizer.
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
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str = "label",
        labels: list[str] | None = None,
        tokenizer: str | None = None,
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
        self.source = source
        self.text_columns = [text_column] + ([text_pair_column] if text_pair_column else [])
        self.label_column = label_column
        self.labels = [str(label) for label in labels] if labels else None
        self.tokenizer_name = tokenizer
        self.vocab_size = vocab_size
        self.lowercase = lowercase
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size or 64
        self.batching = batching
        self.max_tokens = max_tokens
        self.batch_size_multiple = batch_size_multiple
        self._resume: dict | None = None
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

    # ----------------------------------------------------------------------------------------------------- preparation
    def prepare_data(self) -> None:
        """Load, label, tokenize and cache the splits (a cache look-up when another run did it before)."""
        if self.splits is None:  # Lightning calls this again in fit/validate/test; once per object is enough
            # One process prepares, the others wait and then load its cache entry: DDP ranks started together by
            # torchrun or SLURM, or two runs sharing a cache, never tokenize the same data twice at once.
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            with FileLock(str(Path(self.cache_dir) / ".prepare.lock")):
                self._build()

    def setup(self, stage: str | None = None) -> None:
        """Attach the cached splits, tokenizer and label set to this object.

        Ranks that Lightning keeps out of `prepare_data` get them here, through the same lock and cache.
        """
        self.prepare_data()

    def _build(self) -> None:
        raw, data_key = self._load_raw()
        for split, data in raw.items():
            self._check_columns(split, data)
        raw, class_names = _class_label_names(raw, self.label_column)
        labels = self.labels or class_names or _sorted_labels(raw["train"][self.label_column])
        _check_labels(raw, self.label_column, labels)
        if self.tokenizer_name:
            tokenizer = load_pretrained_tokenizer(self.tokenizer_name)
        else:
            texts = (text for column in self.text_columns for text in raw["train"][column])
            tokenizer_key = cache_key(data_key, self.text_columns)
            tokenizer = cached_wordpiece(texts, tokenizer_key, self.vocab_size, self.lowercase, self.cache_dir)
        key = cache_key(
            "text-classification-v2", data_key, self.text_columns, self.label_column, labels,
            tokenizer_fingerprint(tokenizer), self.max_length,
        )  # fmt: skip
        self.splits, meta = cached_splits(self.cache_dir, key, lambda: self._tokenize(raw, tokenizer, labels))
        self.tokenizer, self.labels, self.stats = tokenizer, meta["labels"], meta["stats"]
        for split, stat in self.stats.items():
            if stat["truncated"]:
                log.warning(
                    "%s: %d of %d examples were truncated to max_length=%d tokens",
                    split, stat["truncated"], stat["examples"], self.max_length,
                )  # fmt: skip
        self._save_tokenizer()

    def _load_raw(self) -> tuple[DatasetDict, str]:
        """The source's splits with a validation split carved from train if needed, and a key that identifies them."""
        raw = self.source.load()
        if "train" not in raw:
            raise UserInputError(f"the data source has no train split (it has {list(raw)}); configure one")
        carve = None
        if "validation" not in raw:
            carve = (self.validation_fraction, self.seed)
            carved = raw["train"].train_test_split(test_size=self.validation_fraction, seed=self.seed)
            raw = DatasetDict({**raw, "train": carved["train"], "validation": carved["test"]})
        subset = None
        if self.max_train_examples and self.max_train_examples < raw["train"].num_rows:
            subset = (self.max_train_examples, self.seed)
            train = raw["train"].shuffle(seed=self.seed).select(range(self.max_train_examples))
            raw = DatasetDict({**raw, "train": train})
        return raw, cache_key(self.source.fingerprint(), carve, subset)

    def _check_columns(self, split: str, data: Dataset) -> None:
        for role, column in [("text", c) for c in self.text_columns] + [("label", self.label_column)]:
            if column not in data.column_names:
                raise UserInputError(
                    f"{split} split has no {role} column '{column}'; its columns are {data.column_names}."
                    f" Set data.{'label_column' if role == 'label' else 'text_column'}=<one of them>"
                )

    def _tokenize(self, raw: DatasetDict, tokenizer: PreTrainedTokenizerBase, labels: list[str]) -> tuple:
        label_ids = {label: index for index, label in enumerate(labels)}

        def encode(batch: dict) -> dict:
            encoded = tokenizer(
                *[[text or "" for text in batch[column]] for column in self.text_columns],
                truncation=True,
                max_length=self.max_length,
            )
            encoded["labels"] = [label_ids[str(label)] for label in batch[self.label_column]]
            encoded["truncated"] = [bool(encoding.overflowing) for encoding in encoded.encodings]
            encoded["length"] = [len(ids) for ids in encoded["input_ids"]]  # for the length-aware batch samplers
            return dict(encoded)

        # Each split drops its own columns: a test file may have fewer or extra columns (e.g. an id) than train.
        encoded = DatasetDict(
            {
                split: data.map(encode, batched=True, remove_columns=data.column_names, desc=f"Tokenizing {split}")
                for split, data in raw.items()
            }
        )
        stats = {
            split: {"examples": data.num_rows, "truncated": int(sum(data["truncated"]))}
            for split, data in encoded.items()
        }
        return encoded.remove_columns("truncated"), {"labels": labels, "stats": stats}

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
        """What the model must know about the data: label set, vocabulary size, pad id, tokenizer location."""
        assert self.tokenizer is not None, "call prepare_data()/setup() first"
        return {
            "id2label": dict(enumerate(self.labels)),
            "vocab_size": len(self.tokenizer),
            "pad_token_id": self.tokenizer.pad_token_id,
            "tokenizer_path": self.tokenizer_path,
        }

    # ------------------------------------------------------------------------------------------------------ loaders
    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.splits[split]
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = LengthAwareBatchSampler(
            dataset.with_format("numpy")["length"],
            mode=self.batching if train else "length_grouped",
            batch_size=self.batch_size if train else self.eval_batch_size,
            max_tokens=self.max_tokens,
            batch_size_multiple=self.batch_size_multiple,
            shuffle=train,
            seed=self.seed,
            num_replicas=world_size,
            rank=rank,
        )
        if train and self._resume:  # kept for every train loader of the resumed epoch (Lightning builds several)
            sampler.load_state_dict(self._resume)
        collator = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=self._pad_multiple())
        return DataLoader(
            dataset.remove_columns("length"),
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
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


def _class_label_names(raw: DatasetDict, column: str) -> tuple[DatasetDict, list[str] | None]:
    """Hub data sets store labels as `ClassLabel` ids; turn them into their names (and keep the names' order)."""
    feature = raw["train"].features.get(column)
    if not isinstance(feature, ClassLabel):
        return raw, None

    # GLUE-style unlabelled splits use -1; leave it out of the mapping so the label check reports it.
    def to_names(batch: dict) -> dict:
        return {column: [feature.int2str(value) if value >= 0 else str(value) for value in batch[column]]}

    raw = DatasetDict({split: data.cast_column(column, Value("int64")) for split, data in raw.items()})
    return raw.map(to_names, batched=True, desc="Label names"), list(feature.names)


def _sorted_labels(values: list) -> list[str]:
    """Distinct labels in a stable order: numeric order for integers, alphabetical for strings."""
    distinct = set(values)
    if None in distinct:
        raise UserInputError("the training split has empty labels; every example needs a label")
    ordered = sorted(distinct) if all(isinstance(v, (int, float)) for v in distinct) else sorted(map(str, distinct))
    return [str(label) for label in ordered]


def _check_labels(raw: DatasetDict, column: str, labels: list[str]) -> None:
    known = set(labels)
    for split, data in raw.items():
        unknown = sorted({str(value) for value in data[column]} - known)
        if unknown:
            raise UserInputError(
                f"{split} split has labels not in the label set: {unknown[:10]} (label set: {labels}). Fix the data,"
                " or list every label in data.labels=[...]"
            )
