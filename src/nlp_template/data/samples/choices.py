"""Embedded multiple-choice data with a known answer: where did someone put a thing.

A context states one or two facts ("Mia put the key in the drawer. Tom put the apple in the basket."); the question
asks about one of them ("Where is the apple?"); the four endings are places, one of them the right one. The
distractors include the places of the other facts: picking a place the context names is right for every one-fact
question and half of the two-fact ones (about 75% in all); beyond that the model has to bind the thing to its place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Dataset

from nlp_template.data.samples.base import GeneratedSamples

PEOPLE = ["Mia", "Tom", "Ana", "Leo", "Sara", "Omar", "Ivy", "Ben", "Nina", "Raj", "Eva", "Sam"]
THINGS = ["key", "apple", "book", "ball", "cup", "phone", "coin", "letter", "hat", "toy", "lamp", "map"]
PLACES = ["drawer", "basket", "box", "garden", "kitchen", "car", "bag", "closet", "attic", "garage", "shelf",
          "office"]  # fmt: skip


@dataclass
class ChoiceSamples(GeneratedSamples):
    """Context, question, four endings and the index of the right one.

    Args:
        num_choices: endings per question.
        max_facts: facts per context (one up to this many).
    """

    kind: ClassVar[str] = "choices-v1"
    num_choices: int = 4
    max_facts: int = 2

    def generate(self, rng: random.Random, split: str, size: int, shared: Any) -> Dataset:
        """`size` rows with `context`, `question`, `endings` (a list) and `label` (an index)."""
        rows = [self.example(rng) for _ in range(size)]
        return Dataset.from_dict({key: [row[key] for row in rows] for key in ("context", "question", "endings",
                                                                              "label")})  # fmt: skip

    def example(self, rng: random.Random) -> dict[str, Any]:
        """One row: facts about distinct things in distinct places, a question about one of them."""
        count = rng.randint(1, self.max_facts)
        people, things = rng.sample(PEOPLE, count), rng.sample(THINGS, count)
        places = rng.sample(PLACES, max(count, self.num_choices))
        context = " ".join(f"{person} put the {thing} in the {place}." for person, thing, place in
                           zip(people, things, places, strict=False))  # fmt: skip
        asked = rng.randrange(count)
        endings = [places[asked], *rng.sample([p for p in places if p != places[asked]], self.num_choices - 1)]
        rng.shuffle(endings)
        return {
            "context": context,
            "question": f"Where is the {things[asked]}?",
            "endings": [f"in the {place}" for place in endings],
            "label": endings.index(places[asked]),
        }
