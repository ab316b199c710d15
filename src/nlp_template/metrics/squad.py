"""Exact match and F1 for extractive question answering, as the official SQuAD v1.1 and v2.0 scripts compute them.

Both compare a predicted answer string with every gold answer after normalising them (lower case, punctuation and
the articles a/an/the removed, whitespace collapsed) and keep the best match. Exact match is 1 when the normalised
strings are equal; F1 is the harmonic mean of token precision and recall (tokens counted with multiplicity).

An unanswerable question (SQuAD v2.0) has no gold answer; it counts as the single gold answer "" so that only an
empty prediction scores, and F1 with an empty side is 1 when both sides are empty, else 0 (v2.0's `compute_f1`).
As in v2.0's script, gold answers that normalise to nothing are dropped first; for SQuAD v1.1 data, which has none,
the scores equal v1.1's.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, remove punctuation, remove the articles a/an/the and collapse whitespace (the official order)."""
    text = text.lower()
    text = "".join(character for character in text if character not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(answers: list[str]) -> list[str]:
    """The gold answers that count: those that normalise to something, or [""] (unanswerable) when none does."""
    return [answer for answer in answers if normalize_answer(answer)] or [""]


def _f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    """Token-overlap F1 of one prediction against one gold answer, both already normalised and split."""
    if not prediction_tokens or not gold_tokens:
        return float(prediction_tokens == gold_tokens)
    same = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: list[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0.

    Args:
        prediction: the predicted answer ("" for "no answer").
        answers: the gold answers; an empty list means the question has no answer.
    """
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in _golds(answers)))


def f1_score(prediction: str, answers: list[str]) -> float:
    """The best token-overlap F1 (0-1) of the prediction against any gold answer.

    Args:
        prediction: the predicted answer ("" for "no answer").
        answers: the gold answers; an empty list means the question has no answer.
    """
    tokens = normalize_answer(prediction).split()
    return max(_f1(tokens, normalize_answer(gold).split()) for gold in _golds(answers))


def squad_scores(predictions: dict[str, str], answers: dict[str, list[str]]) -> dict[str, float]:
    """Exact match and F1 in percent (0-100), averaged over the questions in `answers`.

    Args:
        predictions: question id -> predicted answer; a question without a prediction counts as answered "".
        answers: question id -> gold answers (empty list: unanswerable).

    Returns:
        `{"exact_match": ..., "f1": ...}`; both 0.0 when `answers` is empty.
    """
    if not answers:
        return {"exact_match": 0.0, "f1": 0.0}
    total_em = total_f1 = 0.0
    for question_id, golds in answers.items():
        prediction = predictions.get(question_id, "")
        total_em += exact_match(prediction, golds)
        total_f1 += f1_score(prediction, golds)
    return {"exact_match": 100.0 * total_em / len(answers), "f1": 100.0 * total_f1 / len(answers)}
