"""One reader for data files: training, evaluation and prediction parse every format with this module.

`read_table(path, name)` returns the records of a .csv, .tsv, .jsonl, .json, .parquet or .txt file together with the
physical line each record starts on (Parquet: its row number), so errors and prediction outputs point into the file.
`FileSource` (training and evaluation) and `inference/inputs.py` (prediction) both call it, so a file gives the same
texts in every command. The rules, with examples, are in docs/data.md:

- bytes are UTF-8 (a leading byte-order mark is dropped); lines end at LF, CR LF or CR;
- CSV: RFC 4180 quoting, strict: `"a, b"` is one field, `""` inside quotes is a quote, a quoted field may span lines;
  an unclosed quote or text after a closing quote is an error;
- TSV: one record per line, split at tabs, no quote processing (GLUE: `he said "hi` is read as written), except
  that a field quoted the way csv writers quote (`"he said ""hi"" twice"`) is unquoted: pandas-written TSVs read back;
- CSV/TSV: blank lines are skipped; every record has exactly one field per header column; column names are unique;
  an empty cell is an empty string; cells are strings as written (`FileSource` turns all-number label columns into
  numbers, never text columns);
- JSON: JSON Lines (one object per line, blank lines skipped) or a list of objects (a file starting with `[`);
  a key twice in one object is an error;
- text columns (`text_columns`, the model's inputs): a string in every record; JSON null is an empty text; a number,
  list or object is an error naming the column and its lines;
- .txt: one record per line, column `text`; `keep_linebreaks` keeps each line's break (language modelling).
"""

from __future__ import annotations

import csv
import io
import json
import re
from bisect import bisect_right
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_template.data.labels import is_missing
from nlp_template.utils.errors import UserInputError, listing

# Bump when a rule changes the rows a file gives: it keys FileSource's Arrow copies and its fingerprint.
READER_VERSION = "3"  # 2: 001/+1 keep their column as written; 3: NA in a number column is None
FORMATS = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")


@dataclass
class Table:
    """The records of one file, in file order.

    Attributes:
        rows: one dict per record (JSON records keep their own keys; CSV/TSV records have every header column).
        lines: the physical line (1 = first) each record starts on; Parquet: the record's row number.
        columns: every column name, in the order first seen.
        unit: `line`, or `row` for Parquet (how messages and prediction outputs count).
        as_written: whether values are strings as written in the file (CSV, TSV), not typed values.
    """

    rows: list[dict[str, Any]]
    lines: list[int]
    columns: list[str]
    unit: str = "line"
    as_written: bool = False


def read_table(
    path: str | Path,
    name: str,
    *,
    text_columns: Collection[str] = (),
    keep_linebreaks: bool = False,
    noun: str = "file",
    data: bytes | None = None,
    suffix: str | None = None,
) -> Table:
    """Parse a data file by its extension; raise `UserInputError` (one line) for anything that is not clean.

    Args:
        path: the file (not read when `data` is given).
        name: how messages name the file, e.g. `train file data/train.csv` or `inputs.csv`.
        text_columns: columns that must hold one string per record (checked where present; see `check_texts`).
        keep_linebreaks: .txt records keep their line break (training a language model on the file as written).
        noun: `file` or `input`, for the fix in the UTF-8 message.
        data: the file's bytes, already read (standard input).
        suffix: the format, when not the path's extension.
    """
    suffix = (Path(path).suffix if suffix is None else suffix).lower()
    if suffix not in FORMATS:
        raise UserInputError(f"{name} has an unknown extension '{suffix}'; use one of {list(FORMATS)}")
    raw = read_bytes(Path(path), name) if data is None else data
    if suffix == ".parquet":
        table = _parquet(raw, name)
    else:
        text = decode(raw, name, noun)
        if suffix == ".csv":
            table = _csv(text, name)
        elif suffix == ".tsv":
            table = _tsv(text, name)
        elif suffix in (".jsonl", ".json"):
            table = _json_array(text, name) if text.lstrip().startswith("[") else _json_lines(text, name)
        else:
            lines = [line if keep_linebreaks else _unbroken(line) for line in physical_lines(text)]
            table = Table([{"text": line} for line in lines], list(range(1, len(lines) + 1)), ["text"])
    check_texts(table, text_columns, name)
    return table


