"""Label sets of classification and tagging data: a stable order, and a check that every split stays inside it."""

from __future__ import annotations

from nlp_template.utils.errors import UserInputError


def sorted_labels(values: list) -> list[str]:
    """Distinct labels in a stable order: numeric order for integers, alphabetical for strings."""
    distinct = set(values)
    if None in distinct:
        raise UserInputError("the training split has empty labels; every example needs a label")
    ordered = sorted(distinct) if all(isinstance(v, (int, float)) for v in distinct) else sorted(map(str, distinct))
    return [str(label) for label in ordered]


def check_labels(split: str, values: set[str], labels: list[str]) -> None:
    """Fail clearly when a split holds labels outside the label set."""
    unknown = sorted(values - set(labels))
    if unknown:
        raise UserInputError(
            f"{split} split has labels not in the label set: {unknown[:10]} (label set: {labels}). Fix the data,"
            " or list every label in data.labels=[...]"
        )
