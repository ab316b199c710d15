"""`ParallelFiles`: aligned plain-text files, one sentence per line (`train.en` + `train.de`), as source/target rows.

The layout of most translation corpora (Multi30k, WMT, OPUS, Europarl): `<prefix>.<source_suffix>` and
`<prefix>.<target_suffix>` per split, line N of one the translation of line N of the other. Both files must have the
same number of lines, split at LF only as `wc -l` counts (a mismatch is one error line naming both counts: an
unaligned corpus would train on wrong pairs); trailing blank lines are left out first. A line pair blank on both
sides is skipped; blank on one side only is an error naming the line. Files are read through the one UTF-8
decoder (`SplitFiles.text`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict

from nlp_template.data.split_files import SplitFiles, hash_files
from nlp_template.utils.errors import UserInputError, listing

log = logging.getLogger(__name__)


@dataclass
class ParallelFiles(SplitFiles):
    """Aligned text files per split: `train` is a path prefix, e.g. `data/train` for `data/train.en` + `.de`.

    Args:
        train: prefix of the training files (required).
        validation: prefix of the validation files (optional; carved from train without).
        test: prefix of the test files (optional).
        source_suffix: extension of the source side, e.g. `en`.
        target_suffix: extension of the target side, e.g. `de`.
    """

    source_suffix: str = "en"
    target_suffix: str = "de"

    def sides(self, prefix: Path) -> tuple[Path, Path]:
        """The source and target file of one split's prefix."""
        return (prefix.with_name(f"{prefix.name}.{self.source_suffix}"),
                prefix.with_name(f"{prefix.name}.{self.target_suffix}"))  # fmt: skip

    def load(self) -> DatasetDict:
        """Every configured split as rows with `source` and `target`."""
        return DatasetDict({split: self._read(split, prefix) for split, prefix in self.paths().items()})

    def _read(self, split: str, prefix: Path) -> Dataset:
        source_path, target_path = self.sides(prefix)
        sources, targets = self._lines(split, source_path), self._lines(split, target_path)
        if len(sources) != len(targets):
            raise UserInputError(f"{split} files are not aligned: {source_path} has {len(sources)} lines,"
                                 f" {target_path} has {len(targets)}; each line must be the translation of the same"
                                 " line of the other file")  # fmt: skip
        one_sided = [
            n for n, (s, t) in enumerate(zip(sources, targets, strict=True), 1) if bool(s.strip()) != bool(t.strip())
        ]
        if one_sided:
            raise UserInputError(f"{split} files {source_path} and {target_path}: line(s) {listing(one_sided)} are"
                                 " blank on one side only; fill in or remove the line on both sides")  # fmt: skip
        pairs = [(s, t) for s, t in zip(sources, targets, strict=True) if s.strip()]
        if len(pairs) < len(sources):
            log.info("%s: skipped %d line(s) blank on both sides", split, len(sources) - len(pairs))
        if not pairs:
            raise UserInputError(f"{split} files {source_path} and {target_path} hold no sentence pairs")
        return Dataset.from_dict({"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})

    def check_file(self, split: str, path: Path) -> None:
        """A missing side names the prefix rule (`data.source.train=data/train` for data/train.en + data/train.de)."""
        if not path.exists():
            prefix = path.with_suffix("")
            hint = (f"; data.source.{split} is a prefix: give {prefix.with_suffix('')}, not {prefix}"
                    if prefix.suffix.lstrip(".") in (self.source_suffix, self.target_suffix) else "")  # fmt: skip
            raise UserInputError(f"{split} file not found: {path} (data.source.{split}={prefix} names"
                                 f" {prefix}.{self.source_suffix} + {prefix}.{self.target_suffix}{hint})")  # fmt: skip
        super().check_file(split, path)

    def _lines(self, split: str, path: Path) -> list[str]:
        """The file's lines without the trailing blank ones (files often differ in those).

        Split at LF only: a stray CR inside a sentence is text, as `wc -l`, fairseq and sacreBLEU count lines.
        """
        lines = [line.removesuffix("\r") for line in self.text(split, path).split("\n")]
        while lines and not lines[-1].strip():
            lines.pop()
        return lines

    def fingerprint(self) -> str:
        """A hash of both sides' contents per split and of the suffixes."""
        files = {f"{split}.{side}": path for split, prefix in self.paths().items()
                 for side, path in zip(("source", "target"), self.sides(prefix), strict=True)}  # fmt: skip
        settings = hashlib.sha256(f"{self.source_suffix}|{self.target_suffix}".encode()).hexdigest()[:8]
        return f"parallel:{hash_files(files)}:{settings}"