def read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes; a file that cannot be read is a one-line error (a permission, a directory)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except PermissionError:
        raise UserInputError(f"cannot read {name}: permission denied; make it readable (chmod u+r {path})") from None
    except FileNotFoundError:
        raise UserInputError(f"{name} not found") from None
    except IsADirectoryError:
        raise UserInputError(f"{name} is a directory; give a file") from None


def decode(raw: bytes, name: str, noun: str = "file") -> str:
    """UTF-8 text without a leading byte-order mark; a bad byte names its line and column."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        # Each line on its own names the bad one (a line break never falls inside a multi-byte character).
        number, byte, column = first_invalid_utf8_line(raw.splitlines()) or (1, raw[error.start], error.start + 1)
    fix = " (e.g. iconv -f latin1 -t utf-8)" if noun == "file" else ""
    raise UserInputError(f"{name} line {number} is not valid UTF-8 (byte {byte:#04x} at column {column}); save the"
                         f" {noun} as UTF-8{fix}")  # fmt: skip


def first_invalid_utf8_line(lines: Iterable[bytes]) -> tuple[int, int, int] | None:
    """(line number, offending byte, column) of the first line that is not UTF-8, or None."""
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            return number, line[error.start], error.start + 1
    return None


def physical_lines(text: str) -> list[str]:
    """Lines with their breaks (LF, CR LF or CR, as `bytes.splitlines` and the csv module count them)."""
    return list(io.StringIO(text, newline=""))


def _unbroken(line: str) -> str:
    return line.rstrip("\r\n")


# ------------------------------------------------------------------------------------------------------ CSV, TSV
def _csv(text: str, name: str) -> Table:
    # The default limit (128 KiB per field) would refuse a long document in one cell.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    while True:
        start = reader.line_num + 1  # the physical line this record starts on (a quoted field may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise UserInputError(f"could not read {name}: the quoted field in line {start} is never closed; close"
                                     ' it with " (a quote inside a quoted field is written "")') from None  # fmt: skip
            raise UserInputError(f"could not read {name}: line {reader.line_num}: {error} (a quoted field ends at its"
                                 ' closing quote; a quote inside it is written "")') from None  # fmt: skip
        if fields:  # a blank line
            records.append((start, fields))
    return _fields(records, name, "csv")


def _tsv(text: str, name: str) -> Table:
    records = []
    for number, line in enumerate(physical_lines(text), start=1):
        line = _unbroken(line)
        if line:  # a blank line
            records.append((number, [_tsv_field(field) for field in line.split("\t")]))
    return _fields(records, name, "tsv")


_FIELD_FIXES = {  # (format, more fields than the header) -> the fix
    ("csv", True): 'quote a text that holds a comma ("good, really",pos) or fix that line',
    ("csv", False): "give every record a field per column (an empty one is fine: a,,b) or fix that line",
    ("tsv", True): "a TSV record is one line with a tab between fields: a text holding a tab belongs in CSV or JSONL",
    ("tsv", False): "give every record a field per column; a text holding a line break belongs in CSV or JSONL",
}


def _fields(records: Iterable[tuple[int, list[str]]], name: str, kind: str) -> Table:
    """Header and records -> rows; duplicate column names and records of another width are errors."""
    records = list(records)
    if not records:
        return Table([], [], [], as_written=True)
    (header_line, header), body = records[0], records[1:]
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise UserInputError(f"{name} has duplicate column names in its header (line {header_line}):"
                             f" {listing(repr(c) for c in repeated)}; give every column its own name")  # fmt: skip
    wrong = [(line, len(fields)) for line, fields in body if len(fields) != len(header)]
    if wrong:
        (line, count), others = wrong[0], [line for line, _ in wrong[1:]]
        also = f" (also line(s) {listing(others)})" if others else ""
        fix = _FIELD_FIXES[kind, count > len(header)]
        raise UserInputError(f"could not read {name}: Expected {len(header)} fields in line {line}, saw {count}{also};"
                             f" the header has {listing(header)}; {fix}")  # fmt: skip
    return Table([dict(zip(header, fields, strict=True)) for _, fields in body], [line for line, _ in body],
                 list(header), as_written=True)  # fmt: skip


def _tsv_field(field: str) -> str:
    """A field quoted as csv writers quote it loses that quoting; any other field is kept as written.

    csv writers (pandas `to_csv(sep=TAB)`) quote a field only when it holds a quote (or a tab or line break, which
    a one-line record cannot hold), and double the quotes inside: such a field starts and ends with a quote, has only
    doubled quotes inside, and at least one pair. A GLUE text like `"the film " is great` or `"hi"` is not one.
    """
    if len(field) > 3 and field[0] == field[-1] == '"':
        inner = field[1:-1]
        if '""' in inner and '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return field


# ---------------------------------------------------------------------------------------------------------- JSON
class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # `json` keeps the last of two equal keys without a word; the first would be just as right.
    record = dict(pairs)
    if len(record) < len(pairs):
        keys = [key for key, _ in pairs]
        raise _DuplicateKey(next(key for position, key in enumerate(keys) if key in keys[:position]))
    return record


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
_HINT = "(JSON Lines: one object per line; .json: one object per line, or a list of objects)"


def _json_record(value: Any, name: str, line: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{name} line {line} is a JSON {type(value).__name__}, not an object of fields {_HINT}")
    return value


def _json_lines(text: str, name: str) -> Table:
    rows, lines = [], []
    for number, line in enumerate(physical_lines(text), start=1):
        if not line.strip():
            continue
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{name} line {number} is not valid JSON: {error.msg} (column {error.colno}); fix"
                                 f" that line {_HINT}") from None  # fmt: skip
        except _DuplicateKey as error:
            raise UserInputError(f"{name} line {number} has the key '{error}' twice; keep one") from None
        rows.append(_json_record(value, name, number))
        lines.append(number)
    return Table(rows, lines, _columns(rows))


def _json_array(text: str, name: str) -> Table:
    """A JSON list of objects; each record's line is the line its object starts on."""
    starts = [0] + [match.end() for match in re.finditer(r"\r\n|\r|\n", text)]

    def line_of(position: int) -> int:
        return bisect_right(starts, position)

    rows, lines = [], []
    position = _skip_space(text, text.index("[") + 1)
    while position < len(text) and text[position] != "]":
        try:
            value, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise UserInputError(f"{name} line {line_of(error.pos)} is not valid JSON: {error.msg}") from None
        except _DuplicateKey as error:
            raise UserInputError(f"{name} line {line_of(position)} has the key '{error}' twice; keep one") from None
        rows.append(_json_record(value, name, line_of(position)))
        lines.append(line_of(position))
        position = _skip_space(text, end)
        if text[position : position + 1] == ",":
            position = _skip_space(text, position + 1)
        elif text[position : position + 1] != "]":
            raise UserInputError(f"{name} line {line_of(position)} is not valid JSON: expected ',' or ']' {_HINT}")
    if position >= len(text) or text[_skip_space(text, position + 1) :]:
        raise UserInputError(f"{name} line {line_of(min(position, len(text) - 1))} is not valid JSON: the list does not"
                             " end with a single ']'")  # fmt: skip
    return Table(rows, lines, _columns(rows))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


