"""Pre-tokenized token shards for streaming (litdata): where they live, how they are written, what they were made of.

A stream is a folder with one litdata dataset per split (`train/`, `validation/`, optional `test/`: chunk files and
an `index.json`, written by `litdata.optimize` with its `TokensLoader`) and `stream.json`, which records what decides
the token ids (tokenizer fingerprint, text column, document separator) and which files the stream was written from.
Reading checks `stream.json` against the run's settings, so a stream written with another tokenizer is refused in
one line instead of training on wrong ids.

Files are read one at a time by `data/reader.py` (the reader every command uses) inside litdata's worker processes,
so a corpus needs memory for its largest file, not for all of it; the token ids come from the same function the
Arrow path uses (`language_modeling.document_ids`), so a file gives the same token stream either way.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nlp_template.data.cache import cache_key
from nlp_template.data.reader import FORMATS, READER_VERSION, read_table
from nlp_template.data.split_files import SPLITS
from nlp_template.utils.errors import UserInputError

META = "stream.json"
STREAM_VERSION = 1  # bump when what a stream holds changes: older streams are then written again
REMOTE_PREFIXES = ("s3://", "gs://", "azure://", "hf://", "r2://", "local:")  # what litdata streams from


def is_remote(location: str) -> bool:
    """Whether litdata downloads the chunks (object stores; `local:<dir>` treats a folder as one, for tests)."""
    return str(location).startswith(REMOTE_PREFIXES)


@dataclass
class StreamFiles:
    """The text files of each split: one path, a glob (`corpus/*.jsonl`) or a list of either.

    Args:
        train: the training files (None: the stream at `data.stream_dir` already exists and is only read).
        validation: the validation files (required to write a stream: there is no carve from a stream).
        test: the test files (optional).
    """

    train: Any = None
    validation: Any = None
    test: Any = None

    def files(self) -> dict[str, list[Path]]:
        """The configured splits and their files (globs expanded, sorted), each file checked."""
        result = {}
        for split in SPLITS:
            patterns = getattr(self, split)
            if not patterns:
                continue
            files: list[Path] = []
            for pattern in [patterns] if isinstance(patterns, str) else list(patterns):
                matches = sorted(glob.glob(os.path.expanduser(str(pattern)))) if glob.has_magic(str(pattern)) else []
                files += [Path(match) for match in matches] or [Path(pattern).expanduser()]
            for path in files:
                _check_file(split, path)
            result[split] = files
        return result


def _check_file(split: str, path: Path) -> None:
    if not path.is_file():
        raise UserInputError(f"{split} file not found: {path} (set data.source.{split} to files, a glob or a list)")
    if path.suffix.lower() not in FORMATS:
        raise UserInputError(f"{split} file {path} has an unknown extension '{path.suffix}'; use one of {FORMATS}")


def files_signature(files: dict[str, list[Path]]) -> dict[str, list[list]]:
    """Per split, each file's name and size: what `stream.json` records and a reused stream is checked against."""
    return {split: [[path.name, path.stat().st_size] for path in paths] for split, paths in files.items()}


def default_key(files: dict[str, list[Path]], settings: dict[str, Any]) -> str:
    """Folder name of a stream in the cache: the files (path, size, modification time) and the token settings.

    Streams are keyed by file metadata, not content: hashing a corpus of hundreds of GB on every run would cost
    minutes. A file rewritten with the same size and modification time is not noticed (delete the folder).
    """
    stats = {s: [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in ps] for s, ps in files.items()}
    return cache_key(STREAM_VERSION, READER_VERSION, stats, settings)


@dataclass
class FileTokens:
    """litdata's `fn`: one file -> one 1-D int32 tensor of token ids per row (what `encode` gives, with separator).

    Runs in litdata's worker processes (pickled); a bad file is written to `error_file` (workers cannot raise a
    one-line error) and `write_stream` raises it once the workers are done.
    """

    encode: Any  # texts -> token id lists
    text_column: str
    split: str
    error_file: str

    def __call__(self, path: str) -> Iterator[torch.Tensor]:  # noqa: D102
        try:
            table = read_table(path, f"{self.split} file {path}", text_columns=[self.text_column], keep_linebreaks=True)
            if table.rows and self.text_column not in table.columns:
                raise UserInputError(f"{self.split} file {path} has no column '{self.text_column}' (it has"
                                     f" {table.columns}); set data.text_column")  # fmt: skip
        except UserInputError as error:
            Path(self.error_file).write_text(str(error))
            return
        texts = [row.get(self.text_column) or "" for row in table.rows]
        for start in range(0, len(texts), 1000):  # tokenizer calls of 1,000 rows: fast, bounded memory
            for ids in self.encode(texts[start : start + 1000]):
                if ids:
                    yield torch.tensor(ids, dtype=torch.int32)


