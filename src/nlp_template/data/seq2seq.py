"""`Seq2SeqDataModule`: source text -> target text (translation, summarization) for encoder-decoder models.

Rows hold a source and a target column (`source`/`target`, or any names), or the Hugging Face `translation` layout
(`{"translation": {"en": ..., "de": ...}}`, with `translation_column`, `source_lang`, `target_lang`); aligned
parallel text files (`train.en` + `train.de`) come through `data/parallel.py`. An optional `source_prefix` is put
before every source (T5's "translate English to German: ").

Targets become `labels`; the collator pads them with -100, so padding never enters the loss, and the model shifts
them into its decoder inputs itself. Both sides end in the end-of-sequence token (a pretrained tokenizer adds it; a
trained one is built to add it, so the saved tokenizer encodes as training did). Length-aware batching and the
token budget count source and target tokens together. Without `data.tokenizer` a byte-level BPE tokenizer is
trained on both sides of the training split.

A row whose source or target is missing (null, NaN, an empty or blank string; "NA" is a text here) is an error
naming its rows, or left out with `drop_missing_labels`, as missing labels are in the other tasks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

from datasets import Dataset
from tokenizers import processors
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.utils.errors import UserInputError, listing

log = logging.getLogger(__name__)
IGNORE = -100  # label of padding: the loss skips it


class Seq2SeqDataModule(TokenizedDataModule):
    """Sequence-to-sequence data: pairs of source and target texts.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (`FileSource`, `ParallelFiles`,
            `HubSource`, `TranslationSamples`).
        source_column: column of the source text.
        target_column: column of the target text.
        translation_column: a column of `{language: text}` dicts (the Hub `translation` layout); when set, the
            source and target are its `source_lang` and `target_lang` entries.
        source_lang: language code of the source in `translation_column` (e.g. `en`).
        target_lang: language code of the target in `translation_column` (e.g. `de`).
        source_prefix: text put before every source (T5-style task prefix), e.g. `"translate English to German: "`.
        max_target_length: longer targets are truncated (counted and logged with the sources).
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`);
            `max_length` bounds the source.
    """

    def __init__(
        self, source: Any, source_column: str = "source", target_column: str = "target",
        translation_column: str | None = None, source_lang: str | None = None, target_lang: str | None = None,
        source_prefix: str = "", max_target_length: int = 128, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(source, **{"tokenizer_type": "bpe", "lowercase": False, **kwargs})
        if translation_column and not (source_lang and target_lang):
            raise UserInputError(f"data.translation_column={translation_column} needs data.source_lang and"
                                 " data.target_lang (e.g. en and de)")  # fmt: skip
        if max_target_length < 2:
            raise UserInputError(f"data.max_target_length must be at least 2 (a token and the end), got"
                                 f" {max_target_length}")  # fmt: skip
        self.source_column, self.target_column = source_column, target_column
        self.translation_column, self.source_lang, self.target_lang = translation_column, source_lang, target_lang
        self.source_prefix = source_prefix or ""
        self.max_target_length = max_target_length

    def columns(self) -> dict[str, str]:
        """The source and target columns (or the translation column)."""
        if self.translation_column:
            return {"translation_column": self.translation_column}
        return {"source_column": self.source_column, "target_column": self.target_column}

    def prediction_columns(self) -> list[str]:
        """Prediction inputs are sources."""
        return [self.source_column]

    def string_columns(self) -> list[str]:
        """Sources and targets are texts (checked where present: the translation layout's files have neither)."""
        return [self.source_column, self.target_column]

    def clean_split(self, split: str, data: Dataset) -> Dataset:
        """Flatten the translation layout; refuse (or drop, with `drop_missing_labels`) rows missing a side."""
        if self.translation_column:
            data = self._flatten(split, data)
        pairs = zip(data[self.source_column], data[self.target_column], strict=True)
        missing = [row for row, (source, target) in enumerate(pairs) if _blank(source) or _blank(target)]
        if not missing:
            return data
        if not self.drop_missing_labels:
            raise UserInputError(f"{split} split has {len(missing)} row(s) with a missing source or target at row(s)"
                                 f" {listing([row + 1 for row in missing])} (1 = first row); fill them in or leave"
                                 " them out with data.drop_missing_labels=true")  # fmt: skip
        log.info("%s: left out %d row(s) with a missing source or target (data.drop_missing_labels=true)", split,
                 len(missing))  # fmt: skip
        if len(missing) == data.num_rows:
            raise UserInputError(f"{split} split has no row with both a source and a target")
        keep = sorted(set(range(data.num_rows)) - set(missing))
        return data.select(keep)

    def _flatten(self, split: str, data: Dataset) -> Dataset:
        """`{translation: {en: a, de: b}}` rows -> `source_column: a`, `target_column: b`."""
        sources, targets = [], []
        for row, pair in enumerate(data[self.translation_column]):
            if not isinstance(pair, dict):
                raise UserInputError(f"{split} row {row + 1}: data.translation_column={self.translation_column} holds"
                                     f" {type(pair).__name__}, not a {{language: text}} mapping")  # fmt: skip
            for language in (self.source_lang, self.target_lang):
                if language not in pair:
                    raise UserInputError(f"{split} row {row + 1}: the translation has no '{language}' (it has"
                                         f" {sorted(pair)}); set data.source_lang and data.target_lang")  # fmt: skip
            sources.append(pair[self.source_lang])
            targets.append(pair[self.target_lang])
        return Dataset.from_dict({self.source_column: sources, self.target_column: targets})

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """Both sides of the training pairs (one shared vocabulary)."""
        for source, target in zip(train[self.source_column], train[self.target_column], strict=True):
            yield self.source_prefix + source
            yield target

    def make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured tokenizer, or one trained on both sides that ends every encoding with end-of-sequence.

        Written into the trained tokenizer (not appended by this module), so the run's saved tokenizer, and the HF
        export's, feed the model exactly as training did: `model.generate(**tokenizer(text, return_tensors="pt"))`.
        """
        # The prefix is part of the texts the tokenizer learns from, so part of its cache key.
        tokenizer = super().make_tokenizer(texts, f"{data_key}|prefix={self.source_prefix!r}")
        if not self.tokenizer_name and not _ends_with_eos(tokenizer):
            eos = tokenizer.eos_token
            tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
                single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1", special_tokens=[(eos, tokenizer.eos_token_id)]
            )
        return tokenizer

    def cache_settings(self) -> list[Any]:
        """The prefix and the target length decide the token ids too."""
        return [self.source_prefix, self.max_target_length, self.translation_column, self.source_lang,
                self.target_lang]  # fmt: skip

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Source ids (with the prefix) and, with targets, `labels`; both end in end-of-sequence."""
        sources = [self.source_prefix + (text or "") for text in batch[self.source_column]]
        encoded, truncated = self._ids(sources, self.max_length)
        result: dict[str, list] = {"input_ids": encoded, "attention_mask": [[1] * len(ids) for ids in encoded]}
        lengths = [len(ids) for ids in encoded]
        if split != "predict" and batch.get(self.target_column) is not None:
            labels, cut = self._ids([text or "" for text in batch[self.target_column]], self.max_target_length)
            result["labels"] = labels
            truncated = [a or b for a, b in zip(truncated, cut, strict=True)]
            lengths = [length + len(ids) for length, ids in zip(lengths, labels, strict=True)]
        result["truncated"] = truncated
        result["length"] = lengths  # source + target tokens: what a batch of this example costs
        return result

    def _ids(self, texts: list[str], limit: int) -> tuple[list[list[int]], list[bool]]:
        """Token ids ending in end-of-sequence, at most `limit` of them, and whether each text was cut."""
        append = not self._adds_eos()
        encoded = self.tokenizer(texts, truncation=True, max_length=limit - append, add_special_tokens=True)
        ids = [list(row) + [self.tokenizer.eos_token_id] * append for row in encoded["input_ids"]]
        return ids, [bool(encoding.overflowing) for encoding in encoded.encodings]

    def _adds_eos(self) -> bool:
        """Whether the tokenizer ends its encodings with end-of-sequence (T5, BART and trained ones do)."""
        return _ends_with_eos(self.tokenizer)

    def collator(self) -> DataCollatorForSeq2Seq:
        """Pad sources with the pad token and labels with -100 (the model builds its decoder inputs from them)."""
        return DataCollatorForSeq2Seq(self.tokenizer, label_pad_token_id=IGNORE, pad_to_multiple_of=self.pad_multiple())

    def log_truncation(self) -> None:
        """Warn how many pairs of each split were cut (source to `max_length` or target to `max_target_length`)."""
        for split, stat in self.stats.items():
            if stat.get("truncated"):
                log.warning("%s: %d of %d pairs were truncated (source to max_length=%d or target to"
                            " max_target_length=%d tokens)", split, stat["truncated"], stat["examples"],
                            self.max_length, self.max_target_length)  # fmt: skip

    def inference_settings(self) -> dict[str, Any]:
        """Source length, prefix and target length."""
        return {"max_length": self.max_length, "source_prefix": self.source_prefix,
                "max_target_length": self.max_target_length}  # fmt: skip

    def model_kwargs(self) -> dict[str, Any]:
        """The shared facts plus the end-of-sequence id and the target length (generation's default limit)."""
        return {**super().model_kwargs(), "eos_token_id": self.tokenizer.eos_token_id,
                "max_target_length": self.max_target_length}  # fmt: skip


def _ends_with_eos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether `tokenizer` ends an encoding with its end-of-sequence token (needed: generation stops there)."""
    if tokenizer.eos_token_id is None:
        raise UserInputError(f"tokenizer {tokenizer.name_or_path} has no end-of-sequence token, which a"
                             " sequence-to-sequence model needs to stop; use another tokenizer")  # fmt: skip
    return tokenizer("a")["input_ids"][-1:] == [tokenizer.eos_token_id]


def _blank(value: Any) -> bool:
    """A missing side: null, NaN, or an empty or blank string ("NA" or "None" are texts here, not markers)."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )
