"""`LanguageModelingDataModule`: text -> one token stream per split -> blocks of `block_size` tokens.

Packing happens over the whole split, not per `datasets.map` batch: the Hugging Face examples' `group_texts` drops
the tail of every batch of 1,000 documents (up to a block each); here only the split's last partial block is short,
and it is kept (padded, its padding masked out of the loss). Without a validation split, validation is the last
`validation_fraction` of the training token stream, contiguous (as nanoGPT splits Shakespeare), so no block of
validation text overlaps a training block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.utils.errors import UserInputError


class LanguageModelingDataModule(TokenizedDataModule):
    """Causal language modelling data: text files or Hub text data sets, packed into blocks.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str`; `.txt` files (`FileSource`) give
            one row per line with its line break kept, so the concatenated rows are the file itself.
        text_column: column with the text.
        block_size: tokens per training example (the model's context length; at most its position embeddings).
        eos_between_documents: put the tokenizer's end-of-text token between rows (for data sets whose rows are
            separate documents; off for line-split text files, whose lines already end in a line break).
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`);
            `tokenizer_type` `char` or `bpe` trains a tokenizer; `max_length` is not used (see `block_size`).
    """

    def __init__(
        self, source: Any, text_column: str = "text", block_size: int = 128, eos_between_documents: bool = False,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(source, **{"tokenizer_type": "bpe", "lowercase": False, **kwargs})
        if block_size < 2:
            raise UserInputError(f"data.block_size must be at least 2 (an input and a next token), got {block_size}")
        self.text_column = text_column
        self.block_size = block_size
        self.eos_between_documents = eos_between_documents

    carve_validation = False  # validation is the end of the training stream (see `tokenize`), not random rows

    def columns(self) -> dict[str, str]:
        """The text column."""
        return {"text_column": self.text_column}

    def check_split(self, split: str, data: Dataset) -> None:
        """The training text must hold more than whitespace."""
        if split == "train" and not any(text and text.strip() for text in data[self.text_column]):
            raise UserInputError("the training text is empty (or only whitespace): give data.source.train some text")

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """The training text."""
        return iter(train[self.text_column])

    def make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured or trained tokenizer, padding with end-of-text where it has no pad token."""
        return pad_with_eos(super().make_tokenizer(texts, data_key))

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The saved tokenizer, with the same pad token as in training."""
        return pad_with_eos(super().load_tokenizer())

    def inference_settings(self) -> dict[str, Any]:
        """The context length: a block."""
        return {"max_length": self.block_size}

    def cache_settings(self) -> list[Any]:
        """Block size, document separators and the contiguous validation cut."""
        return [self.block_size, self.eos_between_documents, self.validation_fraction]

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Token ids of each text (no special tokens), with the document separator where configured.

        Prediction prompts (`split="predict"`) get no separator: it would end the document the model should continue.
        """
        separator = self._separator(self.tokenizer) if split != "predict" else []
        return {"input_ids": document_ids(self.tokenizer, batch[self.text_column], separator)}

    def tokenize(self, raw: DatasetDict) -> tuple[DatasetDict, dict]:
        """One token stream per split (every column `encode` writes, token-aligned), cut into blocks."""
        streams = {}
        for split, data in raw.items():
            encoded = data.map(self.encode, batched=True, remove_columns=data.column_names,
                               desc=f"Tokenizing {split}", fn_kwargs={"split": split})  # fmt: skip
            streams[split] = {column: _concatenate(encoded[column]) for column in encoded.column_names}
        if "validation" not in streams:
            cut = int(round(len(streams["train"]["input_ids"]) * (1 - self.validation_fraction)))
            train = streams["train"]
            streams["validation"] = {column: stream[cut:] for column, stream in train.items()}
            streams["train"] = {column: stream[:cut] for column, stream in train.items()}
        for split, stream in streams.items():
            if len(stream["input_ids"]) < 2:
                raise UserInputError(
                    f"the {split} split has {len(stream['input_ids'])} token(s); it needs at least 2. Give it more"
                    " text (or lower data.validation_fraction)"
                )
        splits = DatasetDict({split: self.blocks(stream, split) for split, stream in streams.items()})
        stats = {split: {"tokens": len(stream["input_ids"]), "blocks": splits[split].num_rows}
                 for split, stream in streams.items()}  # fmt: skip
        return splits, stats

    def _separator(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        if not self.eos_between_documents:
            return []
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if eos is None:
            raise UserInputError("data.eos_between_documents=true needs a tokenizer with an eos (or sep) token")
        return [eos]

    def blocks(self, stream: dict[str, np.ndarray], split: str) -> Dataset:
        """Consecutive blocks of `block_size` tokens; the last one may be shorter (kept if it has 2 tokens)."""
        ids = stream["input_ids"]
        blocks = [ids[start : start + self.block_size] for start in range(0, len(ids), self.block_size)]
        if len(blocks[-1]) < 2:  # a single token has no next token to predict
            blocks.pop()
        return Dataset.from_dict({"input_ids": blocks, "length": [len(block) for block in blocks]})

    def generation_prompts(self, prompts: list[str] | None, count: int, prompt_tokens: int) -> list[list[int]]:
        """Prompts for generated samples (`callbacks/generation.py`), as token ids.

        The given strings, else the first `prompt_tokens` tokens of the first `count` validation blocks.
        """
        if prompts:
            return [self.tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
        blocks = self.splits["validation"]["input_ids"][:count]
        return [list(block[:prompt_tokens]) for block in blocks]

    def model_kwargs(self) -> dict[str, Any]:
        """The base module's vocabulary facts plus the end-of-text id and the block size (checked by the model)."""
        return {**super().model_kwargs(), "eos_token_id": self.tokenizer.eos_token_id, "block_size": self.block_size}

    def collator(self) -> LanguageModelingCollator:
        """Pad blocks and copy the ids into `labels` with padding masked out (-100)."""
        return LanguageModelingCollator(self.tokenizer, self.pad_multiple())


def pad_with_eos(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """GPT-2 style tokenizers have no pad token: pad with end-of-text (padding is masked out of the loss anyway)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def document_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str | None], separator: list[int]) -> list[list[int]]:
    """Token ids of each text (no special tokens), each followed by `separator` (the Arrow and streaming paths)."""
    ids = tokenizer([text or "" for text in texts], add_special_tokens=False)["input_ids"]
    return [row + separator for row in ids]


def _concatenate(rows: list[list[int]]) -> np.ndarray:
    """The rows one after the other, as one int64 array."""
    lengths = [len(row) for row in rows]
    return np.fromiter((token for row in rows for token in row), dtype=np.int64, count=sum(lengths))


class LanguageModelingCollator:
    """Pads a list of blocks; `labels` are the input ids where the attention mask is 1, else -100.

    Masking by the attention mask rather than by the pad id keeps real end-of-text tokens in the loss when a
    tokenizer pads with its end-of-text token (GPT-2's).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """The padded batch with `input_ids`, `attention_mask` and `labels`."""
        batch = self.tokenizer.pad(
            [{"input_ids": example["input_ids"]} for example in examples],
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return dict(batch)
