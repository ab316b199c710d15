"""`SplitFiles`: what every source that reads one local file per split shares.

The paths (`train` required, `validation` and `test` optional, `~` expanded), the checks every file gets before it
is parsed (it exists, is a file, can be read), its text through the one UTF-8 decoder (`reader.decode`: a bad byte is
reported with its line and column, a leading byte-order mark is dropped), and the content hash that keys the
tokenization cache (an edited file is read again; a copied one is not). `FileSource` (CSV/TSV/JSON/Parquet),
`ConllSource` and `SquadSource` build on it; a new file format is a subclass with `load()` and `fingerprint()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp_template.data.reader import decode, read_bytes
from nlp_template.utils.errors import UserInputError

SPLITS = ("train", "validation", "test")


@dataclass
class SplitFiles:
    """One local file per split.

    Args:
        train: path of the training file (required).
        validation: path of the validation file (optional; data modules can carve one from train).
        test: path of the test file (optional).
    """

    train: str
    validation: str | None = None
    test: str | None = None

    def paths(self) -> dict[str, Path]:
        """The configured splits and their paths, in split order."""
        paths = {split: getattr(self, split) for split in SPLITS}
        return {split: Path(path).expanduser() for split, path in paths.items() if path}

    def check_file(self, split: str, path: Path) -> None:
        """One-line errors for a file that is missing, a directory or unreadable (before it is hashed or parsed)."""
        if not path.exists():
            raise UserInputError(f"{split} file not found: {path} (set data.source.{split} to an existing file)")
        if not path.is_file():
            raise UserInputError(f"{split} file {path} is not a file; set data.source.{split} to a file")
        try:
            with open(path, "rb"):
                pass
        except PermissionError:
            raise UserInputError(f"cannot read {split} file {path}: permission denied; make it readable (chmod u+r"
                                 f" {path})") from None  # fmt: skip

    def text(self, split: str, path: Path) -> str:
        """The checked file's content as text (UTF-8, byte-order mark dropped)."""
        self.check_file(split, path)
        name = f"{split} file {path}"
        return decode(read_bytes(path, name), name)

    def files_hash(self) -> str:
        """A hash of every configured file's split, extension and content."""
        return hash_files(self.paths())


def hash_files(paths: dict[str, Path]) -> str:
    """A SHA-256 of the files' names (split, extension) and contents, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for split, path in paths.items():
        digest.update(f"{split}:{path.suffix}:".encode())
        _add_content(digest, path)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """The SHA-256 of one file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    _add_content(digest, path)
    return digest.hexdigest()


def _add_content(digest: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
