"""Entity-level scores for tagging with IOB tags, with the semantics of conlleval (and seqeval's default mode).

A tagger is judged on whole entities, not on tags: an entity counts as found only when its type and both of its
boundaries are right. Tags are decoded leniently, as conlleval does, so that a model's ill-formed output (an `I-`
with no `B-` before it) still yields entities rather than an error: a chunk starts at `B-X`, or at `I-X` after `O`
or after a tag of another type, and ends before `O`, a `B-` tag or a tag of another type.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def _parse(tag: str) -> tuple[str, str | None]:
    """Split a tag into its prefix (`B`, `I` or `O`) and its type (None for `O` and tags that are not B-/I-)."""
    prefix, dash, kind = tag.partition("-")
    if dash and prefix in ("B", "I") and kind:
        return prefix, kind
    return "O", None


def entity_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """The entities in one tag sequence, decoded as conlleval does.

    Args:
        tags: one IOB2 (or IOB1) tag per word, e.g. `["B-PER", "I-PER", "O", "I-LOC"]`.

    Returns:
        `(type, start, end)` triples with `end` exclusive, e.g. `{("PER", 0, 2), ("LOC", 3, 4)}`.
    """
    spans = set()
    start, current = None, None
    for index, tag in enumerate(tags):
        prefix, kind = _parse(tag)
        if start is not None and (prefix != "I" or kind != current):
            spans.add((current, start, index))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, current = index, kind
    if start is not None:
        spans.add((current, start, len(tags)))
    return spans


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """Convert IOB1 tags (`B-` only between two adjacent entities of one type) to IOB2 (`B-` starts every entity).

    Args:
        tags: one IOB1 tag per word, e.g. `["I-PER", "I-PER", "B-PER", "O", "I-LOC"]`.

    Returns:
        The same entities in IOB2, e.g. `["B-PER", "I-PER", "B-PER", "O", "B-LOC"]`; valid IOB2 input is unchanged.
    """
    result = []
    previous = None
    for tag in tags:
        prefix, kind = _parse(tag)
        # An I- tag continues an entity only when the word before is inside an entity of the same type.
        result.append(f"B-{kind}" if prefix == "I" and kind != previous else tag)
        previous = kind
    return result


class EntityF1(Metric):
    """Micro-averaged entity precision, recall and F1 over all entity types, as conlleval reports them.

    The states are three counts summed over batches and, under DDP, over processes; so the score of a distributed
    run equals the score of the whole evaluation set, not an average of per-process scores.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("true_positives", "predicted", "gold"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, predictions: list[list[str]], targets: list[list[str]]) -> None:
        """Count the entities of a batch.

        Args:
            predictions: predicted tags, one sequence per sentence (one tag per word).
            targets: gold tags in the same shape.
        """
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predicted sequences but {len(targets)} gold sequences")
        true_positives = predicted = gold = 0
        for predicted_tags, gold_tags in zip(predictions, targets, strict=True):
            if len(predicted_tags) != len(gold_tags):
                raise ValueError(f"a sequence has {len(predicted_tags)} predicted tags but {len(gold_tags)} gold tags")
            predicted_spans, gold_spans = entity_spans(predicted_tags), entity_spans(gold_tags)
            true_positives += len(predicted_spans & gold_spans)
            predicted += len(predicted_spans)
            gold += len(gold_spans)
        self.true_positives += true_positives
        self.predicted += predicted
        self.gold += gold

    def compute(self) -> dict[str, torch.Tensor]:
        """Precision, recall and F1; each is 0 when its denominator is 0, as in conlleval."""
        true_positives = self.true_positives.float()
        # clamp(min=1) gives 0 for an empty denominator: the numerator is 0 then too, and no device sync is needed.
        return {
            "precision": true_positives / self.predicted.clamp(min=1),
            "recall": true_positives / self.gold.clamp(min=1),
            # 2PR / (P + R) simplifies to 2TP / (predicted + gold).
            "f1": 2 * true_positives / (self.predicted + self.gold).clamp(min=1),
        }
