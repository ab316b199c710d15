"""CoNLL column files: the CoNLL-2003 layout, IOB1 conversion, separators, and one-line errors for bad files."""

from __future__ import annotations

import pytest

from nlp_template.data.conll import ConllSource
from nlp_template.utils.errors import UserInputError

CONLL2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O"""  # no blank line after the second -DOCSTART-, none at the end of the file


def write(tmp_path, text: str | bytes, name: str = "train.txt") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_conll2003_layout(tmp_path):
    splits = ConllSource(train=write(tmp_path, CONLL2003), test=write(tmp_path, "a O\n\nb B-LOC\n", "t.txt")).load()
    assert sorted(splits) == ["test", "train"]
    train = splits["train"]
    assert train["tokens"] == [
        ["EU", "rejects", "German", "call", "."],
        ["Peter", "Blackburn"],
        ["BRUSSELS", "1996-08-22"],
    ]
    assert train["tags"] == [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["B-LOC", "O"]]
    assert splits["test"]["tokens"] == [["a"], ["b"]]


def test_iob1_is_converted(tmp_path):
    text = "Peter I-PER\nBlackburn I-PER\nJohn B-PER\nin O\nNew I-LOC\nYork I-LOC\n\nBonn I-LOC\nand O\nEU I-ORG\n"
    rows = ConllSource(train=write(tmp_path, text), scheme="iob1").load()["train"]
    assert rows["tags"] == [["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC"], ["B-LOC", "O", "B-ORG"]]


def test_columns_and_separator(tmp_path):
    # A tab separator keeps words with spaces whole; the columns may be in any order.
    text = "B-LOC\tNew York\tx\nO\tis\tx\r\n\r\nO\tbig\tx\n"
    rows = ConllSource(train=write(tmp_path, text), token_column=1, tag_column=0, separator="\t").load()["train"]
    assert rows["tokens"] == [["New York", "is"], ["big"]]
    assert rows["tags"] == [["B-LOC", "O"], ["O"]]


def test_fingerprint_follows_contents_and_settings(tmp_path):
    path = write(tmp_path, "a O\n")
    first = ConllSource(train=path).fingerprint()
    assert ConllSource(train=path).fingerprint() == first
    assert ConllSource(train=path, scheme="iob1").fingerprint() != first
    assert ConllSource(train=path, scheme="bio").fingerprint() == first  # an alias: same data
    write(tmp_path, "a B-PER\n")
    assert ConllSource(train=path).fingerprint() != first


@pytest.mark.parametrize(
    ("text", "settings", "message"),
    [
        ("", {}, r"train file .*train.txt holds no sentences"),
        ("-DOCSTART- -X- O\n\n\n", {}, r"holds no sentences"),
        ("EU B-ORG\nrejects\n", {}, r"train.txt line 2 has 1 column\(s\).*'rejects'.*data.source.tag_column"),
        ("EU NNP B-ORG\n", {"tag_column": 3}, r"line 1 has 3 column\(s\).*tag_column=3.*'EU NNP B-ORG'"),
        (b"EU B-ORG\ncaf\xe9 O\n", {}, r"train.txt line 2 is not valid UTF-8"),
        ("a O\nb O\nc O\nd O\n\ne O\n", {"max_sentence_tokens": 3}, r"starts at line 1.*no blank line between"),
        ("EU O\n\nPeter PER\n", {}, r"tag 'PER' in .*train.txt line 3 is not O, B-TYPE or I-TYPE"),
        ("EU O\nBonn I-LOC\n", {}, r"tag 'I-LOC' in .*line 2 starts an entity.*data.source.scheme=iob1"),
        ("EU O\n", {"scheme": "bioes"}, r"unknown tag scheme data.source.scheme=bioes"),
        ("EU O\n", {"tag_column": 0}, r"token_column and tag_column are both 0"),
    ],
    ids=["empty", "docstart-only", "few-columns", "tag-column", "utf8", "long", "no-prefix", "iob1", "scheme", "same"],
)
def test_bad_input_is_one_line(tmp_path, text, settings, message):
    with pytest.raises(UserInputError, match=message) as error:
        ConllSource(train=write(tmp_path, text), **settings).load()
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserInputError, match=r"validation file not found: .*nope.txt .*data.source.validation"):
        ConllSource(train=write(tmp_path, "a O\n"), validation=str(tmp_path / "nope.txt")).load()