# ------------------------------------------------------------------------------------------------------- Parquet
def _parquet(raw: bytes, name: str) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(pa.BufferReader(raw))
        names = file.schema_arrow.names
        repeated = sorted({column for column in names if names.count(column) > 1})
        if repeated:  # checked before reading: rows (dicts) would keep only one of the two
            raise UserInputError(f"{name} has duplicate column names: {listing(repr(c) for c in repeated)}; give"
                                 " every column its own name")  # fmt: skip
        rows = file.read().to_pylist()
    except (pa.ArrowException, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"could not read {name}: {message}; is it a Parquet file?") from None
    return Table(rows, list(range(1, len(rows) + 1)), names, unit="row")


# --------------------------------------------------------------------------------------------------- text columns
def check_texts(table: Table, text_columns: Collection[str], name: str) -> None:
    """Every record holds a string in each text column the file has; JSON null becomes an empty text.

    A column the file lacks altogether is left to the caller, which names it with its config key. A number, list or
    object where a text belongs is an error naming the column and its lines: silently turned into a string, a list
    of two texts would be read as a sentence pair and a number as a text no one wrote.
    """
    for column in text_columns:
        if column not in table.columns:
            continue
        wrong = []
        for row, line in zip(table.rows, table.lines, strict=True):
            if column not in row:
                raise UserInputError(f"{name} {table.unit} {line} has no column '{column}' (other records have it); it"
                                     f" has [{listing(repr(key) for key in row)}]")  # fmt: skip
            if row[column] is None:
                row[column] = ""
            elif not isinstance(row[column], str):
                wrong.append((line, row[column]))
        if wrong:
            (line, value), others = wrong[0], [number for number, _ in wrong[1:]]
            kind = {list: "a list", dict: "an object", bool: "true/false"}.get(type(value), "a number")
            also = f" (also {table.unit}(s) {listing(others)})" if others else ""
            hint = " (two texts? give each its own column, e.g. data.text_pair_column)" if kind == "a list" else ""
            raise UserInputError(f"{name}: text column '{column}' must hold a string per record, but {table.unit}"
                                 f" {line} holds {kind} ({json.dumps(value)[:40]}){also}; write each text as one"
                                 f" string{hint}")  # fmt: skip


