"""`MultipleChoiceDataModule`: a context, N candidate endings and the index of the right one (SWAG, RACE style).

Each example becomes N text pairs `(context, question + ending)`, tokenized and truncated like any pair (the longer
text is cut first); a batch pads every choice of every example to one length, shape (batch, choices, tokens), the input
`AutoModelForMultipleChoice` takes. The endings come from one list column (`data.choices: endings`, JSONL/Parquet)
or from one column per ending (`data.choices: [ending0, ending1, ...]`, CSV/TSV, the SWAG layout). Every row of
every split must have the same number of choices (a batch cannot mix them); the label is the 0-based index of the
right ending.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.labels import LabelHygiene, is_missing
from nlp_template.utils.errors import UserInputError, listing


class MultipleChoiceDataModule(TokenizedDataModule):
    """Multiple-choice data from files, Hub data sets or the embedded generator.

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str`.
        context_column: the passage or first sentence (SWAG: `sent1`, RACE: `article`).
        question_column: text put before every ending (SWAG: `sent2`, RACE: `question`), or None.
        choices: the list column of endings, or the names of the ending columns in order.
        label_column: the 0-based index of the right ending.
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule`.
    """

    def __init__(
        self, source: Any, context_column: str = "context", question_column: str | None = "question",
        choices: str | list[str] = "endings", label_column: str = "label", **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(source, **kwargs)
        self.context_column = context_column
        self.question_column = question_column
        self.choices = choices if isinstance(choices, str) else list(choices)
        self.label_column = label_column
        self.num_choices: int | None = None
        self.hygiene = LabelHygiene(self.drop_missing_labels, what="label")

    def columns(self) -> dict[str, str]:
        """Context, question, choice and label columns."""
        columns = {"context_column": self.context_column, "label_column": self.label_column}
        if self.question_column:
            columns["question_column"] = self.question_column
        if isinstance(self.choices, str):
            return {**columns, "choices": self.choices}
        return {**columns, **{f"choices[{index}]": column for index, column in enumerate(self.choices)}}

    def prediction_columns(self) -> list[str]:
        """Everything but the label."""
        return [column for column in self.columns().values() if column != self.label_column]

    def string_columns(self) -> list[str]:
        """Context, question and separate ending columns (a list column of endings is not one text)."""
        return [column for column in self.prediction_columns() if column != self.choices]

    def row_choices(self, row: dict) -> list:
        """The endings of one raw row, in order."""
        if isinstance(self.choices, str):
            value = row.get(self.choices)
            return list(value) if isinstance(value, (list, tuple)) else [value]
        return [row.get(column) for column in self.choices]

    def check_split(self, split: str, data: Dataset) -> None:
        """One choice count for all rows, no empty ending, labels present and in range."""
        skip = self.hygiene.check(split, data, self.label_column) if split != "predict" else set()
        rows = data.select_columns(list(self.columns().values())).to_list()
        counts = [len(self.row_choices(row)) for row in rows]
        expected = self.num_choices or counts[0]
        odd = [index for index, count in enumerate(counts) if count != expected]
        if odd:
            raise UserInputError(f"{split} split: rows {_rows(odd)} have {counts[odd[0]]} choices where the others"
                                 f" have {expected}; every row needs the same number of endings")  # fmt: skip
        self.num_choices = expected
        if expected < 2:
            raise UserInputError(f"{split} split: rows have {expected} choice(s); multiple choice needs at least 2"
                                 f" (check data.choices={self.choices})")  # fmt: skip
        empty = [index for index, row in enumerate(rows) if any(_blank(text) for text in self.row_choices(row))]
        if empty:
            raise UserInputError(f"{split} split: rows {_rows(empty)} have an empty ending; fill them in or remove"
                                 " those rows")  # fmt: skip
        bad = [
            index
            for index, row in enumerate(rows)
            if index not in skip and _index(row[self.label_column], expected) is None
        ]
        if bad:
            value = rows[bad[0]][self.label_column]
            raise UserInputError(
                f"{split} split: rows {_rows(bad)} have a label outside 0..{expected - 1} (e.g."
                f" {value!r}); data.label_column must hold the index of the right ending"
            )

    def clean_split(self, split: str, data: Dataset) -> Dataset:
        """Rows with a missing label left out (only with `data.drop_missing_labels=true`)."""
        return self.hygiene.clean(split, data)

    def prepare_labels(self, raw: DatasetDict) -> DatasetDict:
        """No label names: a label is a position; logs what the label checks dropped or stripped."""
        self.hygiene.report()
        return raw

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """Contexts, questions and endings of the training split."""
        for row in train.select_columns(list(self.columns().values())).to_list():
            yield row[self.context_column] or ""
            if self.question_column:
                yield row[self.question_column] or ""
            yield from (text or "" for text in self.row_choices(row))

    def cache_settings(self) -> list[Any]:
        """The choice layout decides the token ids."""
        return [self.choices, self.question_column]

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Per example, one `(context, question + ending)` encoding per choice; `length`: choices x longest one."""
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        firsts, seconds = [], []
        for row in rows:
            question = (row.get(self.question_column) or "") if self.question_column else ""
            for ending in self.row_choices(row):
                firsts.append(row.get(self.context_column) or "")
                seconds.append(f"{question} {ending or ''}".strip())
        flat = self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_length)
        count = len(seconds) // max(len(rows), 1)
        encoded = {key: [values[i * count : (i + 1) * count] for i in range(len(rows))] for key, values in flat.items()}
        overflowing = [bool(encoding.overflowing) for encoding in flat.encodings]
        encoded["truncated"] = [any(overflowing[i * count : (i + 1) * count]) for i in range(len(rows))]
        encoded["length"] = [count * max(len(ids) for ids in example) for example in encoded["input_ids"]]
        if split == "predict":
            encoded["choice_texts"] = [[str(text) for text in self.row_choices(row)] for row in rows]
        elif batch.get(self.label_column) is not None:
            encoded["labels"] = [_index(row[self.label_column], count) for row in rows]
        return encoded

    def prediction_examples(self, records: list[dict]) -> list[dict]:
        """Prediction records must share one number of choices (a batch cannot mix them)."""
        expected = len(self.row_choices(records[0])) if records else 0
        odd = [record.get("line") for record in records if len(self.row_choices(record)) != expected]
        if odd:
            raise UserInputError(f"the inputs have different numbers of choices: line {records[0].get('line')} has"
                                 f" {expected}, line(s) {listing(odd)} another number; predict each number of"
                                 " choices from its own file")  # fmt: skip
        return records

    def model_kwargs(self) -> dict[str, Any]:
        """Vocabulary facts and the number of choices (the accuracy's classes)."""
        return {**super().model_kwargs(), "num_choices": self.num_choices}

    def collator(self) -> ChoicesCollator:
        """Pads every choice of the batch to one length."""
        return ChoicesCollator(self.tokenizer, self.pad_multiple())


