"""`TokenClassificationDataModule`: words with one tag each (NER, chunking, POS) -> word pieces with aligned labels.

Examples are pre-split words (`tokens`) and their tags (`tags`); the tokenizer splits words into pieces and
`word_ids()` maps each piece back to its word. Training labels the first piece of every word (the rest -100, ignored
by the loss) or, with `label_all_pieces`, every piece (continuation pieces of a `B-X` word get `I-X`). Validation and
test always label first pieces only, so metrics are computed on words, exactly one prediction per word.

Tags follow the label rules of `data/labels.py`: surrounding whitespace is stripped, and an example with a missing
tag (null, NaN, "", "NA", ...) is an error naming it, or left out with `drop_missing_labels`. CoNLL files never
hold either (`data/conll.py` splits lines on whitespace); JSONL and Parquet tag lists can.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Sequence, Value
from transformers import DataCollatorForTokenClassification, PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.labels import LabelHygiene, check_labels, configured_labels, label_text
from nlp_template.data.splits import gap_hint
from nlp_template.utils.errors import UserInputError

IGNORE = -100  # label of pieces the loss and the metrics skip


class TokenClassificationDataModule(TokenizedDataModule):
    """Token classification data (CoNLL files, JSONL with token/tag lists, Hub data sets such as `conll2003`).

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (`ConllSource`, `FileSource` for
            JSONL/Parquet, `HubSource`, `EntitySamples`).
        tokens_column: column with the list of words of each example.
        tags_column: column with the list of tags (strings, or a Hub `Sequence(ClassLabel)`).
        labels: the tag set in id order, each tag once; None: `O` first, then the training split's tags by type.
        label_all_pieces: train on every word piece instead of the first piece of each word.
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`).
    """

    def __init__(
        self,
        source: Any,
        tokens_column: str = "tokens",
        tags_column: str = "tags",
        labels: list[str] | None = None,
        label_all_pieces: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(source, **kwargs)
        self.tokens_column = tokens_column
        self.tags_column = tags_column
        self.labels = configured_labels(labels)
        self.labels_configured = self.labels is not None
        self.hygiene = LabelHygiene(self.drop_missing_labels, what="tag", column_key="tags_column")
        self.label_all_pieces = label_all_pieces

    def columns(self) -> dict[str, str]:
        """The words column and the tags column."""
        return {"tokens_column": self.tokens_column, "tags_column": self.tags_column}

    def prediction_columns(self) -> list[str]:
        """Prediction inputs are raw texts (column `text`); their words are found by `prediction_examples`."""
        return ["text"]

    def check_split(self, split: str, data: Dataset) -> None:
        """Tags present (or, with `drop_missing_labels`, their examples set aside) and one tag per word."""
        dropped = self.hygiene.check(split, data, self.tags_column)
        _check_lengths(split, data[self.tokens_column], data[self.tags_column], dropped)

    def clean_split(self, split: str, data: Dataset) -> Dataset:
        """The split without the examples that have a missing tag (only with `drop_missing_labels`)."""
        return self.hygiene.clean(split, data)

    def prepare_labels(self, raw: DatasetDict) -> DatasetDict:
        """Tag names (Hub `ClassLabel` ids become names), the tag set checked on every split."""
        self.hygiene.report()
        raw, class_names = _tag_names(raw, self.tags_column)
        train_tags = (tag for tags in raw["train"][self.tags_column] for tag in tags)
        self.labels = self.labels or class_names or tag_order(train_tags)
        from_train = not (self.labels_configured or class_names)  # only then can the carve leave a tag out
        for split, data in raw.items():
            tags = {label_text(tag) for tags in data[self.tags_column] for tag in tags}
            check_labels(split, tags, self.labels, gap_hint(split, self.reshaped) if from_train else "")
        return raw

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """The training sentences, words joined by spaces."""
        return (" ".join(tokens) for tokens in train[self.tokens_column])

    def make_tokenizer(self, texts: Iterator[str], data_key: str) -> PreTrainedTokenizerBase:
        """The configured or trained tokenizer; it must be fast (`word_ids` maps pieces back to words)."""
        tokenizer = super().make_tokenizer(texts, data_key)
        if not tokenizer.is_fast:
            raise UserInputError("token classification needs a fast tokenizer (word_ids); pick one with a fast version")
        return tokenizer

    def cache_settings(self) -> list[Any]:
        """Whether every word piece is labelled in training."""
        return [self.label_all_pieces]

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Word pieces of the words; labels on first pieces (all pieces with `label_all_pieces` in training).

        Prediction (`split="predict"`) keeps `word_ids` instead of labels, to map the predictions back to words.
        """
        label_ids = {label: index for index, label in enumerate(self.labels)}
        inside = {index: label_ids.get("I-" + label[2:], index) for label, index in label_ids.items()}
        all_pieces = self.label_all_pieces and split == "train"  # evaluation always counts words
        encoded = self.tokenizer(batch[self.tokens_column], is_split_into_words=True, truncation=True,
                                 max_length=self.max_length)  # fmt: skip
        word_ids = [encoded.word_ids(row) for row in range(len(batch[self.tokens_column]))]
        if split == "predict":
            encoded["word_ids"] = [[-1 if word is None else word for word in row] for row in word_ids]
        else:
            encoded["labels"] = [
                _align([label_ids[label_text(tag)] for tag in tags], words, all_pieces, inside)
                for tags, words in zip(batch[self.tags_column], word_ids, strict=True)
            ]
        encoded["truncated"] = [
            max((w for w in words if w is not None), default=-1) < len(tokens) - 1
            for words, tokens in zip(word_ids, batch[self.tokens_column], strict=True)
        ]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return dict(encoded)

    def prediction_examples(self, records: list[dict]) -> list[dict]:
        """Raw texts -> words (whitespace-separated) with their character offsets, so entities point into the text."""
        examples = []
        for record in records:
            words = [(match.group(), match.start(), match.end()) for match in re.finditer(r"\S+", record["text"])]
            examples.append({**record, self.tokens_column: [word for word, _, _ in words],
                             "word_offsets": [[start, end] for _, start, end in words]})  # fmt: skip
        return examples

    def collator(self) -> DataCollatorForTokenClassification:
        """Pad input ids and masks with the tokenizer, labels with -100."""
        return DataCollatorForTokenClassification(self.tokenizer, pad_to_multiple_of=self.pad_multiple())


def _align(tags: list[int], word_ids: list[int | None], all_pieces: bool, inside: dict[int, int]) -> list[int]:
    """One label per piece: the word's tag on its first piece; later pieces -100 or (all_pieces) the I- tag."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:  # special tokens ([CLS], [SEP])
            labels.append(IGNORE)
        elif word != previous:
            labels.append(tags[word])
        else:
            labels.append(inside[tags[word]] if all_pieces else IGNORE)
        previous = word
    return labels


def tag_order(tags: Any) -> list[str]:
    """`O` first, then the tags sorted by entity type and B- before I- (B-LOC, I-LOC, B-ORG, ...)."""
    distinct = {label_text(tag) for tag in tags}
    rest = sorted(distinct - {"O"}, key=lambda tag: (tag[2:], tag[:2]) if tag[1:2] == "-" else (tag, ""))
    return (["O"] if "O" in distinct else []) + rest


def _tag_names(raw: DatasetDict, column: str) -> tuple[DatasetDict, list[str] | None]:
    """Hub data sets (e.g. `conll2003`) store tags as `Sequence(ClassLabel)` ids; turn them into names."""
    feature = raw["train"].features.get(column)
    inner = getattr(feature, "feature", None)  # datasets' List / Sequence of ClassLabel
    if not isinstance(inner, ClassLabel):
        return raw, None

    def to_names(batch: dict) -> dict:
        return {column: [[inner.int2str(tag) for tag in tags] for tags in batch[column]]}

    # Cast to plain ints first: mapping onto a ClassLabel column would encode the names straight back into ids.
    raw = DatasetDict({split: data.cast_column(column, Sequence(Value("int64"))) for split, data in raw.items()})
    return raw.map(to_names, batched=True, desc="Tag names"), list(inner.names)


def _check_lengths(split: str, tokens: list[list[str]], tags: list[list[str]], skip: Container[int]) -> None:
    """One tag per word in every example (`skip`: examples dropped for a missing tag); rows are the source's."""
    for row, (words, labels) in enumerate(zip(tokens, tags, strict=True)):
        if row not in skip and (words is None or labels is None or len(words) != len(labels)):
            raise UserInputError(
                f"{split} split, example {row}: {len(words or [])} tokens but {len(labels or [])} tags; every token"
                " needs exactly one tag"
            )
