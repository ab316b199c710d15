"""One reader (`data/reader.py`): training (`FileSource`) and prediction (`read_records`) read every file alike.

Each test reads the same file both ways: the texts and line numbers must agree, and a file one refuses the other
refuses with the same one-line message.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from nlp_template.data import sources
from nlp_template.data.sources import FileSource, load_source
from nlp_template.inference.inputs import read_records
from nlp_template.predict import predict
from nlp_template.utils.errors import UserInputError

# Bare and doubled quotes, commas, non-ASCII, a leading space: what breaks a reader that guesses.
TEXTS = ['he said "hi', '"quoted"', '"the film " is great', "one, two", "café über", " padded", 'a ""b', "plain"]


def train_rows(path: Path, tmp_path: Path, text_columns: tuple[str, ...] = ("text",)) -> Dataset:
    """The training split `FileSource` makes of `path`, told which columns are texts (as `load_source` does)."""
    return FileSource(train=str(path), cache_dir=str(tmp_path / "rows")).load(text_columns=list(text_columns))["train"]


def write(path: Path, texts: list[str]) -> Path:
    """`texts` with alternating labels, in the format of `path`'s extension, written the way pandas writes it."""
    frame = pd.DataFrame({"text": texts, "label": ["pos", "neg"] * (len(texts) // 2) + ["pos"] * (len(texts) % 2)})
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".json":
        path.write_text(json.dumps(frame.to_dict(orient="records"), indent=2, ensure_ascii=False))
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        path.write_text("\n".join(texts) + "\n")
    return path


@pytest.mark.parametrize("extension", ["csv", "tsv", "jsonl", "json", "parquet", "txt"])
def test_every_format_gives_training_and_prediction_the_same_texts(tmp_path, extension):
    texts = TEXTS + (["two\nlines"] if extension in ("csv", "jsonl", "json", "parquet") else [])
    path = write(tmp_path / f"data.{extension}", texts)
    trained = train_rows(path, tmp_path)["text"]
    if extension == "txt":  # training keeps each line's break (the rows concatenate back into the file)
        assert trained == [text + "\n" for text in texts]
        trained = [text.removesuffix("\n") for text in trained]
    assert trained == texts
    records = read_records(str(path), ["text"])
    assert [record["text"] for record in records] == texts
    first = {"csv": 2, "tsv": 2, "jsonl": 1, "json": 2, "parquet": 1, "txt": 1}[extension]  # after a header, a [
    step = 4 if extension == "json" else 1  # indent=2: an object spans 4 lines
    assert [record["line"] for record in records] == [first + step * i for i in range(len(texts))]


def test_quotes_tsv_reads_the_same_in_training_and_prediction(tmp_path):
    # GLUE style (bare quotes, kept as written) and one field quoted by a csv writer (unquoted).
    path = tmp_path / "quotes.tsv"
    path.write_text('text\tlabel\n"the film " is great\t1\nhe said "hi\t0\n"hi"\t1\nmeh "\t0\n"she said ""no"""\t1\n')
    expected = ['"the film " is great', 'he said "hi', '"hi"', 'meh "', 'she said "no"']
    assert train_rows(path, tmp_path)["text"] == expected
    records = read_records(str(path), ["text"])
    assert [record["text"] for record in records] == expected
    assert [record["line"] for record in records] == [2, 3, 4, 5, 6]


def test_an_unclosed_quote_never_merges_lines(tmp_path):
    path = tmp_path / "unclosed.tsv"
    path.write_text('text\tlabel\n"it begins\t1\nand goes on\t0\nuntil " here\t1\nthe end\t0\n')
    expected = ['"it begins', "and goes on", 'until " here', "the end"]
    assert train_rows(path, tmp_path)["text"] == expected
    records = read_records(str(path), ["text"])
    assert [(record["line"], record["text"]) for record in records] == list(zip([2, 3, 4, 5], expected, strict=True))


def test_a_text_with_an_unquoted_comma_is_refused_in_both(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_text("text,label\n" + "".join(f"the film was {word}, sadly,pos\n" for word in ["good", "bad"] * 8))
    message = r"Expected 2 fields in line 2, saw 3 \(also line\(s\) 3, 4, .* and 5 more\); the header has text, label"
    with pytest.raises(UserInputError, match=r"^could not read train file .*commas.csv: " + message):
        train_rows(path, tmp_path)
    with pytest.raises(UserInputError, match=r"^could not read .*commas.csv: " + message):
        read_records(str(path), ["text"])


@pytest.mark.parametrize("extension", ["csv", "tsv", "jsonl", "parquet"])
def test_duplicate_column_names_are_refused_in_both(tmp_path, extension):
    path = tmp_path / f"twice.{extension}"
    if extension == "parquet":
        pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), path)
        message = r"twice.parquet has duplicate column names: 'text'"
    elif extension == "jsonl":
        path.write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg", "text": "c"}\n')
        message = r"twice.jsonl line 2 has the key 'text' twice; keep one"
    else:
        separator = "," if extension == "csv" else "\t"
        path.write_text(separator.join(["text", "label", "text"]) + "\n" + separator.join(["a", "pos", "b"]) + "\n")
        message = rf"twice.{extension} has duplicate column names in its header \(line 1\): 'text'"
    with pytest.raises(UserInputError, match=message):
        train_rows(path, tmp_path)
    with pytest.raises(UserInputError, match=message):
        read_records(str(path), ["text"])


def test_a_text_field_that_is_not_a_string_is_refused_in_both(tmp_path):
    path = tmp_path / "lists.jsonl"
    rows = [{"text": "fine", "label": "pos"}, {"text": ["a premise", "a hypothesis"], "label": "neg"},
            {"text": 7, "label": "pos"}]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    message = (r"lists.jsonl: text column 'text' must hold a string per record, but line 2 holds a list"
               r" \(\[\"a premise\", \"a hypothesis\"\]\) \(also line\(s\) 3\); write each text as one string"
               r" \(two texts\?")  # fmt: skip
    with pytest.raises(UserInputError, match=message):
        train_rows(path, tmp_path)
    with pytest.raises(UserInputError, match=message):
        read_records(str(path), ["text"])
    # Only text columns must be strings: list labels (multi-label), a dict of answers (QA) and null texts are fine.
    path.write_text(json.dumps({"text": "fine", "label": ["plot", "cast"], "answers": {"text": ["x"]}}) + "\n"
                    + json.dumps({"text": None, "label": [], "answers": {"text": []}}) + "\n")  # fmt: skip
    data = train_rows(path, tmp_path)
    assert data["label"] == [["plot", "cast"], []] and data["text"] == ["fine", ""]
    assert [record["text"] for record in read_records(str(path), ["text"])] == ["fine", ""]


def test_csv_cells_are_texts_as_written_and_all_number_labels_are_numbers(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("text,label,score\n42,10,0.5\n007,2,1\n,1,2.25\n")
    data = train_rows(path, tmp_path)
    assert data["text"] == ["42", "007", ""]  # never 42, 7 and NaN
    assert data["label"] == [10, 2, 1] and data["score"] == [0.5, 1.0, 2.25]
    assert [record["text"] for record in read_records(str(path), ["text"])] == ["42", "007", ""]


def test_json_errors_name_the_physical_line(tmp_path):
    path = tmp_path / "gap.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": "pos"}) + "\n" for i in range(29))
                    + "\n" + '{"text": "t30", "label": }\n')  # fmt: skip
    with pytest.raises(UserInputError, match=r"^train file .*gap.jsonl line 31 is not valid JSON: Expecting value"):
        train_rows(path, tmp_path)
    with pytest.raises(UserInputError, match=r"^.*gap.jsonl line 31 is not valid JSON"):
        read_records(str(path), ["text"])
    big = tmp_path / "big.jsonl"  # larger than the chunks `datasets` once parsed it in (their row numbers leaked)
    big.write_text('{"text": "a film", "label": "pos"}\n' * 250_000 + '{"text": "the last", "label": "pos"\n')
    with pytest.raises(UserInputError, match=r"big.jsonl line 250001 is not valid JSON"):
        train_rows(big, tmp_path)
    array = tmp_path / "array.json"
    array.write_text('[\n  {"text": "a", "label": "pos"},\n\n  {"text": "b",\n   "label": "neg"}\n  {"text": "c"}\n]\n')
    with pytest.raises(UserInputError, match=r"array.json line 6 is not valid JSON: expected ',' or ']'"):
        read_records(str(array), ["text"])