class ChoicesCollator:
    """(batch, choices, tokens) tensors from examples whose inputs are lists of choices; `labels` when present.

    `transformers.DataCollatorForMultipleChoice` does the same but needs labels in every batch, which prediction
    inputs have not; so this is those few lines, label-optional.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None) -> None:
        self.tokenizer, self.pad_to_multiple_of = tokenizer, pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        """Flatten the choices, pad them together, reshape."""
        names = [name for name in self.tokenizer.model_input_names if name in examples[0]]
        count = len(examples[0]["input_ids"])
        flat = [{name: example[name][choice] for name in names} for example in examples for choice in range(count)]
        padded = self.tokenizer.pad(flat, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        batch = {name: value.view(len(examples), count, -1) for name, value in padded.items()}
        if "labels" in examples[0]:
            batch["labels"] = torch.tensor([example["labels"] for example in examples], dtype=torch.long)
        return batch


def _index(value: Any, count: int) -> int | None:
    """A label as a choice index (an int, or its digits as text), None when missing or out of 0..count-1."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        index = int(str(value).strip())
    except ValueError:
        return None
    return index if 0 <= index < count and str(value).strip() == str(index) else None


def _blank(text: Any) -> bool:
    """No ending: null or only whitespace."""
    return text is None or not str(text).strip()


def _rows(indices: list[int]) -> str:
    """1-based row numbers for an error line."""
    return listing(index + 1 for index in indices)