# ------------------------------------------------------------------------------------------------------ columns
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def table_columns(table: Table, text_columns: Collection[str] = ()) -> dict[str, list]:
    """Column name -> values (None where a JSON record lacks the key), for `datasets.Dataset.from_dict`.

    CSV/TSV cells are strings as written; a column that is not a text column and holds only integers (or only
    numbers) becomes integers (floats), as pandas would read it: labels 1, 2, 10 then sort as numbers and float
    scores are regression targets. Integers written another way (`001`, `+1`) keep the whole column as written, so
    `01` and `1` stay two labels. Missing markers (empty, `NA`, `NaN`, `null`, ...) in a column of numbers become
    None. Text columns stay as written ("007" is a text, not 7).
    """
    columns = {column: [row.get(column) for row in table.rows] for column in table.columns}
    if table.as_written:
        for column, values in columns.items():
            if column not in text_columns:
                columns[column] = _numbers(values)
    return columns


def _numbers(values: list[str]) -> list:
    """The column as integers or floats when every present value is one, missing markers (`NA`, ...) as None.

    A score column with one `NA` must stay a column of numbers with a missing value (which the label checks then
    name, or drop with data.drop_missing_labels), not turn into strings, and so into one class per score.
    """
    present = [value for value in values if not is_missing(value)]
    if not present:
        return values
    if all(_INTEGER.fullmatch(value) for value in present):
        integers = {value: int(value) for value in present}
        # Labels such as `001` or `+1` are kept as written: as numbers `001`, `01` and `1` would become one class.
        if any(str(number) != value.strip() for value, number in integers.items()):
            return values
        if all(-(2**63) <= number < 2**63 for number in integers.values()):  # Arrow's int64
            return [integers.get(value) for value in values]
    if all(_NUMBER.fullmatch(value) for value in present):
        return [None if is_missing(value) else float(value) for value in values]
    return values
