"""Question + context -> model inputs for extractive question answering, as Hugging Face's `run_qa.py` builds them.

A context longer than the model's input is cut into overlapping windows (features): each window holds the whole
question and a stretch of context; consecutive windows share `doc_stride` context tokens, so an answer cut by one
window's edge lies whole in the next. Training targets are the token indices of the answer's first and last token
in each window that holds the whole answer, and the CLS token (index 0 for BERT/RoBERTa-style tokenizers) in the
other windows and for unanswerable questions. Offsets map tokens back to characters of the context for decoding.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from nlp_template.utils.errors import UserInputError

# Fewest positions a window needs besides the context: a pair's special tokens ([CLS] q [SEP] c [SEP] has 3,
# RoBERTa's <s> q </s></s> c </s> has 4) and at least one question token.
_RESERVED = 5


def check_stride(max_length: int, doc_stride: int) -> None:
    """Fail unless `doc_stride` leaves room for new context in every window of `max_length` tokens.

    The tokenizer needs the overlap to be shorter than the context part of a window, which is `max_length` minus
    the question and special tokens; a stride this close to `max_length` fails for any question (the exact bound,
    which depends on each question's length, is checked by `encode_windows`).
    """
    if doc_stride < 0:
        raise UserInputError(f"data.doc_stride={doc_stride} is negative; set it to 0 or more, e.g. {max_length // 4}")
    if doc_stride >= max_length - _RESERVED:
        raise UserInputError(
            f"data.doc_stride={doc_stride} leaves no room for new context in windows of data.max_length={max_length}"
            f" tokens (the question and special tokens need some too); set data.doc_stride to about a quarter of"
            f" data.max_length, e.g. data.doc_stride={max_length // 4}"
        )


def _check_room(tokenizer: PreTrainedTokenizerBase, questions: list[str], max_length: int, doc_stride: int) -> None:
    """Fail when a question leaves no context tokens beyond the stride (the tokenizer would panic or fail)."""
    special = tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for question, length in zip(questions, lengths, strict=True):
        room = max_length - special - length
        if room <= doc_stride:
            left = f"only {room} context token(s), not more than data.doc_stride={doc_stride}," if room > 0 else "no"
            raise UserInputError(
                f"question {question[:60]!r} has {length} tokens, which leaves {left} room for context in windows of"
                f" data.max_length={max_length}; raise data.max_length (or lower data.doc_stride) or shorten the"
                " question"
            )


def _answer_positions(
    offsets: list[tuple[int, int]], sequence_ids: list[int | None], context_id: int, answer: dict | None, cls: int
) -> tuple[int, int]:
    """The answer's first and last token in this window, or (cls, cls) when it is not wholly inside (run_qa.py)."""
    if not answer or not answer["answer_start"] or context_id not in sequence_ids:
        return cls, cls
    start_char = answer["answer_start"][0]
    end_char = start_char + len(answer["text"][0])
    first = sequence_ids.index(context_id)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(context_id)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return cls, cls
    while first < len(offsets) and sequence_ids[first] == context_id and offsets[first][0] <= start_char:
        first += 1
    while last >= 0 and sequence_ids[last] == context_id and offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    contexts: list[str],
    answers: list[dict] | None,
    max_length: int,
    doc_stride: int,
    pad_on_right: bool = True,
) -> dict[str, list]:
    """Tokenize question/context pairs into windows of at most `max_length` tokens overlapping by `doc_stride`.

    Args:
        tokenizer: a fast (Rust) Hugging Face tokenizer; offsets and overflowing windows need one.
        questions: one question per example (leading whitespace is removed: it only wastes tokens).
        contexts: one context per example.
        answers: one `{"text": [...], "answer_start": [...]}` per example (the first answer is the target; empty
            lists: unanswerable), or None for inputs without answers (prediction).
        max_length: tokens per window, question and special tokens included.
        doc_stride: context tokens shared by consecutive windows of one example.
        pad_on_right: question first and context second (False for models that pad on the left, e.g. XLNet).

    Returns:
        Per window: the tokenizer's `input_ids`, `attention_mask` (and `token_type_ids` when it makes them),
        `example_index` (position of its example in the inputs), `offset_mapping` ([start, end] character offsets
        into the context for context tokens, [-1, -1] for the others), `length` (tokens) and, with `answers`,
        `start_positions` and `end_positions`.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise UserInputError(
            f"question answering needs a fast tokenizer (character offsets, overflowing windows); "
            f"{type(tokenizer).__name__} is not one. Use a model with a tokenizer.json (or a trained tokenizer)"
        )
    check_stride(max_length, doc_stride)
    questions = [question.lstrip() for question in questions]
    contexts = list(contexts)  # the tokenizer takes lists only, not e.g. a `datasets` column
    if not questions:
        return {"input_ids": [], "attention_mask": [], "example_index": [], "offset_mapping": [], "length": []}
    _check_room(tokenizer, questions, max_length, doc_stride)
    encoded = tokenizer(
        questions if pad_on_right else contexts,
        contexts if pad_on_right else questions,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_id = 1 if pad_on_right else 0
    dropped = ("offset_mapping", "overflow_to_sample_mapping")
    result: dict[str, Any] = {key: value for key, value in encoded.items() if key not in dropped}
    result.update(example_index=list(encoded["overflow_to_sample_mapping"]), offset_mapping=[], length=[])
    if answers is not None:
        result.update(start_positions=[], end_positions=[])
    for window, offsets in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(window)
        result["offset_mapping"].append(
            [
                list(offset) if kind == context_id else [-1, -1]
                for offset, kind in zip(offsets, sequence_ids, strict=True)
            ]
        )
        input_ids = encoded["input_ids"][window]
        result["length"].append(len(input_ids))
        if answers is not None:
            cls = input_ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in input_ids else 0
            answer = answers[result["example_index"][window]]
            start, end = _answer_positions(offsets, sequence_ids, context_id, answer, cls)
            result["start_positions"].append(start)
            result["end_positions"].append(end)
    return result
