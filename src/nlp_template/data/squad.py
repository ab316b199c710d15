"""SQuAD JSON files as a data source, and the checks every question answering split goes through.

`SquadSource` reads the official SQuAD v1.1/v2.0 layout (articles -> paragraphs -> questions) into rows of the
Hugging Face `squad` layout: `id`, `title`, `question`, `context` and `answers` = `{"text": [...], "answer_start":
[...]}` (empty lists for an unanswerable v2.0 question). Splits without a file can be carved from train by
paragraph: questions about one context then never sit on both sides of a split, which would leak answers into
evaluation.

`check_qa_examples` checks rows of that layout from any source (SQuAD JSON, JSONL/Parquet files, the Hub, the
embedded generator) and fails with one line that names the question and the fix.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict

from nlp_template.data.split_files import SplitFiles
from nlp_template.utils.errors import UserInputError

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "question": datasets.Value("string"),
        "context": datasets.Value("string"),
        "answers": {
            "text": datasets.List(datasets.Value("string")),
            "answer_start": datasets.List(datasets.Value("int32")),
        },
    }
)
LAYOUT = (
    '{"version": ..., "data": [{"title": ..., "paragraphs": [{"context": ..., "qas": [{"id": ..., "question": ...,'
    ' "answers": [{"text": ..., "answer_start": ...}], "is_impossible": ...}]}]}]}'
)


class _LayoutError(Exception):
    """Where a SQuAD file departs from the layout (turned into a UserInputError that names the file)."""


def _field(node: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """`node[key]`, which must exist and be of type `kind`."""
    if not isinstance(node, dict) or key not in node:
        raise _LayoutError(f"{where} has no '{key}'")
    value = node[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _LayoutError(f"{where}.{key} is {type(value).__name__}, not {names}")
    return value


def _question(qa: Any, where: str) -> dict[str, Any]:
    """One entry of `qas` as a row (without title and context)."""
    if not isinstance(qa, dict):
        raise _LayoutError(f"{where} is {type(qa).__name__}, not an object")
    answers: dict[str, list] = {"text": [], "answer_start": []}
    if not qa.get("is_impossible", False):  # v2.0 lists no answers for these (its guesses are "plausible_answers")
        for number, answer in enumerate(_field(qa, "answers", list, where)):
            answers["text"].append(_field(answer, "text", str, f"{where}.answers[{number}]"))
            answers["answer_start"].append(_field(answer, "answer_start", int, f"{where}.answers[{number}]"))
    question_id = _field(qa, "id", (str, int), where)
    return {"id": str(question_id), "question": _field(qa, "question", str, where), "answers": answers}


def _read_squad(text: str) -> list[list[dict[str, Any]]]:
    """The questions of a SQuAD JSON document as rows, one list per paragraph (raises `_LayoutError`)."""
    document = json.loads(text)
    paragraphs = []
    for a, article in enumerate(_field(document, "data", list, "the top level")):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            qas = _field(paragraph, "qas", list, where)
            rows = [_question(qa, f"{where}.qas[{q}]") for q, qa in enumerate(qas)]
            paragraphs.append([{"title": str(title), "context": context, **row} for row in rows])
    return paragraphs


@dataclass
class SquadSource(SplitFiles):
    """SQuAD v1.1/v2.0 JSON files, one per split, read into rows of the Hugging Face `squad` layout.

    Args:
        train: path of the training file (required).
        validation: path of the validation file.
        test: path of the test file.
        holdout: split -> share of train's paragraphs to carve into it when that split has no file, e.g.
            `{"validation": 0.1, "test": 0.1}`. Whole paragraphs move, so no context is in two splits.
        seed: seed of the paragraph shuffle behind `holdout`.
    """

    holdout: dict[str, float] | None = None
    seed: int = 0

    def _holdout(self) -> dict[str, float]:
        """The splits to carve from train and their shares, checked; splits with their own file are left out."""
        shares = {str(split): share for split, share in dict(self.holdout or {}).items()}
        unknown = sorted(set(shares) - {"validation", "test"})
        if unknown:
            raise UserInputError(f"data.source.holdout has split(s) {unknown}; use validation and/or test")
        for split, share in shares.items():
            if not isinstance(share, (int, float)) or not 0 < share < 1:
                raise UserInputError(f"data.source.holdout.{split}={share} is not a share; use a number in (0, 1)")
        if sum(shares.values()) >= 1:
            raise UserInputError(f"data.source.holdout shares add up to {sum(shares.values())}; keep them below 1")
        wanted = [split for split in ("validation", "test") if split in shares and not getattr(self, split)]
        return {split: shares[split] for split in wanted}

    def load(self) -> DatasetDict:
        """Read every configured file; carve the `holdout` splits from train by paragraph."""
        holdout = self._holdout()
        paragraphs = {split: self._read(split, path) for split, path in self.paths().items()}
        if holdout:
            paragraphs.update(_carve(paragraphs["train"], holdout, self.seed))
        result = {}
        for split, groups in paragraphs.items():
            rows = [row for group in groups for row in group]
            columns = {name: [row[name] for row in rows] for name in FEATURES}
            result[split] = Dataset.from_dict(columns, features=FEATURES)
        return DatasetDict(result)

    def fingerprint(self) -> str:
        """A hash of the files' contents and of the holdout settings."""
        holdout = sorted(self._holdout().items())
        return f"squad:{self.files_hash()}:{holdout}:{self.seed if holdout else ''}"

    def _read(self, split: str, path: Path) -> list[list[dict[str, Any]]]:
        hint = (f"expected SQuAD JSON: {LAYOUT}. Rows with question/context/answers columns (JSONL, Parquet) go"
                " through data=files instead")  # fmt: skip
        try:
            paragraphs = _read_squad(self.text(split, path))
        except json.JSONDecodeError as error:
            raise UserInputError(f"{split} file {path} is not valid JSON ({error.msg}, line {error.lineno});"
                                 f" {hint}") from error  # fmt: skip
        except _LayoutError as error:
            raise UserInputError(f"{split} file {path} is not SQuAD JSON: {error}; {hint}") from error
        if not any(paragraphs):
            raise UserInputError(f"{split} file {path} has no questions; {hint}")
        return paragraphs


