"""Where raw text comes from: the Hugging Face Hub or local files.

A source has two methods: `load()` returns a `DatasetDict` with some of the splits `train`, `validation`, `test`,
and `fingerprint()` returns a string that changes whenever the data changes (it keys the tokenization cache).
The embedded generator (`samples.SentimentSamples`) is a source too. Add a new kind of source by writing a class
with these two methods and pointing `data.source._target_` at it. A source that parses files may take
`load(text_columns)`, the columns holding the model's input texts (`load_source` passes them where accepted).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from nlp_template.data.reader import FORMATS, READER_VERSION, read_table, table_columns
from nlp_template.data.split_files import SPLITS, SplitFiles, hash_files
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import first_line

# A JSON column that mixes kinds (labels 1 and "pos") is stored as `Json` (datasets >= 4.7), so the label checks can
# name the rows; older versions cannot store it and the file is refused as a whole.
_MIXED_TYPES = (
    {"on_mixed_types": "use_json"} if "on_mixed_types" in inspect.signature(Dataset.from_dict).parameters else {}
)


def load_source(source: Any, text_columns: Collection[str]) -> DatasetDict:
    """`source.load()`, telling a source that reads files which columns hold text (`FileSource.load`).

    Sources written before this argument existed (`load()` alone) are called as they were.
    """
    if "text_columns" in inspect.signature(source.load).parameters:
        return source.load(text_columns=list(text_columns))
    return source.load()


@dataclass
class HubSource:
    """A data set on the Hugging Face Hub, loaded with `datasets.load_dataset(path, name)`.

    Args:
        path: data set id on the Hub, e.g. `nyu-mll/glue`.
        name: configuration name, e.g. `sst2`.
        revision: git revision (branch, tag or commit) to pin the data.
        splits: our split name -> the data set's split name; splits not listed are not loaded (GLUE's test split
            has no labels, so `conf/data/sst2.yaml` maps `test` to GLUE's `validation`).
        cache_dir: where `datasets` keeps its download cache (None: the `datasets` default).
    """

    path: str
    name: str | None = None
    revision: str | None = None
    splits: dict[str, str] = field(default_factory=lambda: {s: s for s in SPLITS})
    cache_dir: str | None = None

    def load(self) -> DatasetDict:
        """Download (or read from the local cache) the mapped splits."""
        try:
            loaded = datasets.load_dataset(self.path, self.name, revision=self.revision, cache_dir=self.cache_dir)
        except Exception as error:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
            raise UserInputError(
                f"could not load data set '{self.path}'{f' ({self.name})' if self.name else ''} from the Hugging Face"
                f" Hub: {first_line(error)}. Offline? Load it once with network access (it is cached), or train on"
                " local files: data=files data.source.train=PATH ..."
            ) from error
        missing = [hub for hub in self.splits.values() if hub not in loaded]
        if missing:
            raise UserInputError(
                f"data set '{self.path}' has no split(s) {missing}; it has {list(loaded)}. Fix data.source.splits"
            )
        self._fingerprint = "|".join(f"{ours}={loaded[hub]._fingerprint}" for ours, hub in self.splits.items())
        return DatasetDict({ours: loaded[hub] for ours, hub in self.splits.items()})

    def fingerprint(self) -> str:
        """The `datasets` fingerprints of the loaded splits (call after `load`)."""
        return f"hub:{self.path}:{self.name}:{self.revision}:{self._fingerprint}"


@dataclass
class FileSource(SplitFiles):
    """Local files, one per split; the format follows the extension (.csv, .tsv, .jsonl/.json, .parquet, .txt).

    Files are parsed by `data/reader.py`, the reader prediction uses too, so training, evaluation and prediction
    see the same texts (the rules: docs/data.md). Each file's rows are kept as an Arrow copy, one folder per file
    content, so a later run maps that copy instead of parsing the file again.

    Args:
        train: path of the training file (required).
        validation: path of the validation file; when None, the data module carves one from train.
        test: path of the test file (optional).
        cache_dir: where the Arrow copies are kept (None: the `datasets` cache).
    """

    cache_dir: str | None = None
    _digests: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _check(self, split: str, path: Path) -> None:
        self.check_file(split, path)
        if path.suffix.lower() not in FORMATS:
            raise UserInputError(
                f"{split} file {path} has an unknown extension '{path.suffix}'; use one of {sorted(FORMATS)}"
            )
        if path.stat().st_size == 0:
            raise UserInputError(f"{split} file is empty: {path}")

    def load(self, text_columns: Collection[str] = ()) -> DatasetDict:
        """Read every configured file into a split; checks that each exists and holds at least one row.

        Args:
            text_columns: the columns that hold the model's input texts: kept as written in CSV/TSV (never turned
                into numbers) and required to be strings in JSON/Parquet (see `reader.check_texts`).
        """
        result = {}
        for split, path in self.paths().items():
            self._check(split, path)
            result[split] = self._rows(split, path, sorted(text_columns))
        return DatasetDict(result)

    def _rows(self, split: str, path: Path, text_columns: list[str]) -> Dataset:
        """The file's rows as a memory-mapped Arrow table, parsed once per file content and reading rules."""
        # Keyed by a content hash, not by path, size and modification time: a file rewritten with the same size and
        # time (`cp -p`, `rsync -a`, an edit within the same second) must not be read from a stale copy.
        rules = hashlib.sha256(repr((READER_VERSION, text_columns)).encode()).hexdigest()[:12]
        base = Path(self.cache_dir or datasets.config.HF_DATASETS_CACHE)
        folder = base / "by-content" / self._digest(path)[:16] / f"rows-{rules}"  # a file in two splits: one copy
        if (folder / "state.json").is_file():
            try:
                return datasets.load_from_disk(str(folder))
            except Exception:  # an unreadable copy (a full disk, an old datasets version) is written again
                shutil.rmtree(folder, ignore_errors=True)
        table = read_table(path, f"{split} file {path}", text_columns=text_columns, keep_linebreaks=True)
        if not table.rows:
            what = "a header but no rows" if table.columns and path.suffix.lower() in (".csv", ".tsv") else "no rows"
            raise UserInputError(f"{split} file has {what}: {path}")
        try:
            data = Dataset.from_dict(table_columns(table, text_columns), **_MIXED_TYPES)
        except Exception as error:  # pyarrow cannot store some mixes (e.g. an object in one record, a list in another)
            raise UserInputError(f"could not store {split} file {path} as a table: {first_line(error)}; give each"
                                 " column values of one kind") from error  # fmt: skip
        # Written beside the final folder and renamed into place: a concurrent run never maps a half-written copy.
        partial = folder.with_name(f"{folder.name}.partial-{uuid.uuid4().hex[:8]}")
        data.save_to_disk(str(partial))
        try:
            os.replace(partial, folder)
        except OSError:  # another process got there first: its copy holds the same rows
            shutil.rmtree(partial, ignore_errors=True)
        return datasets.load_from_disk(str(folder))

    def fingerprint(self) -> str:
        """A hash of the files' contents and of the reading rules, so an edited file is tokenized again."""
        digests = "|".join(f"{split}={self._digest(path)}" for split, path in self.paths().items())
        return f"files:{hashlib.sha256(f'reader{READER_VERSION}|{digests}'.encode()).hexdigest()}"

    def _digest(self, path: Path) -> str:
        """The file's content hash, computed once per source object (`load` and `fingerprint` both need it)."""
        if str(path) not in self._digests:
            self._digests[str(path)] = hash_files({"file": path})
        return self._digests[str(path)]