def test_csv_records_report_the_line_they_start_on(tmp_path):
    path = tmp_path / "multiline.csv"
    path.write_text('text,label\n"three\nphysical\nlines",pos\n\nnext,neg\n"two\nlines",pos\n')
    records = read_records(str(path), ["text"])
    assert [(record["line"], record["text"]) for record in records] == [
        (2, "three\nphysical\nlines"), (6, "next"), (7, "two\nlines")]  # fmt: skip
    assert train_rows(path, tmp_path)["text"] == [record["text"] for record in records]
    path.write_text('text,label\n"two\nlines",pos\n"never closed,neg\nfine,pos\n')
    for read in (lambda: train_rows(path, tmp_path), lambda: read_records(str(path), ["text"])):
        with pytest.raises(UserInputError, match=r"multiline.csv: the quoted field in line 4 is never closed"):
            read()


def test_an_unreadable_file_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.csv"
    path.write_text("text,label\na film,pos\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse this one as the kernel refuses everyone else
        real_open = builtins.open

        def guarded(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded)
    fix = r": permission denied; make it readable \(chmod u\+r .*locked.csv\)$"
    with pytest.raises(UserInputError, match=r"^cannot read train file .*locked.csv" + fix):
        train_rows(path, tmp_path)
    with pytest.raises(UserInputError, match=r"^cannot read .*locked.csv" + fix):
        read_records(str(path), ["text"])


def test_prediction_never_writes_over_its_input(make_cfg, tmp_path, monkeypatch):
    source = tmp_path / "inputs.txt"
    source.write_text("a great film\n" * 50)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.txt").symlink_to(source)
    os.link(source, tmp_path / "hard.txt")
    monkeypatch.chdir(tmp_path)
    for output in [source, tmp_path / "sub" / ".." / "inputs.txt", "inputs.txt", tmp_path / "link.txt",
                   tmp_path / "hard.txt"]:  # fmt: skip
        cfg = make_cfg(["ckpt_path=x.ckpt", f"input={source}", f"output={output}", "overwrite=true"], name="predict")
        with pytest.raises(UserInputError, match=rf"^output {re.escape(str(output))} is the input file .*inputs.txt;"
                           r" predictions never replace their input: choose another output=...$"):  # fmt: skip
            predict(cfg)
    assert source.read_text() == "a great film\n" * 50


def test_rows_are_parsed_once_per_file_content(tmp_path, monkeypatch):
    path = write(tmp_path / "data.csv", TEXTS)
    first = train_rows(path, tmp_path)
    stat = path.stat()

    def fail(*args, **kwargs):
        raise AssertionError("parsed again although the Arrow copy of this content exists")

    monkeypatch.setattr(sources, "read_table", fail)
    assert train_rows(path, tmp_path)["text"] == first["text"] == TEXTS
    # Rewritten with the same size and time (`cp -p`): a new content, parsed again.
    path.write_text(path.read_text().replace("plain", "PLAIN"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(AssertionError, match="parsed again"):
        train_rows(path, tmp_path)


def test_load_source_tells_only_file_sources_the_text_columns(tmp_path):
    class OldSource:
        def load(self):
            return "loaded without arguments"

    assert load_source(OldSource(), ["text"]) == "loaded without arguments"
    path = tmp_path / "numbers.csv"
    path.write_text("text,label\n1,2\n3,4\n")
    source = FileSource(train=str(path), cache_dir=str(tmp_path / "rows"))
    assert load_source(source, ["text"])["train"]["text"] == ["1", "3"]
    assert load_source(source, [])["train"]["text"] == [1, 3]  # a column nobody said was text: numbers