def _carve(train: list[list[dict]], shares: dict[str, float], seed: int) -> dict[str, list[list[dict]]]:
    """Move whole contexts from train to the holdout splits; every split keeps the file's order of paragraphs."""
    by_context: dict[str, list[int]] = {}
    for index, group in enumerate(train):
        if group:  # two paragraphs with the same text are one context: they must land in the same split
            by_context.setdefault(group[0]["context"], []).append(index)
    contexts = list(by_context.values())
    order = list(range(len(contexts)))
    random.Random(seed).shuffle(order)
    taken = {}
    position = 0
    for split, share in shares.items():
        count = max(1, round(share * len(contexts)))
        taken[split] = sorted(i for c in order[position : position + count] for i in contexts[c])
        position += count
    if position >= len(contexts):
        raise UserInputError(
            f"the train file has only {len(contexts)} distinct paragraphs, too few to hold out {shares} of them and"
            " keep some for training; give validation/test files or lower data.source.holdout"
        )
    held = {i for indices in taken.values() for i in indices}
    result = {split: [train[i] for i in indices] for split, indices in taken.items()}
    result["train"] = [group for i, group in enumerate(train) if i not in held]
    return result


# ------------------------------------------------------------------------------------------------ row checks
def _name(ids: list | None, row: int) -> str:
    """How an error names a question: its id, or its row number (1 = first example) when there is no id column."""
    return f"question '{ids[row]}'" if ids is not None else f"question in row {row + 1} (1 = first example)"


