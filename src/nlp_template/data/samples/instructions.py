"""Embedded instruction data with checkable answers: chat conversations for supervised fine-tuning (SFT).

Each conversation asks for something with exactly one right answer, so a model's reply can be scored by exact
match: adding or subtracting two numbers, reversing a word, writing it in capitals, counting its letters, and
looking up a value in a list given in the message (`kim=red, bo=blue. What is bo?`). Some conversations start
with a system prompt, some have two question/answer turns (both answers are trained; exact match scores the last
one).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Dataset

from nlp_template.data.samples.base import GeneratedSamples
from nlp_template.utils.errors import UserInputError

# The string tasks draw from these 50 words: a small model learns each word's answers within minutes on a CPU, while
# random strings need the copying mechanism (induction heads) that takes it far longer (measured: test exact match
# 0.00 on reversing random 3-7 letter strings after 625 steps). The sums and look-ups are new combinations at test.
WORDS = ["lamp", "garden", "river", "apple", "stone", "cloud", "basket", "tiger", "candle", "window", "pepper",
         "rocket", "silver", "forest", "bread", "piano", "mirror", "castle", "honey", "ladder", "orange", "pencil",
         "rabbit", "planet", "bottle", "winter", "summer", "yellow", "purple", "guitar", "butter", "monkey",
         "island", "jacket", "kitten", "doctor", "circle", "bridge", "carpet", "dragon", "flower", "hammer",
         "mango", "pocket", "shadow", "spider", "ticket", "violin", "wallet", "zebra"]  # fmt: skip
NAMES = ["ana", "bo", "kim", "leo", "mia", "raj", "sam", "tom", "eva", "ivy"]
COLORS = ["red", "blue", "green", "black", "white", "pink", "gray", "gold"]
SYSTEM_PROMPTS = ["You are a helpful assistant. Answer with the result only.", "Reply briefly."]


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"What is {a} + {b}?", str(a + b)


def _subtract(rng: random.Random) -> tuple[str, str]:
    a = rng.randint(10, 99)
    b = rng.randint(0, a)
    return f"What is {a} - {b}?", str(a - b)


def _reverse(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"Reverse the word: {word}", word[::-1]


def _capitals(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"Write in capitals: {word}", word.upper()


def _count(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"How many letters are in {word}?", str(len(word))


def _lookup(rng: random.Random) -> tuple[str, str]:
    names = rng.sample(NAMES, 3)
    colors = [rng.choice(COLORS) for _ in names]
    asked = rng.randrange(len(names))
    listing = ", ".join(f"{name}={color}" for name, color in zip(names, colors, strict=True))
    return f"{listing}. What is {names[asked]}?", colors[asked]


TASKS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "add": _add, "subtract": _subtract, "reverse": _reverse, "capitals": _capitals, "count": _count,
    "lookup": _lookup,
}  # fmt: skip


@dataclass
class InstructionSamples(GeneratedSamples):
    """Conversations (`messages`: a list of `{role, content}`) and the family of their last question (`task`).

    Args:
        tasks: task families to draw from (`add`, `subtract`, `reverse`, `capitals`, `count`, `lookup`); None: all.
        system_fraction: share of conversations that start with a system prompt.
        two_turn_fraction: share of conversations with two question/answer turns.
    """

    kind: ClassVar[str] = "instructions-v2"  # v2: words from WORDS (v1: random strings)
    num_train: int = 4000
    num_validation: int = 200
    num_test: int = 400
    tasks: list[str] | None = None
    system_fraction: float = 0.3
    two_turn_fraction: float = 0.3

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks or []) - set(TASKS))
        if unknown:
            raise UserInputError(f"unknown instruction task(s) {unknown}; choose from {sorted(TASKS)}")
        self.tasks = list(self.tasks) if self.tasks else None

    def generate(self, rng: random.Random, split: str, size: int, shared: Any) -> Dataset:
        """`size` conversations with `messages` and `task`."""
        rows = [self.conversation(rng) for _ in range(size)]
        return Dataset.from_dict({"messages": [row[0] for row in rows], "task": [row[1] for row in rows]})

    def conversation(self, rng: random.Random) -> tuple[list[dict[str, str]], str]:
        """One conversation: an optional system prompt, then one or two question/answer turns."""
        families = self.tasks or sorted(TASKS)
        messages = []
        if rng.random() < self.system_fraction:
            messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        turns = 2 if rng.random() < self.two_turn_fraction else 1
        for _ in range(turns):
            task = rng.choice(families)
            question, answer = TASKS[task](rng)
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        return messages, task
