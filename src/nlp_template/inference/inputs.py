"""Reading prediction inputs: plain text (one example per line), JSONL/JSON, CSV/TSV, Parquet, or standard input.

Files are parsed by `data/reader.py`, the reader training and evaluation use, so an input file gives the texts a
training file with the same content gives (the rules: docs/data.md). Every record keeps the physical line it starts
on (Parquet: its row number), so outputs and errors point back into the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nlp_template.data.reader import FORMATS, first_invalid_utf8_line, read_table
from nlp_template.utils.errors import UserInputError, listing

__all__ = ["first_invalid_utf8_line", "read_records"]  # the UTF-8 check lived here before data/reader.py


def read_records(
    path: str, columns: list[str], hints: dict[str, str] | None = None, text_columns: list[str] | None = None
) -> list[dict[str, Any]]:
    """Records `{"line", <column>: value, ...}` from a data file or standard input (`-`, plain text).

    Plain text fills the first column, one record per line, and keeps empty lines as empty texts (callers decide
    what to do with them); it cannot hold several columns. Other formats need every column and keep the record's
    other fields too (e.g. an id); `hints` maps a column to the config key that names it, for the error message.
    `text_columns` (default: all of `columns`) must hold a string each (JSON null reads as an empty text); the
    others (a list of endings) are read as they are.
    """
    suffix = "" if path == "-" else Path(path).suffix.lower()
    plain = suffix not in FORMATS or suffix == ".txt"  # no or another extension: one text per line, as before
    if path == "-":
        table = read_table(path, "standard input", noun="input", data=sys.stdin.buffer.read(), suffix=".txt")
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserInputError(f"input file not found: {file} (input=PATH, or input=- for standard input)")
        texts = columns if text_columns is None else text_columns
        table = read_table(file, path, text_columns=texts, noun="input", suffix=".txt" if plain else suffix)
    pairs = zip(table.rows, table.lines, strict=True)
    if plain:
        if len(columns) > 1:
            raise UserInputError(f"this model reads {_names(columns)} per example: give JSONL or CSV input with those"
                                 " columns")  # fmt: skip
        return [{"line": line, columns[0]: row["text"]} for row, line in pairs]
    return [_record(f"{path} {table.unit}", line, row, columns, hints or {}) for row, line in pairs]


def parse_records(
    data: bytes, name: str, columns: list[str], text_columns: list[str] | None = None
) -> list[dict[str, Any]]:
    """Records from JSON bytes (an object, a list of objects, or JSON lines), checked as `read_records` checks files.

    The server's request bodies: the same reader and the same one-line errors as an input file, without `line`.
    """
    table = read_table(name, name, text_columns=columns if text_columns is None else text_columns, noun="input",
                       data=data, suffix=".json")  # fmt: skip
    records = [_record(f"{name} line", n, row, columns, {}) for row, n in zip(table.rows, table.lines, strict=True)]
    return [{key: value for key, value in record.items() if key != "line"} for record in records]


def _record(where: str, number: int, row: dict[str, Any], columns: list[str], hints: dict[str, str]) -> dict[str, Any]:
    for column in columns:
        if column not in row:
            fix = f"+data.{hints[column]}=<one of them>" if column in hints else f"a column named '{column}'"
            raise UserInputError(f"{where} {number} has no column '{column}'; it has"
                                 f" [{listing(repr(key) for key in sorted(row))}]. Use {fix}")  # fmt: skip
    # The row's other fields (an id, a reference label) come back with its prediction, for joining results.
    return {"line": number, **{key: value for key, value in row.items() if key != "line"}}


def _names(columns: list[str]) -> str:
    return " and ".join(f"'{column}'" for column in columns)
