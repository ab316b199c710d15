"""Where raw text comes from: the Hugging Face Hub or local files.

A source has two methods: `load()` returns a `DatasetDict` with some of the splits `train`, `validation`, `test`,
and `fingerprint()` returns a string that changes whenever the data changes (it keys the tokenization cache).
The embedded generator (`samples.SentimentSamples`) is a source too. Add a new kind of source by writing a class
with these two methods and pointing `data.source._target_` at it.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import DatasetDict

from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import first_line
from nlp_template.utils.inputs import first_invalid_utf8_line

SPLITS = ("train", "validation", "test")

# Extension -> (datasets builder, builder options). TSV turns quote processing off: GLUE TSVs contain bare quotes
# that pandas would otherwise treat as the start of a quoted field and silently merge lines.
_FORMATS = {
    ".csv": ("csv", {"keep_default_na": False}),
    ".tsv": ("csv", {"sep": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False}),
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".parquet": ("parquet", {}),
    # Plain text: a row per line (column `text`), line breaks kept so that the rows concatenate back into the file.
    ".txt": ("text", {"keep_linebreaks": True}),
}


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
class FileSource:
    """Local files, one per split; the format follows the extension (.csv, .tsv, .jsonl/.json, .parquet, .txt).

    Args:
        train: path of the training file (required).
        validation: path of the validation file; when None, the data module carves one from train.
        test: path of the test file (optional).
        cache_dir: where `datasets` keeps the converted Arrow files, one folder per file content (None: the
            `datasets` default).
    """

    train: str
    validation: str | None = None
    test: str | None = None
    cache_dir: str | None = None
    _digests: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _paths(self) -> dict[str, Path]:
        paths = {split: getattr(self, split) for split in SPLITS}
        return {split: Path(path).expanduser() for split, path in paths.items() if path}

    def _check(self, split: str, path: Path) -> tuple[str, dict]:
        if not path.is_file():
            raise UserInputError(f"{split} file not found: {path} (set data.source.{split} to an existing file)")
        if path.stat().st_size == 0:
            raise UserInputError(f"{split} file is empty: {path}")
        if path.suffix.lower() not in _FORMATS:
            raise UserInputError(
                f"{split} file {path} has an unknown extension '{path.suffix}'; use one of {sorted(_FORMATS)}"
            )
        return _FORMATS[path.suffix.lower()]

    def load(self) -> DatasetDict:
        """Read every configured file into a split; checks that each exists and holds at least one row."""
        result = {}
        for split, path in self._paths().items():
            builder, options = self._check(split, path)
            # `datasets` keys its Arrow copy of a local file by path, size and modification time: a file rewritten
            # with the same size and time (`cp -p`, `rsync -a`, an edit within the same second) would be read from
            # the stale copy. One cache folder per content hash rules that out.
            base = Path(self.cache_dir or datasets.config.HF_DATASETS_CACHE)
            cache_dir = str(base / "by-content" / self._digest(path)[:16])  # a file in two splits: one copy
            try:
                loaded = datasets.load_dataset(
                    builder, data_files={split: str(path)}, split=split, cache_dir=cache_dir, **options
                )
            except Exception as error:
                if "corresponds to no data" in str(error):  # how `datasets` reports a file with no rows
                    raise UserInputError(f"{split} file has a header but no rows: {path}") from error
                raise UserInputError(_read_error(split, path, error)) from error
            if loaded.num_rows == 0:
                raise UserInputError(f"{split} file has a header but no rows: {path}")
            result[split] = loaded
        return DatasetDict(result)

    def fingerprint(self) -> str:
        """A hash of the files' contents, so an edited file is tokenized again."""
        digests = "|".join(f"{split}={self._digest(path)}" for split, path in self._paths().items())
        return f"files:{hashlib.sha256(digests.encode()).hexdigest()}"

    def _digest(self, path: Path) -> str:
        """The file's content hash, computed once per source object (`load` and `fingerprint` both need it)."""
        if str(path) not in self._digests:
            self._digests[str(path)] = hash_files({"file": path})
        return self._digests[str(path)]


def _read_error(split: str, path: Path, error: BaseException) -> str:
    """What went wrong reading a data file: the first line that is not UTF-8, or the parser's own complaint."""
    if path.suffix.lower() != ".parquet":
        with open(path, "rb") as handle:
            bad = first_invalid_utf8_line(handle)
        if bad:
            number, byte, column = bad
            return (
                f"{split} file {path} line {number} is not valid UTF-8 (byte {byte:#04x} at column {column}); save the"
                " file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            )
    # `datasets` wraps the parser's error (pandas, pyarrow) in a DatasetGenerationError that says nothing.
    cause = error
    while type(cause).__name__ == "DatasetGenerationError" and (cause.__cause__ or cause.__context__):
        cause = cause.__cause__ or cause.__context__
    return f"could not read {split} file {path}: {first_line(cause)}; check its format against its extension"


def hash_files(paths: dict[str, Path]) -> str:
    """A SHA-256 of the files' names (split, extension) and contents, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for split, path in paths.items():
        digest.update(f"{split}:{path.suffix}:".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
