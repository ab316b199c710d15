"""The source's splits before labels: their columns, the validation carve and the training subset.

`TokenizedDataModule.load_splits` checks that every split has the configured columns, then reshapes train.

When the source has no validation split, `data.validation_fraction` of train is carved off as validation. With
one label per example (single-label classification) the carve is stratified by label: every label keeps at least
one training example, so the carve can never leave a label out of training (a random carve of 500 labels x 3
examples took every example of two labels). Other kinds of data (multi-label, regression, tagging) are carved at
random, exactly as `datasets.Dataset.train_test_split` does; a label gap that carve causes is reported as the
carve's doing (`gap_hint`). Documented in `docs/reliability.md`, "Validation split".
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)

VALIDATION_FILE = "pass a validation file (data.source.validation=...)"


def check_columns(raw: DatasetDict, roles: dict[str, str]) -> None:
    """Fail clearly when a split lacks a configured column; `roles` maps a config key to its column name."""
    for split, data in raw.items():
        for key, column in roles.items():
            if column not in data.column_names:
                raise UserInputError(
                    f"{split} split has no column '{column}' (data.{key}); its columns are {data.column_names}."
                    f" Set data.{key}=<one of them>"
                )


def check_max_train_examples(value: Any) -> None:
    """`data.max_train_examples` is null (every example) or a positive integer; 0 used to mean "all" silently."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserInputError(
            f"data.max_train_examples must be a positive integer, or null to train on every example; got {value!r}"
        )


def check_fraction(fraction: float) -> None:
    """The carve needs a share strictly between 0 and 1."""
    if not 0 < fraction < 1:
        raise UserInputError(
            f"data.validation_fraction must be between 0 and 1 to carve a validation split from train, got"
            f" {fraction}; e.g. data.validation_fraction=0.1 (or set data.source.validation)"
        )


def carve_validation(
    train: Dataset, fraction: float, seed: int, strata: Sequence[Hashable] | None
) -> tuple[Dataset, Dataset]:
    """(train, validation) from train: stratified by `strata` (one label per row) when given, else at random.

    The random carve is `train_test_split`'s (the same rows as before stratification existed, so cached splits of
    multi-label, regression and tagging data stay valid); both take ceil(fraction x rows) for validation.
    """
    total = train.num_rows
    wanted = math.ceil(fraction * total)
    if total < 2:
        raise UserInputError(
            f"the train split has {total} example: too few to carve a validation split from (one for each is the"
            f" least); add examples, or {VALIDATION_FILE}"
        )
    if wanted >= total:
        raise UserInputError(
            f"cannot carve a validation split from a train split of {total} examples: data.validation_fraction="
            f"{fraction} leaves none to train on; lower data.validation_fraction, add examples, or {VALIDATION_FILE}"
        )
    if strata is None:
        parts = train.train_test_split(test_size=fraction, seed=seed)
        return parts["train"], parts["test"]
    kept, held = stratified_indices(strata, wanted, seed)
    if not held:
        raise UserInputError(
            f"cannot carve a validation split from train: each of its {len(set(strata))} label(s) has a single"
            f" example, and carving one would leave that label nothing to train on; add examples (two or more per"
            f" label), or {VALIDATION_FILE}"
        )
    if len(held) < wanted:
        log.info("Validation carve: %d examples instead of %d (data.validation_fraction=%s), so that every label"
                 " keeps a training example", len(held), wanted, fraction)  # fmt: skip
    return train.select(kept), train.select(held)


def stratified_indices(strata: Sequence[Hashable], wanted: int, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, validation rows): about `wanted` validation rows, each label's share proportional to its size.

    Every label keeps at least one training row, so a label with one example stays in train and validation may get
    fewer rows than `wanted`. Shares are rounded by largest remainder, ties broken at random (seeded): with 500
    labels x 3 examples and 150 validation rows, 150 labels give one example each.
    """
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for row, key in enumerate(strata):
        groups[key].append(row)
    rng = np.random.default_rng(seed)
    keys = list(groups)
    sizes = np.array([len(groups[key]) for key in keys])
    quota = wanted * sizes / sizes.sum()
    capacity = sizes - 1  # one example of every label stays in train
    take = np.minimum(np.floor(quota).astype(int), capacity)
    tiebreak = rng.random(len(keys))
    while take.sum() < min(wanted, capacity.sum()):
        spare = np.flatnonzero(take < capacity)
        # Largest shortfall first (the classic largest-remainder rounding), random among equals.
        order = spare[np.lexsort((tiebreak[spare], -(quota[spare] - take[spare])))]
        take[order[: wanted - take.sum()]] += 1
    kept: list[int] = []
    held: list[int] = []
    for key, count in zip(keys, take, strict=True):
        rows = rng.permutation(groups[key]).tolist()
        held += rows[:count]
        kept += rows[count:]
    return rng.permutation(kept).tolist(), rng.permutation(held).tolist()


def take_subset(train: Dataset, size: int, seed: int) -> Dataset:
    """A seeded random subset of `size` training examples (`data.max_train_examples`)."""
    return train.shuffle(seed=seed).select(range(size))


def gap_hint(split: str, reshaped: dict[str, Any]) -> str:
    """Why `split` can hold labels the training split lacks, when the data module caused it, and how to avoid it.

    `reshaped` is the data module's record of `load_splits`: `carve` = (validation_fraction, stratified) when
    validation was carved from train, `subset` = max_train_examples when train is a subset. Empty when neither can
    explain the gap (then the data itself does).
    """
    carve, subset = reshaped["carve"], reshaped["subset"]
    reasons = []
    if split == "validation" and carve is not None and not carve[1]:
        reasons.append(
            f"The validation split was carved at random from train (data.validation_fraction={carve[0]}; random, as"
            f" this data has no single label per example to stratify by) and took every example of these labels."
            f" Add examples of them, {VALIDATION_FILE}, or list every label in data.labels=[...]"
        )
    if subset is not None and split != "train":
        reasons.append(
            f"The training split is a random subset of data.max_train_examples={subset} examples, which may hold no"
            " example of these labels: raise or unset data.max_train_examples, or list every label in"
            " data.labels=[...]"
        )
    return " ".join(reasons)
