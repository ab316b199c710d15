"""`TextClassificationDataModule`: sentence or sentence-pair classification, multi-label classification, regression.

One data module serves every classification data set; what differs between data sets (where the text comes from,
the column names, the label set) is configuration in `conf/data/`. The shared machinery (sources, tokenizer,
cache, batching, resume) is in `data/base.py`.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Value
from transformers import DataCollatorWithPadding

from nlp_template.data.base import TokenizedDataModule
from nlp_template.data.labels import (
    LabelHygiene,
    check_classes,
    check_labels,
    configured_labels,
    label_text,
    sorted_labels,
)
from nlp_template.data.splits import gap_hint
from nlp_template.utils.errors import UserInputError, listing

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


class TextClassificationDataModule(TokenizedDataModule):
    """Sentence (or sentence-pair) classification, multi-label classification and regression data.

    The kind of problem follows the label column unless `problem_type` says otherwise: numbers with a fraction
    (a float column, e.g. STS-B similarity scores) are regression targets, lists of labels (JSONL/Parquet) or strings
    split by `label_separator` are multi-label, anything else is one class per example. A float column is never
    turned into classes behind the user's back. Labels follow the rules of `data/labels.py`: kept as written but
    stripped of surrounding whitespace; missing ones (empty, null, NaN, "NA", ...) are an error naming the rows, or
    dropped with `drop_missing_labels`. A validation split carved from train is stratified by label for
    single-label classification (`data/splits.py`).

    Args:
        source: an object with `load() -> DatasetDict` and `fingerprint() -> str` (see `data/sources.py`).
        text_column: column with the text.
        text_pair_column: optional second text column for sentence-pair tasks (NLI, paraphrase).
        label_column: column with the labels (strings or integers; floats for regression; lists for multi-label).
        labels: the label set in id order, each label once; None takes the sorted labels of the training split.
        problem_type: `single_label_classification`, `multi_label_classification` or `regression`; None: from the
            label column as above.
        label_separator: split string labels on this to get multi-label sets (e.g. `|` for `sports|politics`).
        **kwargs: tokenizer, batching, caching and split settings of `TokenizedDataModule` (`data/base.py`).
    """

    def __init__(
        self,
        source: Any,
        text_column: str = "text",
        text_pair_column: str | None = None,
        label_column: str = "label",
        labels: list[str] | None = None,
        problem_type: str | None = None,
        label_separator: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(source, **kwargs)
        if problem_type is not None and problem_type not in PROBLEM_TYPES:
            raise UserInputError(f"unknown data.problem_type '{problem_type}'; use one of {list(PROBLEM_TYPES)} (or"
                                 " null to take it from the label column)")  # fmt: skip
        self.text_columns = [text_column] + ([text_pair_column] if text_pair_column else [])
        self.text_column, self.text_pair_column = text_column, text_pair_column
        self.label_column = label_column
        self.labels = configured_labels(labels)
        self.labels_configured = self.labels is not None
        self.hygiene = LabelHygiene(self.drop_missing_labels)
        self.problem_type = problem_type
        self.label_separator = label_separator

    def columns(self) -> dict[str, str]:
        """The text column(s) and the label column."""
        roles = {"text_column": self.text_column, "label_column": self.label_column}
        if self.text_pair_column:
            roles["text_pair_column"] = self.text_pair_column
        return roles

    def prediction_columns(self) -> list[str]:
        """The text (and pair) column: labels are what prediction supplies."""
        return list(self.text_columns)

    def check_split(self, split: str, data: Dataset) -> None:
        """Labels present (or, with `drop_missing_labels`, their rows set aside) and of one kind; no empty text.

        An empty (or whitespace-only) text with a label is broken data: training on it would teach the model a label
        for nothing, and leaving it out silently would change the data behind the user's back, so it is an error
        that names the rows (1 = the source's first example).
        """
        dropped = self.hygiene.check(split, data, self.label_column, self.label_separator)
        _check_label_values(split, data, self.label_column, dropped)
        if self.problem_type == "regression":
            _check_numeric(split, data, self.label_column, dropped)
        empty = sorted({i for column in self.text_columns for i in _blank_rows(data, column)} - dropped)
        if empty:
            raise UserInputError(
                f"{split} split has {len(empty)} empty text(s) in {_columns(self.text_columns)} at row(s)"
                f" {_rows(empty)} (1 = first example); remove those rows or fill in their text"
            )

    def clean_split(self, split: str, data: Dataset) -> Dataset:
        """The split without the rows whose label is missing (only with `drop_missing_labels`)."""
        return self.hygiene.clean(split, data)

    def carve_strata(self, train: Dataset) -> list | None:
        """Single-label classification: the labels, so that the carve leaves every label in train; else None."""
        kind = self.problem_type or _infer_problem_type(train, self.label_column, self.label_separator)
        if kind != "single_label_classification":
            return None
        return [label_text(value) for value in train[self.label_column]]

    def prepare_labels(self, raw: DatasetDict) -> DatasetDict:
        """The problem type and the label set (none for regression), every split checked against it."""
        self.hygiene.report()
        raw, class_names = _class_label_names(raw, self.label_column)
        if self.problem_type is None:  # an explicit `regression` was checked in `check_split` (the source's rows)
            self.problem_type = _infer_problem_type(raw["train"], self.label_column, self.label_separator)
            if self.problem_type == "regression":  # a float column: only NaN/inf can be wrong
                for split, data in raw.items():
                    _check_numeric(split, data, self.label_column)
        if self.problem_type == "regression":
            self.labels = None
            return raw
        present = {split: self._distinct_labels(data[self.label_column]) for split, data in raw.items()}
        if self.problem_type == "multi_label_classification":
            self.labels = self.labels or sorted(present["train"])
        else:
            self.labels = self.labels or class_names or sorted_labels(raw["train"][self.label_column])
            subset = self.reshaped["subset"]
            check_classes(present["train"], self.labels, f" (data.max_train_examples={subset})" if subset else "")
        from_train = not (self.labels_configured or class_names)  # only then can the carve leave a label out
        for split, labels in present.items():
            check_labels(split, labels, self.labels, gap_hint(split, self.reshaped) if from_train else "")
        return raw

    def _distinct_labels(self, values: list) -> set[str]:
        """The labels a split uses, as strings."""
        if self.problem_type != "multi_label_classification":
            return {label_text(value) for value in values}
        return {label for row in self._label_sets(values) for label in row}

    def _label_sets(self, values: list) -> list[list[str]]:
        """Every example's labels as a list of strings (multi-label data)."""
        if self.label_separator:
            parts = (str(value).split(self.label_separator) for value in values)
            return [[part.strip() for part in row if part.strip()] for row in parts]
        if values and not isinstance(values[0], list):
            raise UserInputError(f"multi-label data needs a list of labels per example (JSONL/Parquet) or"
                                 f" data.label_separator=<char> to split '{self.label_column}' strings")  # fmt: skip
        return [[label_text(label) for label in value] for value in values]

    def tokenizer_texts(self, train: Dataset) -> Iterator[str]:
        """Both texts of every training example."""
        return (text for column in self.text_columns for text in train[column])

    def cache_settings(self) -> list[Any]:
        """The problem type and the label separator (they decide the `labels` column)."""
        return [self.problem_type, self.label_separator]

    def encode(self, batch: dict[str, list], split: str) -> dict[str, list]:
        """Token ids of the text (pair) truncated to `max_length`; labels as ids, multi-hot rows or floats."""
        encoded = self.tokenizer(
            *[[text or "" for text in batch[column]] for column in self.text_columns],
            truncation=True,
            max_length=self.max_length,
        )
        if batch.get(self.label_column) is not None and split != "predict":
            encoded["labels"] = self._label_values(batch[self.label_column])
        encoded["truncated"] = [bool(encoding.overflowing) for encoding in encoded.encodings]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]  # for the length-aware batch samplers
        return dict(encoded)

    def _label_values(self, values: list) -> list:
        if self.problem_type == "regression":
            return [float(value) for value in values]
        index = {label: position for position, label in enumerate(self.labels)}
        if self.problem_type == "multi_label_classification":
            rows = [[0.0] * len(self.labels) for _ in values]
            for row, labels in zip(rows, self._label_sets(values), strict=True):
                for label in labels:
                    row[index[label]] = 1.0
            return rows
        return [index[label_text(value)] for value in values]

    def model_kwargs(self) -> dict[str, Any]:
        """The shared facts plus the problem type (the model's loss and metrics follow it)."""
        return {**super().model_kwargs(), "problem_type": self.problem_type}

    def collator(self) -> DataCollatorWithPadding:
        """Pad input ids, masks and token types to the longest example of the batch."""
        return DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=self.pad_multiple())


