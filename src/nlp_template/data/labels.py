"""Label hygiene of classification and tagging data, and the label set: one set of rules for every task.

The rules (documented in `docs/reliability.md`, "Labels"):

- a label is a string kept exactly as written, except leading and trailing whitespace, which is stripped (`'pos '`
  and `'pos'` are one label; the count is logged). Numbers become their string (`1` -> `'1'`);
- a missing label is an error that names the rows, unless `data.drop_missing_labels=true` leaves those rows out:
  null/None, float NaN, an empty or whitespace-only string, and the strings in `MISSING_LABELS` in any case;
- `data.labels` lists each label once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from nlp_template.utils.errors import UserInputError, listing

log = logging.getLogger(__name__)

# Strings that mean "no label" (compared case-insensitively, after stripping): what spreadsheets, pandas and JSON
# writers put in an empty cell. Trained on, each would become a class of its own.
MISSING_LABELS = ("", "nan", "na", "n/a", "null", "none")
MISSING_NAMES = "empty, NaN, NA, N/A, null and None"  # the same list, as the error messages spell it


def is_missing(value: Any) -> bool:
    """Whether one label value means "no label" (see `MISSING_LABELS`)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_LABELS


def label_text(value: Any) -> str:
    """A label value as the label it names: strings without surrounding whitespace, anything else as `str`."""
    return value.strip() if isinstance(value, str) else str(value)


def configured_labels(labels: Iterable[Any] | None, key: str = "data.labels") -> list[str] | None:
    """The label set the user listed (`data.labels`), as label strings; refuses missing and repeated entries."""
    if not labels:
        return None
    texts = [label_text(label) for label in labels]
    missing = [repr(label) for label in labels if is_missing(label)]
    if missing:
        raise UserInputError(f"{key} holds a missing label ({listing(missing)}); list only real labels, in id order")
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise UserInputError(
            f"{key} lists {listing(repr(label) for label in repeated)} more than once (after stripping whitespace);"
            f" list each label once, in id order, e.g. {key}=[{','.join(dict.fromkeys(texts))}]"
        )
    return texts