def write_stream(
    files: dict[str, list[Path]], encode: Any, text_column: str, location: Path, meta: dict, chunk_tokens: int,
    workers: int | None = None,
) -> None:  # fmt: skip
    """Tokenize `files` into litdata shards at `location` (one folder per split) and write `stream.json` last.

    Written beside `location` and renamed into place, so an interrupted or concurrent write never leaves a
    half-written stream that a later run would read.
    """
    from litdata import TokensLoader, optimize

    location.parent.mkdir(parents=True, exist_ok=True)
    partial = location.with_name(f"{location.name}.partial-{uuid.uuid4().hex[:8]}")
    error_file = Path(tempfile.mkdtemp(prefix="stream-errors-")) / "error.txt"
    tokens = {}
    try:
        for split, paths in files.items():
            optimize(
                fn=FileTokens(encode, text_column, split, str(error_file)), inputs=[str(path) for path in paths],
                output_dir=str(partial / split), chunk_size=chunk_tokens, item_loader=TokensLoader(),
                num_workers=min(len(paths), workers or os.cpu_count() or 1), reorder_files=False,
                keep_data_ordered=True, mode="overwrite", verbose=False,
            )  # fmt: skip
            if error_file.is_file():
                raise UserInputError(error_file.read_text())
            tokens[split] = stream_tokens(partial / split)
            if tokens[split] < 2:
                raise UserInputError(f"the {split} files hold {tokens[split]} token(s); give them some text")
        (partial / META).write_text(json.dumps({**meta, "tokens": tokens}, indent=2))
        try:
            os.replace(partial, location)
        except OSError:  # another process wrote the same stream first
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(error_file.parent, ignore_errors=True)


def stream_tokens(folder: Path) -> int:
    """Tokens in one split's shards (litdata's index lists each chunk's token count as `dim`)."""
    index = json.loads((folder / "index.json").read_text())
    return sum(chunk.get("dim") or 0 for chunk in index["chunks"])


def read_meta(location: str, cache_dir: Path) -> dict | None:
    """The stream's `stream.json`, or None when there is none (local folders and litdata remotes alike)."""
    if not is_remote(location):
        path = Path(location) / META
        return json.loads(path.read_text()) if path.is_file() else None
    from litdata.streaming.downloader import get_downloader

    cache_dir.mkdir(parents=True, exist_ok=True)
    local = cache_dir / META
    try:
        get_downloader(location, str(cache_dir), []).download_file(f"{location.rstrip('/')}/{META}", str(local))
    except Exception as error:  # noqa: BLE001 -- any backend's "not found" or access error
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        raise UserInputError(
            f"cannot read {location}/{META} ({reason}); data.stream_dir must be a stream this template wrote"
            " (check the URL and the credentials)"
        ) from None
    return json.loads(local.read_text())


def check_meta(location: str, found: dict, expected: dict, files: dict | None) -> None:
    """One-line error when the stream at `location` was written with other token settings or other files."""
    if found.get("version") != STREAM_VERSION:
        raise UserInputError(f"{location} holds a stream of another version ({found.get('version')}); write it again"
                             " (point data.stream_dir at an empty folder)")  # fmt: skip
    for key in ("layout", "tokenizer", "text_column", "separator"):
        if found.get(key) != expected[key]:
            raise UserInputError(
                f"the stream at {location} was written with {key}={found.get(key)!r}, this run has"
                f" {expected[key]!r}: its token ids would be wrong; use the same data settings, or point"
                " data.stream_dir at another folder to write a new stream"
            )
    if files is not None and found.get("files") != files:
        raise UserInputError(
            f"the stream at {location} was written from other files ({_describe(found.get('files'))}) than"
            f" data.source gives ({_describe(files)}); point data.stream_dir at another folder, or set"
            " data.source.train=null to read the stream as it is"
        )


def _describe(files: dict | None) -> str:
    if not files:
        return "none"
    return ", ".join(f"{split}: {len(entries)} file(s)" for split, entries in files.items())
