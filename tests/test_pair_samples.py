"""The embedded sentence-pair data: deterministic, balanced, correctly labelled, and not solvable from one side."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import pytest

from nlp_template.data.samples.pairs import LABELS, SYNONYMS, PairSamples
from nlp_template.data.samples.sentiment import POSITIVE, SUBJECTS


@pytest.fixture(scope="module")
def pairs():
    return PairSamples().load()


def test_deterministic_and_seeded():
    small = PairSamples(num_train=50, num_validation=10, num_test=10)
    assert small.load()["train"].to_list() == small.load()["train"].to_list()
    assert PairSamples(num_train=50, seed=7).load()["train"]["premise"] != small.load()["train"]["premise"]
    assert small.fingerprint() != PairSamples(num_train=50, num_validation=10, num_test=10, seed=7).fingerprint()


def test_sizes_and_balance(pairs):
    assert [pairs[split].num_rows for split in ("train", "validation", "test")] == [4000, 500, 1000]
    counts = Counter(pairs["train"]["label"])
    assert set(counts) == set(LABELS)
    assert all(abs(count / 4000 - 1 / 3) < 0.03 for count in counts.values())


def _polarity(clause: str) -> int:
    sign = 1 if any(word in POSITIVE for word in clause.split()) else -1
    return -sign if re.search(r"\b(not|never|far from|hardly)\b", clause) else sign


def _oracle(premise: str, hypothesis: str) -> str:
    """The label a reader gets by comparing the sentences: find the hypothesis' aspect in the premise."""
    subject = next(subject for subject in SUBJECTS if subject in hypothesis)
    aspect = next((group for group in SYNONYMS if subject in group), {subject})
    clauses = re.split(r" , but | and | ; however , | , |although ", premise.removesuffix(" ."))
    matching = [clause for clause in clauses if any(name in clause for name in aspect)]
    if not matching:
        return "neutral"
    return "entailment" if _polarity(matching[0]) == _polarity(hypothesis) else "contradiction"


def test_labels_follow_from_comparing_the_sentences(pairs):
    test = pairs["test"]
    assert [_oracle(p, h) for p, h in zip(test["premise"], test["hypothesis"], strict=True)] == test["label"]


def _accuracy(predictions: list[str], labels: list[str]) -> float:
    return sum(p == g for p, g in zip(predictions, labels, strict=True)) / len(labels)


def _naive_bayes(train, test, column: str) -> float:
    """Test accuracy of multinomial naive Bayes over the words of one column."""
    words = {label: Counter() for label in LABELS}
    for text, label in zip(train[column], train["label"], strict=True):
        words[label].update(text.split())
    vocabulary = set().union(*words.values())

    def score(text: str, label: str) -> float:
        total = sum(words[label].values()) + len(vocabulary)
        return sum(math.log((words[label][word] + 1) / total) for word in text.split())

    guesses = [max(LABELS, key=lambda label: score(text, label)) for text in test[column]]
    return _accuracy(guesses, test["label"])


def test_one_side_alone_is_near_chance(pairs):
    train, test = pairs["train"], pairs["test"]
    majority = Counter(train["label"]).most_common(1)[0][0]
    # 1. The most frequent label of each hypothesis string seen in training.
    by_string = defaultdict(Counter)
    for hypothesis, label in zip(train["hypothesis"], train["label"], strict=True):
        by_string[hypothesis][label] += 1
    guess = [by_string[h].most_common(1)[0][0] if h in by_string else majority for h in test["hypothesis"]]
    string_accuracy = _accuracy(guess, test["label"])
    # 2. Naive Bayes over the bag of words of one side (the premise alone carries no label either).
    bayes_accuracy = _naive_bayes(train, test, "hypothesis")
    premise_accuracy = _naive_bayes(train, test, "premise")
    print(
        f"hypothesis string {string_accuracy:.3f}, hypothesis words {bayes_accuracy:.3f}, premise words"
        f" {premise_accuracy:.3f}"
    )
    assert max(string_accuracy, bayes_accuracy, premise_accuracy) < 0.40  # chance is 1/3