def _infer_problem_type(train: Dataset, column: str, separator: str | None) -> str:
    """Multi-label for lists (or a separator), regression for a float column, else one class per example."""
    kind = train.data.schema.field(column).type
    if separator or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "multi_label_classification"
    if pa.types.is_floating(kind):
        return "regression"
    return "single_label_classification"


def _check_numeric(split: str, data: Dataset, column: str, skip: Container[int] = ()) -> None:
    """Regression targets must be finite numbers (numeric strings count: one bad value makes a CSV column text).

    `skip`: rows whose (missing) target is dropped anyway.
    """
    for row, value in enumerate(data[column]):
        if row not in skip and not _finite_number(value):
            raise UserInputError(f"{split} split: regression needs a number in column '{column}', row {row + 1} has"
                                 f" {value!r}; fix the data, or set data.problem_type=single_label_classification"
                                 " for classes")  # fmt: skip


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


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


# Python types of label values (JSON lines can mix them: `datasets` then stores the column as `Json`).
_LABEL_KINDS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _check_label_values(split: str, data: Dataset, column: str, skip: Container[int]) -> None:
    """Fail on a column that mixes kinds (e.g. 1 and "pos"), naming rows; `skip`: rows with a missing label.

    Missing labels themselves are `LabelHygiene`'s (`data/labels.py`), checked before this.
    """
    kind = data.data.schema.field(column).type
    if _plain_type(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):  # typed: one kind by construction
        return
    values = data[column]  # e.g. `Json` from JSON lines that mix 1 and "pos": look at every value
    kinds: dict[str, int] = {}
    for i, value in enumerate(values):
        if i not in skip:
            kinds.setdefault(_LABEL_KINDS.get(type(value), type(value).__name__), i)
    if set(kinds) - {"boolean", "integer", "number", "string"}:
        odd = next(kind for kind in kinds if kind not in ("boolean", "integer", "number", "string"))
        raise UserInputError(
            f"{split} split: column '{column}' holds {odd} values (row {kinds[odd] + 1}: {values[kinds[odd]]!r}); a"
            " label must be one string or number per example"
        )
    if "string" in kinds and len(kinds) > 1:
        number = next(kind for kind in kinds if kind != "string")
        examples = ", ".join(f"row {row + 1}: {values[row]!r}" for row in sorted((kinds[number], kinds["string"])))
        raise UserInputError(
            f"{split} split: column '{column}' mixes {number} and string labels ({examples}); use one kind for every"
            " label, e.g. all strings"
        )


def _plain_type(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or (pa.types.is_floating(kind) or pa.types.is_boolean(kind))
    )


def _blank_rows(data: Dataset, column: str) -> list[int]:
    """Rows whose value is missing or only whitespace.

    Vectorised (Arrow) for typed columns: these checks run on every run, cache hit or not, and took 1.1 s for
    SST-2's 67k rows as a Python loop.
    """
    values = data.with_format("arrow")[column]
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)
    elif _plain_type(values.type):
        blank = pc.is_null(values)
    else:
        return [i for i, value in enumerate(values.to_pylist()) if _blank(value)]
    return pc.indices_nonzero(blank).to_pylist()


def _blank(text: Any) -> bool:
    return text is None or (isinstance(text, str) and not text.strip())


def _rows(indices: list[int]) -> str:
    """0-based row indices as the 1-based rows an error line names (the first 10 and a count)."""
    return listing(index + 1 for index in indices)


def _columns(columns: list[str]) -> str:
    return " / ".join(f"'{column}'" for column in columns) if len(columns) > 1 else f"column '{columns[0]}'"
