"""Embedded review data with a score and a set of labels per text: regression and multi-label runs, offline.

Each review gives an opinion on one to three aspects of a film (story, acting, music, visuals), some through a
negation ("the soundtrack is not dull"), so words alone do not decide. Two targets per review:

- `rating`: a float from 1 to 5, the mean opinion (an intensified one counts 1.5 times) mapped onto the scale
  (regression; the fractions make the column a float column, which the data module reads as regression);
- `praised`: the aspects spoken of positively, a list that may be empty (multi-label).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Dataset

from nlp_template.data.samples.base import GeneratedSamples
from nlp_template.data.samples.sentiment import INTENSIFIERS, NEGATIVE, POSITIVE

ASPECTS = {
    "story": ["the plot", "the story", "the script", "the ending"],
    "acting": ["the acting", "the cast", "the lead performance", "the dialogue delivery"],
    "music": ["the soundtrack", "the score", "the songs", "the music"],
    "visuals": ["the camera work", "the visuals", "the sets", "the photography"],
}
NEGATIONS = ["{s} is not {a}", "{s} was never {a}", "{s} is far from {a}", "nobody would call {s} {a}"]
PLAIN = ["{s} is {a}", "{s} was {a}", "i found {s} {a}", "{s} felt {a}"]


def _review(rng: random.Random) -> tuple[str, float, list[str]]:
    """A review, its rating (1-5) and its praised aspects."""
    aspects = rng.sample(sorted(ASPECTS), rng.randint(1, 3))
    clauses, weights, praised = [], [], []
    for aspect in aspects:
        polarity = rng.choice([1, -1])
        negated = rng.random() < 0.3
        adjective = rng.choice(POSITIVE if polarity * (-1 if negated else 1) > 0 else NEGATIVE)
        weight = 1.0
        if not negated and rng.random() < 0.3:
            adjective, weight = f"{rng.choice(INTENSIFIERS)} {adjective}", 1.5
        pattern = rng.choice(NEGATIONS if negated else PLAIN)
        clauses.append(pattern.format(s=rng.choice(ASPECTS[aspect]), a=adjective))
        weights.append(polarity * weight)
        if polarity > 0:
            praised.append(aspect)
    opinion = sum(weights) / (1.5 * len(weights))  # -1 .. 1
    return " , and ".join(clauses) + " .", round(3 + 2 * opinion, 3), sorted(praised)


@dataclass
class ReviewSamples(GeneratedSamples):
    """Source of the embedded review data: columns `text`, `rating` (float) and `praised` (list of aspects).

    Args:
        num_train: training examples.
        num_validation: validation examples.
        num_test: test examples.
        seed: generator seed.
    """

    kind: ClassVar[str] = "review-samples-v1"
    num_train: int = 4000
    num_validation: int = 500
    num_test: int = 500
    seed: int = 4321

    def generate(self, rng: random.Random, split: str, size: int, shared: Any) -> Dataset:
        """One split: columns `text`, `rating` (a float) and `praised` (a list of labels)."""
        rows = [_review(rng) for _ in range(size)]
        return Dataset.from_dict({"text": [r[0] for r in rows], "rating": [r[1] for r in rows],
                                  "praised": [r[2] for r in rows]})  # fmt: skip
