"""`MaskedLMDataModule`: text -> packed blocks `[CLS] tokens [SEP]` -> BERT-style masked tokens.

Continued pretraining of an encoder on your own corpus (domain adaptation), as `run_mlm` does: the text of a split
is one token stream (documents separated by `[SEP]` when they are separate rows), cut into blocks of `block_size`
tokens that start with `[CLS]` and end with `[SEP]`, the shape every encoder task feeds the network. Training
blocks are masked afresh in every batch (`MaskingCollator`); validation and test blocks are masked once, with
`data.seed`, when they are tokenized, so their loss and perplexity compare across epochs, batchings and ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.language_modeling import LanguageModelingDataModule
from nlp_template.data.masking import SPECIAL, WORD_CONTINUE, WORD_START, mask_tokens, word_ids
from nlp_template.utils.errors import UserInputError


class MaskedLMDataModule(LanguageModelingDataModule):
    """Masked language modelling data: text files or Hub text data sets, packed into blocks and masked.

    Args:
        source: as `LanguageModelingDataModule` (`.txt` lines, or a text column of JSONL/CSV/Parquet/Hub data).
        text_column: column with the text.
        block_size: tokens per example, `[CLS]` and `[SEP]` included.
        eos_between_documents: put `[SEP]` between rows (separate documents); false joins them as one text.
        mlm_probability: share of tokens (or words) picked for prediction.
        whole_word_mask: pick whole words (all their sub-word tokens together) instead of single tokens.
        mask_replace_prob: share of picked tokens replaced by the mask token.
        random_replace_prob: share of picked tokens replaced by a random token (the rest stay unchanged).
        **kwargs: the tokenizer, batching and split settings of `TokenizedDataModule`; the trained tokenizer is a
            WordPiece one (it has the `[MASK]` token), or `data.tokenizer` names the pretrained encoder's.
    """

    def __init__(
        self, source: Any, text_column: str = "text", block_size: int = 128, eos_between_documents: bool = True,
        mlm_probability: float = 0.15, whole_word_mask: bool = False, mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1, **kwargs: Any,
    ) -> None:  # fmt: skip
        kwargs = {"tokenizer_type": "wordpiece", "lowercase": True, **kwargs}
        super().__init__(source, text_column, block_size, eos_between_documents, **kwargs)
        if not 0 < mlm_probability < 1:
            raise UserInputError(f"data.mlm_probability must be between 0 and 1 (e.g. 0.15), got {mlm_probability}")
        if min(mask_replace_prob, random_replace_prob) < 0 or mask_replace_prob + random_replace_prob > 1:
            raise UserInputError(
                "data.mask_replace_prob and data.random_replace_prob must be >= 0 and sum to at most 1 (e.g. 0.8 and"
                f" 0.1), got {mask_replace_prob} and {random_replace_prob}"
            )
        if self.block_size < 3:
            raise UserInputError(f"data.block_size must be at least 3 ([CLS], a token, [SEP]), got {self.block_size}")
        self.mlm_probability = mlm_probability
        self.whole_word_mask = whole_word_mask
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob

    def make_tokenizer(self, texts: Any, data_key: str) -> PreTrainedTokenizerBase:
        """The configured or trained tokenizer, which must have mask, start and end tokens."""
        return _checked(super().make_tokenizer(texts, data_key))

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The saved tokenizer (checked like the training one)."""
        return _checked(super().load_tokenizer())

    def cache_settings(self) -> list[Any]:
        """The block layout and what decides the fixed validation/test masks."""
        masking = [self.mlm_probability, self.whole_word_mask, self.mask_replace_prob, self.random_replace_prob]
        return [*super().cache_settings(), "cls-sep", *masking, self.seed]

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Token ids and word marks (`data/masking.py`) of each text; for prediction, one `[CLS] text [SEP]` input."""
        texts = [text or "" for text in batch[self.text_column]]
        if split == "predict":
            encoded = self.tokenizer(texts, truncation=True, max_length=self.block_size)
            truncated = [bool(encoding.overflowing) for encoding in encoded.encodings]  # as the other tasks count
            return {"input_ids": encoded["input_ids"], "truncated": truncated}
        ids, marks = marked_ids(self.tokenizer, texts, self._separator(self.tokenizer))
        return {"input_ids": ids, "word_marks": marks}

    def blocks(self, stream: dict[str, np.ndarray], split: str) -> Dataset:
        """`[CLS]` + `block_size - 2` tokens + `[SEP]`; validation/test blocks are masked here, once."""
        ids, marks = stream["input_ids"], stream["word_marks"]
        step = self.block_size - 2
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        rows = {"input_ids": [], "word_marks": []}
        for start in range(0, len(ids), step):
            rows["input_ids"].append([cls, *ids[start : start + step].tolist(), sep])
            rows["word_marks"].append([SPECIAL, *marks[start : start + step].tolist(), SPECIAL])
        rows["length"] = [len(row) for row in rows["input_ids"]]
        if split in ("validation", "test"):
            rows = {**self._fixed_masks(rows["input_ids"], rows["word_marks"]), "length": rows["length"]}
        return Dataset.from_dict(rows)

    def _fixed_masks(self, blocks: list[list[int]], marks: list[list[int]]) -> dict[str, list]:
        """Masked inputs and labels of evaluation blocks, drawn once from `data.seed` in block order."""
        inputs, labels = self.masker().mask(
            _padded(blocks, self.tokenizer.pad_token_id),
            _padded(marks, SPECIAL),
            torch.Generator().manual_seed(self.seed),
        )
        lengths = [len(block) for block in blocks]
        return {"input_ids": [row[:n].tolist() for row, n in zip(inputs, lengths, strict=True)],
                "labels": [row[:n].tolist() for row, n in zip(labels, lengths, strict=True)]}  # fmt: skip

    def model_kwargs(self) -> dict[str, Any]:
        """Vocabulary facts, the start/end token ids (configs such as ModernBERT's name them) and the block size."""
        ids = {"cls_token_id": self.tokenizer.cls_token_id, "sep_token_id": self.tokenizer.sep_token_id}
        return {**TokenizedDataModule.model_kwargs(self), **ids, "block_size": self.block_size}

    def inference_settings(self) -> dict[str, Any]:
        """The longest input: a block, and the mask token a prediction input uses."""
        return {"max_length": self.block_size, "mask_token": self.tokenizer.mask_token}

    def masker(self) -> Masker:
        """The masking settings with this tokenizer."""
        return Masker(self.tokenizer.mask_token_id, len(self.tokenizer), self.mlm_probability, self.whole_word_mask,
                      self.mask_replace_prob, self.random_replace_prob)  # fmt: skip

    def collator(self) -> MaskingCollator:
        """Pads blocks; masks training blocks on the fly."""
        return MaskingCollator(self.tokenizer.pad_token_id, self.masker(), self.pad_multiple())


class Masker:
    """The masking settings of a run, applied to a padded batch of ids and word marks."""

    def __init__(self, mask_token_id: int, vocab_size: int, probability: float, whole_words: bool,
                 mask_replace_prob: float, random_replace_prob: float) -> None:  # fmt: skip
        self.mask_token_id, self.vocab_size, self.probability = mask_token_id, vocab_size, probability
        self.whole_words, self.replace = whole_words, (mask_replace_prob, random_replace_prob)

    def mask(self, ids: torch.Tensor, marks: torch.Tensor, generator: torch.Generator | None = None) -> tuple:
        """(corrupted inputs, labels) of a padded batch."""
        units = word_ids(marks, self.whole_words)
        return mask_tokens(ids, units, self.probability, self.mask_token_id, self.vocab_size, *self.replace,
                           generator=generator)  # fmt: skip


class MaskingCollator:
    """Pads blocks into `input_ids` and `attention_mask`, and masks or passes on the targets.

    Training blocks (with `word_marks`) are masked here, evaluation blocks bring their fixed `labels` (padded with
    -100), prediction inputs get no labels.
    """

    def __init__(self, pad_token_id: int, masker: Masker, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id, self.masker, self.pad_to_multiple_of = pad_token_id, masker, pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """The padded (and masked) batch."""
        length = max(len(example["input_ids"]) for example in examples)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = _padded([example["input_ids"] for example in examples], self.pad_token_id, length)
        batch = {"input_ids": ids, "attention_mask": _padded([[1] * len(e["input_ids"]) for e in examples], 0, length)}
        if "labels" in examples[0]:
            batch["labels"] = _padded([example["labels"] for example in examples], -100, length)
        elif "word_marks" in examples[0]:
            marks = _padded([example["word_marks"] for example in examples], SPECIAL, length)
            batch["input_ids"], batch["labels"] = self.masker.mask(ids, marks)
        return batch


def _padded(rows: list[list[int]], value: int, length: int | None = None) -> torch.Tensor:
    """Rows of ints padded with `value` to `length` (default: the longest row), as one int64 tensor."""
    length = length or max(len(row) for row in rows)
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for index, row in enumerate(rows):
        out[index, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def marked_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str], separator: list[int]) -> tuple[list, list]:
    """Token ids of each text followed by `separator`, and their word marks (the Arrow and streaming paths)."""
    encoded = tokenizer(texts, add_special_tokens=False)
    marks = [_word_marks(encoded.word_ids(row)) + [SPECIAL] * len(separator) for row in range(len(texts))]
    return [ids + separator for ids in encoded["input_ids"]], marks


def _word_marks(words: list[int | None]) -> list[int]:
    """`WORD_START` where a token begins a word (per the tokenizer's pre-tokenization), `WORD_CONTINUE` after."""
    marks, previous = [], None
    for word in words:
        marks.append(SPECIAL if word is None else WORD_START if word != previous else WORD_CONTINUE)
        previous = word
    return marks


def _checked(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Masked-LM blocks need a mask token and start/end tokens ([CLS]/[SEP] or <s>/</s>)."""
    missing = [name for name in ("mask_token", "cls_token", "sep_token") if getattr(tokenizer, name) is None]
    if missing:
        raise UserInputError(
            f"masked language modelling needs a tokenizer with {', '.join(missing)}; this one has none. Train a"
            " WordPiece one (data.tokenizer=null data.tokenizer_type=wordpiece) or use an encoder's (BERT, RoBERTa)"
        )
    return tokenizer
