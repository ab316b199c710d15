"""Reading prediction inputs: plain text (one example per line), JSONL, CSV/TSV, or standard input.

Every record keeps the number of the line it came from, so outputs and errors point back into the file. Bytes that
are not UTF-8 stop with the file and line named; a missing column names the columns that exist.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nlp_template.utils.errors import UserInputError


def _lines(path: str) -> list[tuple[int, str]]:
    """(line number, text without the line break), decoding each line on its own to name a bad one."""
    raw = sys.stdin.buffer.read() if path == "-" else _read_bytes(path)
    lines = raw.splitlines()
    bad = first_invalid_utf8_line(lines)
    if bad:
        name = "standard input" if path == "-" else path
        number, byte, column = bad
        raise UserInputError(f"{name} line {number} is not valid UTF-8 (byte {byte:#04x} at column {column}); save the"
                             " input as UTF-8")  # fmt: skip
    return [(number, line.decode("utf-8").removeprefix("\ufeff" if number == 1 else ""))
            for number, line in enumerate(lines, start=1)]  # fmt: skip


def first_invalid_utf8_line(lines: Iterable[bytes]) -> tuple[int, int, int] | None:
    """(line number, offending byte, column) of the first line that is not UTF-8, or None (data files, inputs)."""
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            return number, line[error.start], error.start + 1
    return None


def _read_bytes(path: str) -> bytes:
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserInputError(f"input file not found: {file} (input=PATH, or input=- for standard input)")
    return file.read_bytes()


def read_records(path: str, columns: list[str], hints: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Records `{"line", <column>: value, ...}` from a .txt/.jsonl/.csv/.tsv file or standard input (`-`, text).

    JSONL and CSV records keep the row's other fields too (e.g. an id).

    Plain text fills the first column, one record per line, and keeps empty lines as empty texts (callers decide
    what to do with them); it cannot hold several columns. JSONL and CSV need every column; `hints` maps a column to
    the config key that names it, for the error message.
    """
    suffix = "" if path == "-" else Path(path).suffix.lower()
    lines = _lines(path)
    if suffix in (".jsonl", ".json"):
        rows = []
        for number, line in lines:
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise UserInputError(f"{path} line {number} is not valid JSON: {error.msg}") from None
    elif suffix in (".csv", ".tsv"):
        text = "\n".join(line for _, line in lines)
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [(index + 2, row) for index, row in enumerate(reader)]  # line 1 is the header
    elif len(columns) > 1:
        raise UserInputError(f"this model reads {_names(columns)} per example: give JSONL or CSV input with those"
                             " columns")  # fmt: skip
    else:
        return [{"line": number, columns[0]: line} for number, line in lines]
    return [_record(path, number, row, columns, hints or {}) for number, row in rows]


def _record(path: str, number: int, row: Any, columns: list[str], hints: dict[str, str]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise UserInputError(f"{path} line {number} is not a JSON object with {_names(columns)}")
    for column in columns:
        if column not in row:
            fix = f"+data.{hints[column]}=<one of them>" if column in hints else f"a column named '{column}'"
            raise UserInputError(f"{path} line {number} has no column '{column}'; it has {sorted(row)}. Use {fix}")
    # The row's other fields (an id, a reference label) come back with its prediction, for joining results.
    record = {"line": number, **{key: value for key, value in row.items() if key != "line"}}
    return record | {column: _value(row[column]) for column in columns}


def _value(value: Any) -> Any:
    """Texts as strings (numbers in JSON too); lists (e.g. pre-split words) stay lists; missing values are empty."""
    if value is None:
        return ""
    return value if isinstance(value, (str, list, dict)) else str(value)


def _names(columns: list[str]) -> str:
    return " and ".join(f"'{column}'" for column in columns)