def _blank(values: pa.ChunkedArray) -> list[int]:
    """Rows whose string is missing or only whitespace (Arrow: runs on every split of every run)."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return [i for i, value in enumerate(values.to_pylist()) if not isinstance(value, str) or not value.strip()]
    return pc.indices_nonzero(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True)).to_pylist()


def check_qa_examples(split: str, data: Dataset, version_2: bool, columns: dict[str, str]) -> None:
    """Fail with one line at the first broken question of a split in the `squad` layout.

    Args:
        split: the split's name, for the message.
        data: the split.
        version_2: whether questions without an answer are allowed (SQuAD v2.0).
        columns: role (`id`, `question`, `context`, `answers`) -> column name. The id column may be left out or
            be absent (questions are then named by row number); a role left out is not checked, so prediction
            inputs without answers pass `columns` without `answers`.
    """
    for role, column in columns.items():
        if role != "id" and column not in data.column_names:
            raise UserInputError(
                f"{split} split has no {role} column '{column}'; its columns are {data.column_names}. Set"
                f" data.{role}_column=<one of them>"
            )
    table = data.with_format("arrow")
    ids = table[columns["id"]].to_pylist() if columns.get("id") in data.column_names else None
    for role in ("question", "context"):
        if role in columns:
            empty = _blank(table[columns[role]])
            if empty:
                more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
                raise UserInputError(f"{split} {_name(ids, empty[0])} has an empty {role}{more}; fill it in or"
                                     " remove the question")  # fmt: skip
    if "answers" in columns and "context" in columns:
        answers = table[columns["answers"]].to_pylist()
        _check_answers(split, table[columns["context"]].to_pylist(), answers, ids, version_2)


def _check_answers(split: str, contexts: list[str], answers: list[Any], ids: list | None, version_2: bool) -> None:
    """Every answer text sits at its answer_start; no question without answers unless `version_2`."""
    for row, (context, value) in enumerate(zip(contexts, answers, strict=True)):
        if not isinstance(value, dict) or not isinstance(value.get("text"), list) \
                or not isinstance(value.get("answer_start"), list):  # fmt: skip
            raise UserInputError(
                f"{split} {_name(ids, row)} has answers {str(value)[:80]}, not {{'text': [...], 'answer_start':"
                " [...]}} (the Hugging Face squad layout); convert the answers column to it"
            )
        texts, starts = value["text"], value["answer_start"]
        if len(texts) != len(starts):
            raise UserInputError(f"{split} {_name(ids, row)} has {len(texts)} answer text(s) but {len(starts)}"
                                 " answer_start value(s); give one answer_start per text")  # fmt: skip
        if not texts and not version_2:
            raise UserInputError(
                f"{split} {_name(ids, row)} has no answer: this is SQuAD v2.0-style data with unanswerable"
                " questions; set data.version_2_with_negative=true (or remove the questions without answers)"
            )
        for text, start in zip(texts, starts, strict=True):
            if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
                raise UserInputError(f"{split} {_name(ids, row)} has an answer {text!r} at {start!r}; answer texts"
                                     " must be strings and answer_start integers")  # fmt: skip
            if not text:
                raise UserInputError(f"{split} {_name(ids, row)} has an empty answer text; remove it (an"
                                     " unanswerable question has empty answer lists)")  # fmt: skip
            if start < 0 or context[start : start + len(text)] != text:
                raise UserInputError(_misplaced(split, _name(ids, row), context, text, start))


def _misplaced(split: str, name: str, context: str, text: str, start: int) -> str:
    """The message for an answer that is not where its answer_start says."""
    there = context[start : start + len(text)] if start >= 0 else ""
    found = context.find(text)
    elsewhere = f"; the text first occurs at {found}" if found >= 0 else "; the text does not occur in the context"
    return (
        f"{split} {name}: answer {text[:60]!r} is not at answer_start {start} of its context (the context has"
        f" {there[:60]!r} there, {len(context)} characters in all{elsewhere}); answer_start must be the 0-based"
        " character offset of the answer in the context: fix it or remove the question"
    )
