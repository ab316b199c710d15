"""The bad-input catalogue's table format, shared by `test_bad_input.py` and the `bad_inputs_*.py` tables.

A table module `tests/bad_inputs_<area>.py` defines `FILES` (name -> content: str, bytes or a function of the
user's folder returning bytes) and `CASES` (a list of `Case`); `test_bad_input.py` runs them all with the same
guarantees (one `error:` line, exit 1, the user's files unchanged).
"""

from __future__ import annotations

import importlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from conftest import FAST

SAMPLE = ["experiment=sentiment_tiny", *FAST]  # the user's earlier run, and the data of most config cases
FILE_DATA = ["data=files"]


@dataclass(frozen=True)
class Case:
    """One bad input: the entry point, its overrides (`{tmp}`, `{ckpt}`, ... filled in), the expected message.

    `entry`: train | eval | predict | export (the decorated function, in-process), `cli-train` (the `@hydra.main`
    function with a command line: Hydra's own config errors), `data` (only the data module: `handled` cases).
    `expect`: a regex of the message after `error: `, or of the log of a `handled` case.
    """

    id: str
    entry: str
    overrides: list[str]
    expect: str
    handled: bool = False
    marks: tuple = ()


def squad_json(questions: list[tuple]) -> bytes:
    """A SQuAD JSON file with one context ("Ann wrote it in 1990.") and the given (id, question, answer, start)."""
    qas = [{"id": qid, "question": question, "answers": [] if answer is None else [{"text": answer,
            "answer_start": start}], **({"is_impossible": True} if answer is None else {})}
           for qid, question, answer, start in questions]  # fmt: skip
    data = {
        "version": "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": "Ann wrote it in 1990.", "qas": qas}]}],
    }
    return json.dumps(data).encode()


def torch_bytes(obj: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def more_cases() -> tuple[dict, list[Case]]:
    """The files and cases of every `bad_inputs_*.py` table beside this module."""
    files: dict = {}
    cases: list[Case] = []
    for path in sorted(Path(__file__).parent.glob("bad_inputs_*.py")):
        table = importlib.import_module(path.stem)
        clashes = files.keys() & table.FILES.keys()
        assert not clashes, f"{path.name} reuses file names {sorted(clashes)}"
        files.update(table.FILES)
        cases += table.CASES
    return files, cases
