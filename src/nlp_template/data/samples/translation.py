"""Embedded translation data with a known answer: English-like sentences into an invented language.

Source sentences come from a small grammar ("the quick fox sees a red car near the old bridge"). The target maps
every word through a fixed invented lexicon (drawn once from the seed) and puts adjectives after their noun, as
French does ("lo fox-word quick-word ..."): a word-level mapping plus a local reordering, so the target is fully
determined by the source, a trained model can reach a BLEU near 100, and a copy or a word-by-word gloss cannot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from datasets import Dataset

from nlp_template.data.samples.base import GeneratedSamples

DETERMINERS = ["the", "a", "this", "every"]
ADJECTIVES = ["quick", "red", "old", "small", "bright", "quiet", "heavy", "young", "green", "cold", "tall", "dark",
              "happy", "empty", "strong", "soft", "loud", "clean", "warm", "busy"]  # fmt: skip
NOUNS = ["fox", "car", "bridge", "river", "teacher", "garden", "train", "child", "house", "bird", "window",
         "doctor", "market", "boat", "forest", "letter", "dog", "city", "lamp", "farmer", "road", "song", "table",
         "island"]  # fmt: skip
VERBS = ["sees", "finds", "paints", "follows", "carries", "watches", "builds", "moves", "cleans", "opens", "visits",
         "likes"]  # fmt: skip
PREPOSITIONS = ["near", "behind", "under", "beside", "across"]
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "du", "fe", "go", "hi", "ju", "be"]


def _lexicon(rng: random.Random) -> dict[str, str]:
    """One invented word per English word, all distinct (two or three syllables; determiners one)."""
    words: dict[str, str] = {}
    used: set[str] = set()
    for word in DETERMINERS + ADJECTIVES + NOUNS + VERBS + PREPOSITIONS:
        syllables = 1 if word in DETERMINERS else rng.choice((2, 3))
        while (invented := "".join(rng.choice(SYLLABLES) for _ in range(syllables))) in used:
            syllables += word in DETERMINERS  # four one-syllable determiners can clash: grow until distinct
        used.add(invented)
        words[word] = invented
    return words


def _noun_phrase(rng: random.Random, lexicon: dict[str, str], max_adjectives: int) -> tuple[list[str], list[str]]:
    """(source words, target words): determiner, adjectives, noun -> determiner, noun, adjectives."""
    determiner, noun = rng.choice(DETERMINERS), rng.choice(NOUNS)
    adjectives = rng.sample(ADJECTIVES, rng.randint(0, max_adjectives))
    source = [determiner, *adjectives, noun]
    target = [lexicon[determiner], lexicon[noun], *(lexicon[adjective] for adjective in adjectives)]
    return source, target


def translation_pair(rng: random.Random, lexicon: dict[str, str]) -> tuple[str, str]:
    """One (source, target) sentence pair."""
    subject, subject_target = _noun_phrase(rng, lexicon, 2)
    verb = rng.choice(VERBS)
    obj, obj_target = _noun_phrase(rng, lexicon, 2)
    source, target = [*subject, verb, *obj], [*subject_target, lexicon[verb], *obj_target]
    if rng.random() < 0.5:  # an optional place: preposition + noun phrase
        preposition = rng.choice(PREPOSITIONS)
        place, place_target = _noun_phrase(rng, lexicon, 1)
        source += [preposition, *place]
        target += [lexicon[preposition], *place_target]
    return " ".join(source), " ".join(target)


@dataclass
class TranslationSamples(GeneratedSamples):
    """Source of the embedded translation data set: columns `source` and `target`, deterministic for a seed.

    Args:
        num_train: training pairs.
        num_validation: validation pairs.
        num_test: test pairs.
        seed: generator seed (also of the invented lexicon; independent of the training seed).
    """

    kind: ClassVar[str] = "translation-samples-v1"
    num_train: int = 4000
    num_validation: int = 300
    num_test: int = 300
    seed: int = 1234

    def begin(self, rng: random.Random) -> dict[str, str]:
        """The invented lexicon every split shares."""
        return _lexicon(rng)

    def generate(self, rng: random.Random, split: str, size: int, shared: Any) -> Dataset:
        """One split of `size` sentence pairs."""
        pairs = [translation_pair(rng, shared) for _ in range(size)]
        return Dataset.from_dict({"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})