def missing_rows(data: Dataset, column: str, separator: str | None = None) -> list[int]:
    """Rows (0-based) whose label is missing; a list of labels (multi-label, tags) is missing if any element is.

    An empty list is not missing: for multi-label data it means "none of the labels". With `separator` (multi-label
    strings such as `a|b`), a part is checked like a label; empty parts (`a|`) are ignored, as in training.
    Vectorised (Arrow) for plain and list columns: these checks run on every run, cache hit or not.
    """
    values = data.with_format("arrow")[column]
    if separator and _is_string(values.type):
        return [i for i, value in enumerate(values.to_pylist()) if _missing_parts(value, separator)]
    flags = _missing_flags(values)
    if flags is not None:
        return pc.indices_nonzero(flags).to_pylist()
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        flat = _missing_flags(pc.list_flatten(values))
        if flat is not None:
            bad = set(pc.filter(pc.list_parent_indices(values), flat).to_pylist())
            bad.update(pc.indices_nonzero(pc.is_null(values)).to_pylist())
            return sorted(bad)
    # `Json` values (JSON lines that mix kinds) or lists of numbers: look at every value
    return [i for i, value in enumerate(data[column]) if _missing_value(value)]


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _missing_flags(values: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """True where a plain (string, number, boolean) value is missing; None for other kinds of column."""
    kind = values.type
    if _is_string(kind):  # `is_in` says False (not null) for a null: test nulls on their own
        cleaned = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        return pc.or_(pc.is_null(values), pc.is_in(cleaned, value_set=pa.array(MISSING_LABELS)))
    if pa.types.is_floating(kind):
        return pc.or_(pc.is_null(values), pc.fill_null(pc.is_nan(values), False))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.is_null(values)
    return None


def _missing_parts(value: str | None, separator: str) -> bool:
    return is_missing(value) or any(is_missing(part) for part in value.split(separator) if part.strip())


def _missing_value(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(is_missing(element) for element in value)
    return is_missing(value)


def padded_count(data: Dataset, column: str) -> int:
    """How many labels (or list elements) have leading or trailing whitespace, which `label_text` strips."""
    values = data.with_format("arrow")[column]
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)
    if _is_string(values.type):
        return int(pc.sum(pc.not_equal(values, pc.utf8_trim_whitespace(values))).as_py() or 0)
    if _missing_flags(values) is not None:  # numbers and booleans have no whitespace
        return 0
    return sum(isinstance(value, str) and value != value.strip() for value in data[column])


def missing_labels_error(
    split: str, column: str, rows: list[int], found: list[Any], what: str = "label", per_example: bool = False
) -> str:
    """The one-line message for missing labels: how many, which rows (1-based), what they held, and the fix.

    `found`: the missing values themselves; `per_example`: the column holds lists (multi-label, tags), and `rows`
    counts examples with a missing element.
    """
    count = f"{len(rows)} example(s) with a missing {what}" if per_example else f"{len(rows)} empty {what}(s)"
    return (
        f"{split} split has {count} in column '{column}' at row(s) {listing(row + 1 for row in rows)} (1 = first"
        f" example; found {listing(dict.fromkeys(repr(value) for value in found), 5)}; {MISSING_NAMES} count as"
        " missing); fill them in, or set data.drop_missing_labels=true to leave those rows out"
    )


class LabelHygiene:
    """What the label checks found per split (missing rows, labels with whitespace) and what was done about it.

    A data module fills it in `check_split` (source row numbers), drops rows in `clean_split` and logs once.
    """

    def __init__(self, drop_missing: bool, what: str = "label", column_key: str = "label_column") -> None:
        self.drop_missing = drop_missing
        self.what = what
        self.column_key = column_key  # the config key that names the column (data.<column_key>)
        self.missing: dict[str, list[int]] = {}
        self.padded: dict[str, int] = {}

    def check(self, split: str, data: Dataset, column: str, separator: str | None = None) -> set[int]:
        """Find missing and padded labels of one split; raise unless missing ones may be dropped.

        Returns the rows to leave out, so that the split's other checks skip them. With `separator`, the parts are
        stripped as part of splitting (`a | b`), which is not counted.
        """
        rows = missing_rows(data, column, separator)
        if rows and not self.drop_missing:
            values = data.select(rows[:20])[column]  # enough to show what the missing values look like
            lists = any(isinstance(value, list) for value in values)
            items = [item for value in values for item in (value if isinstance(value, list) else [value])]
            found = [item for item in items if is_missing(item)] or values  # `a|NaN`: the whole value
            raise UserInputError(missing_labels_error(split, column, rows, found, self.what, lists))
        if rows and len(rows) == data.num_rows:
            raise UserInputError(
                f"{split} split: all {data.num_rows} examples have a missing {self.what} in column '{column}'"
                f" ({MISSING_NAMES} count as missing); check data.{self.column_key} and the file"
            )
        self.missing[split] = rows
        self.padded[split] = 0 if separator else padded_count(data, column)
        return set(rows)

    def clean(self, split: str, data: Dataset) -> Dataset:
        """The split without the rows `check` found missing (only reached with `data.drop_missing_labels=true`)."""
        dropped = set(self.missing.get(split, ()))
        if not dropped:
            return data
        return data.select([i for i in range(data.num_rows) if i not in dropped])

    def report(self) -> None:
        """Log, once, how many labels were stripped and how many rows were dropped, per split."""
        dropped = {split: len(rows) for split, rows in self.missing.items() if rows}
        if dropped:
            counts = ", ".join(f"{split}: {count}" for split, count in dropped.items())
            log.info("Dropped examples with a missing %s (data.drop_missing_labels=true): %s", self.what, counts)
        padded = {split: count for split, count in self.padded.items() if count}
        if padded:
            counts = ", ".join(f"{split}: {count}" for split, count in padded.items())
            log.info("Stripped leading/trailing whitespace from %d %s(s) (%s), e.g. 'pos ' is 'pos'",
                     sum(padded.values()), self.what, counts)  # fmt: skip


def sorted_labels(values: list) -> list[str]:
    """Distinct labels in a stable order: numeric order for integers, alphabetical for strings."""
    distinct = {value.strip() if isinstance(value, str) else value for value in values}
    if any(is_missing(value) for value in distinct):  # the checks before refuse these; a last guard
        raise UserInputError("the training split has missing labels; every example needs a label")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    ordered = sorted(distinct) if numeric else sorted(map(str, distinct))
    return [str(label) for label in ordered]


def check_labels(split: str, values: set[str], labels: list[str], hint: str = "") -> None:
    """Fail clearly when a split holds labels outside the label set.

    `hint` explains a gap the data module caused (the validation carve, the training subset) and how to avoid it;
    without one, the fix is to correct the data or list the labels.
    """
    unknown = sorted(values - set(labels))
    if unknown:
        fix = hint or "Fix the data, or list every label in data.labels=[...]"
        raise UserInputError(
            f"{split} split has labels not in the label set: {_listed(unknown)} (label set: {_listed(labels)}). {fix}"
        )


def check_classes(present: set[str], labels: list[str], note: str = "") -> None:
    """A classifier needs at least two classes, and examples of more than one of them in the training split.

    With one, training "works" and learns nothing (and torchmetrics fails mid-run); refuse before anything runs.
    `present`: the labels of the training split; `note`: where those came from, e.g. a subset.
    """
    if len(present) == 1:
        (label,) = present
        raise UserInputError(
            f"every training example has the label {label!r}{note}: a classifier cannot learn from a single class;"
            " add training examples of other labels"
        )
    if len(labels) < 2:
        raise UserInputError(
            f"data.labels lists a single label, {labels[0]!r}: a classifier needs at least two; list every label"
        )


def _listed(labels: list[str]) -> str:
    """`['a', 'b']` for up to 10 labels; `['a', ..., 'j' and 490 more]` beyond (an error line stays readable)."""
    return f"[{listing(repr(label) for label in labels)}]"
