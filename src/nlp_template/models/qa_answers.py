"""Start/end logits of question answering windows -> one answer string per example.

Spans are scored and chosen as Hugging Face's `QuestionAnsweringPipeline` does (transformers 4.x; its
`select_starts_ends`/`decode_spans` live on in `pipelines/document_question_answering.py`). With `n_best=1` the
answers equal the pipeline's (`top_k=1, align_to_words=False`) for the same logits; the default `n_best=20` is
closer to the pipeline's default, which keeps 12 candidates per window (and widens them to whole words):

* each window's start and end logits go through a softmax over the window's context tokens and its CLS token (the
  pipeline always keeps CLS in the softmax, in both v1 and v2 mode), then CLS is zeroed;
* a span's score is p(start) * p(end), for spans of context tokens with end >= start and at most
  `max_answer_length` tokens; each window contributes its `n_best` best spans;
* candidates with the same text (case-insensitive) are merged by adding their scores (the pipeline's
  `get_answer`): an answer found in two overlapping windows, or twice in one context, gathers both;
* the best candidate wins; ties go to the earlier window.

SQuAD v2.0 (`version_2=True`) decides "no answer" as Hugging Face's `run_qa.py` does, on logit sums: the null score
is the smallest CLS start + end logit over the example's windows, and the answer is "" when the null score minus
the best span's start + end logit exceeds `null_threshold`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax over the allowed positions; 0 elsewhere."""
    shifted = np.where(allowed, logits, -np.inf)
    exp = np.exp(shifted - shifted[allowed].max())
    return exp / exp.sum()


def _window_spans(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, cls: int, n_best: int, max_answer_length: int
) -> tuple[list[tuple[float, int, int]], float]:
    """The window's `n_best` best spans as (score, start token, end token), and its null probability."""
    context = offsets[:, 0] >= 0
    positions = np.flatnonzero(context)
    if positions.size == 0:
        return [], 0.0
    allowed = context.copy()
    allowed[cls] = True
    p_start, p_end = _softmax(start_logits, allowed), _softmax(end_logits, allowed)
    null = float(p_start[cls] * p_end[cls])
    # Band of candidate spans: row = start position, column = length - 1 (context tokens are contiguous).
    ends = positions[:, None] + np.arange(min(max_answer_length, positions.size))[None, :]
    valid = ends <= positions[-1]
    scores = np.where(valid, p_start[positions][:, None] * p_end[np.minimum(ends, positions[-1])], -1.0)
    count = min(n_best, int(valid.sum()))
    best = np.argsort(-scores, axis=None, kind="stable")[:count]
    rows, columns = np.unravel_index(best, scores.shape)
    spans = [(float(scores[r, c]), int(positions[r]), int(ends[r, c])) for r, c in zip(rows, columns, strict=True)]
    return spans, null


def _example_answer(
    context: str,
    windows: list[tuple[dict, np.ndarray, np.ndarray]],
    n_best: int,
    max_answer_length: int,
    version_2: bool,
    null_threshold: float,
) -> dict[str, Any]:
    """The answer of one example from its windows (feature, start logits, end logits)."""
    candidates: dict[str, dict[str, Any]] = {}
    null_logit, null_probability = np.inf, np.inf
    for feature, start_logits, end_logits in windows:
        offsets = np.asarray(feature["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        # Logits of a padded batch are longer than the window: positions past its offsets are padding.
        start_logits = np.asarray(start_logits, dtype=np.float64)[: len(offsets)]
        end_logits = np.asarray(end_logits, dtype=np.float64)[: len(offsets)]
        cls = int(feature.get("cls_index", 0))
        spans, null = _window_spans(start_logits, end_logits, offsets, cls, n_best, max_answer_length)
        null_logit = min(null_logit, float(start_logits[cls] + end_logits[cls]))
        null_probability = min(null_probability, null)
        for score, start, end in spans:
            begin, finish = int(offsets[start, 0]), int(offsets[end, 1])
            key = context[begin:finish].lower()
            if key in candidates:
                candidates[key]["score"] += score
            else:
                logit_sum = float(start_logits[start] + end_logits[end])
                answer = context[begin:finish]
                candidates[key] = {"answer": answer, "start": begin, "end": finish, "score": score, "logits": logit_sum}
    if not candidates:
        return {"answer": "", "start": 0, "end": 0, "score": 0.0}
    best = max(candidates.values(), key=lambda candidate: candidate["score"])  # max keeps the first of equals
    if version_2 and null_logit - best["logits"] > null_threshold:
        return {"answer": "", "start": 0, "end": 0, "score": float(null_probability)}
    return {"answer": best["answer"], "start": best["start"], "end": best["end"], "score": float(best["score"])}


def best_answers(
    contexts: list[str],
    features: list[dict],
    start_logits: list[np.ndarray],
    end_logits: list[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    version_2: bool = False,
    null_threshold: float = 0.0,
) -> list[dict]:
    """The best answer of every example, from the logits of its windows.

    Args:
        contexts: the examples' contexts; the result has one answer per context, in this order.
        features: one dict per window with `example_index` (index into `contexts`), `offset_mapping` ([start, end]
            character offsets of context tokens, [-1, -1] for the others) and optionally `cls_index` (default 0).
        start_logits: per window, the start logits (positions past its `offset_mapping` are ignored).
        end_logits: per window, the end logits.
        n_best: best spans per window that become candidates (they matter only through merging equal texts).
        max_answer_length: longest answer in tokens.
        version_2: whether "no answer" is possible (SQuAD v2.0).
        null_threshold: in v2 mode, answer "" when null logit sum - best span logit sum exceeds this.

    Returns:
        Per example `{"answer": str, "start": int, "end": int, "score": float}` with `answer ==
        context[start:end]`, `start`/`end` character offsets and `score` the (merged) span probability. "No answer"
        is `{"answer": "", "start": 0, "end": 0}` (as in the pipeline) with the smallest null probability of its
        windows as score, or with score 0.0 when no window had a valid span.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best ({n_best}) and max_answer_length ({max_answer_length}) must be at least 1")
    if not len(features) == len(start_logits) == len(end_logits):
        raise ValueError(f"{len(features)} features but {len(start_logits)} start and {len(end_logits)} end logits")
    windows: list[list[tuple[dict, np.ndarray, np.ndarray]]] = [[] for _ in contexts]
    for feature, starts, ends in zip(features, start_logits, end_logits, strict=True):
        windows[int(feature["example_index"])].append((feature, starts, ends))
    return [
        _example_answer(context, example, n_best, max_answer_length, version_2, null_threshold)
        for context, example in zip(contexts, windows, strict=True)
    ]
