"""CoNLL-style column files for token classification (named entities, chunks, part-of-speech tags).

One word per line with its tags in columns, a blank line after each sentence, `-DOCSTART-` lines between documents
(CoNLL-2003: `EU NNP B-NP B-ORG`). Entity tags are IOB2 everywhere downstream; IOB1 files (the original CoNLL-2003
release) are converted while loading. Every problem in a file is reported as one line that names the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, DatasetDict

from nlp_template.data.reader import physical_lines
from nlp_template.data.split_files import SplitFiles
from nlp_template.metrics.entities import iob1_to_iob2
from nlp_template.utils.errors import UserInputError

SCHEMES = {"iob1": "iob1", "iob2": "iob2", "bio": "iob2"}
DOCSTART = "-DOCSTART-"


@dataclass
class ConllSource(SplitFiles):
    """Column files, one per split: a word per line, a blank line between sentences.

    Args:
        train: path of the training file (required).
        validation: path of the validation file (optional).
        test: path of the test file (optional).
        token_column: column of the word (0-based; negative counts from the end).
        tag_column: column of the tag (default: the last one).
        scheme: tag scheme of the files: `iob2` (alias `bio`) or `iob1`, which is converted to IOB2 on load.
        separator: column separator; None splits on any run of whitespace (use a tab when words contain spaces).
        max_sentence_tokens: longest sentence accepted; a longer one usually means a missing blank line.
    """

    token_column: int = 0
    tag_column: int = -1
    scheme: str = "iob2"
    separator: str | None = None
    max_sentence_tokens: int = 1000

    def load(self) -> DatasetDict:
        """Read every configured file into a split with columns `tokens` and `tags` (IOB2, lists of str)."""
        if self.scheme.lower() not in SCHEMES:
            raise UserInputError(f"unknown tag scheme data.source.scheme={self.scheme}; use iob2 (or bio) or iob1")
        if self.token_column == self.tag_column:
            raise UserInputError(f"data.source.token_column and tag_column are both {self.tag_column}; set them apart")
        return DatasetDict({split: self._read(split, path) for split, path in self.paths().items()})

    def _read(self, split: str, path: Path) -> Dataset:
        tokens, tags = [], []
        for start, sentence in self._sentences(split, path):
            tokens.append([token for token, _ in sentence])
            tags.append(self._check_tags([tag for _, tag in sentence], path, start))
        if not tokens:
            raise UserInputError(
                f"{split} file {path} holds no sentences (expected a word and its tags per line, blank lines between"
                " sentences)"
            )
        return Dataset.from_dict({"tokens": tokens, "tags": tags})

    def _sentences(self, split: str, path: Path) -> Iterator[tuple[int, list[tuple[str, str]]]]:
        """(first line number, [(word, tag), ...]) for every sentence of the file."""
        sentence: list[tuple[str, str]] = []
        start = 0
        for number, line in enumerate(physical_lines(self.text(split, path)), start=1):
            columns = [column.strip() for column in line.split(self.separator)] if line.strip() else []
            # A blank line ends a sentence; so does -DOCSTART-, which files do not always follow with a blank line.
            if not columns or columns[0] == DOCSTART:
                if sentence:
                    yield start, sentence
                sentence = []
                continue
            if not sentence:
                start = number
            sentence.append(self._columns(columns, path, number, line))
            if len(sentence) > self.max_sentence_tokens:
                raise UserInputError(
                    f"{path}: the sentence that starts at line {start} has more than {self.max_sentence_tokens} words"
                    " (no blank line between sentences?); add the blank lines or raise data.source.max_sentence_tokens"
                )
        if sentence:  # the last sentence may lack its closing blank line
            yield start, sentence

    def _columns(self, columns: list[str], path: Path, number: int, line: str) -> tuple[str, str]:
        """The (word, tag) of one line."""
        count = len(columns)
        needed = max(index + 1 if index >= 0 else -index for index in (self.token_column, self.tag_column))
        if count < needed or self.token_column % count == self.tag_column % count:
            raise UserInputError(
                f"{path} line {number} has {count} column(s), too few for data.source.tag_column={self.tag_column}"
                f" and token_column={self.token_column}: {line.rstrip()[:80]!r}; fix the line or set"
                " data.source.tag_column"
            )
        return columns[self.token_column], columns[self.tag_column]

    def _check_tags(self, tags: list[str], path: Path, start: int) -> list[str]:
        """Check the tags of a sentence against the scheme and return them in IOB2."""
        iob1 = SCHEMES[self.scheme.lower()] == "iob1"
        previous = "O"
        for offset, tag in enumerate(tags):
            prefix, dash, kind = tag.partition("-")
            if tag != "O" and not (dash and prefix in ("B", "I") and kind):
                raise UserInputError(
                    f"tag '{tag}' in {path} line {start + offset} is not O, B-TYPE or I-TYPE; check"
                    f" data.source.tag_column={self.tag_column} (is it the tag column?) and data.source.scheme"
                )
            # IOB2 starts every entity with B-; an I- that starts one is the IOB1 convention (or an annotation slip).
            if not iob1 and prefix == "I" and previous[2:] != kind:
                raise UserInputError(
                    f"tag '{tag}' in {path} line {start + offset} starts an entity after '{previous}', which IOB2 does"
                    " not allow; if the file is IOB1 (like the original CoNLL-2003), set data.source.scheme=iob1"
                )
            previous = tag
        return iob1_to_iob2(tags) if iob1 else tags

    def fingerprint(self) -> str:
        """A hash of the files' contents and the reading settings, so an edited file or setting is read again."""
        settings = (self.token_column, self.tag_column, SCHEMES.get(self.scheme.lower()), self.separator)
        return f"conll:{self.files_hash()}:{':'.join(map(repr, settings))}:{self.max_sentence_tokens}"
