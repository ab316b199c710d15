"""Bad-input catalogue table: data files that one reader (`data/reader.py`) refuses the same way in training and
prediction, with the physical line of the record at fault; prediction never writes over its input.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import json

from catalogue import FILE_DATA, Case

_WORDS = [("good", "pos"), ("awful", "neg")] * 10


def _jsonl(rows: list[dict | None]) -> str:
    """JSON lines; None is a blank line."""
    return "".join("\n" if row is None else json.dumps(row) + "\n" for row in rows)


FILES = {
    # Every text holds one unquoted comma: pandas once made the first field an index and trained on the rest.
    "commas.csv": "text,label\n" + "".join(f"the film was {word}, sadly,{label}\n" for word, label in _WORDS),
    "dup_columns.csv": "text,label,text\n" + "".join(f"a {word} film,{label},{word}\n" for word, label in _WORDS),
    # Line 3 is blank: the list sits on physical line 4, the third record.
    "list_texts.jsonl": _jsonl(
        [
            {"text": "a good film", "label": "pos"},
            {"text": "an awful film", "label": "neg"},
            None,
            {"text": ["a good film", "with a plot"], "label": "pos"},
        ]
    ),
    "number_texts.jsonl": _jsonl(
        [{"text": i if i % 5 == 4 else f"film {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    ),
    # 29 good records, a blank line 30, a broken record on line 31 (the 30th record).
    "bad_json_line.jsonl": _jsonl([{"text": f"film {i}", "label": "pos"} for i in range(29)] + [None])
    + '{"text": "film 30" "label": "neg"}\n',
    "unclosed.csv": 'text,label\ngood,pos\n"never closed,neg\nfine,pos\nbad,neg\n',
    # A quoted text spans lines 2-3; the bad record starts on physical line 5 (record 4).
    "quoted_lines.csv": 'text,label\n"two\nlines",pos\nfine,neg\nbad,row,here\n',
}

# fmt: off
PREDICT = ["ckpt_path={ckpt}", "output={tmp}/new.jsonl"]
CASES = [
    Case("data-csv-unquoted-comma", "train", [*FILE_DATA, "data.source.train={tmp}/commas.csv"],
         r"^could not read train file .*commas.csv: Expected 2 fields in line 2, saw 3 \(also line\(s\) 3, 4, 5,"
         r" .* and 9 more\); the header has text, label; quote a text that holds a comma"),
    Case("predict-csv-unquoted-comma", "predict", [*PREDICT, "input={tmp}/commas.csv"],
         r"^could not read .*commas.csv: Expected 2 fields in line 2, saw 3 "),
    Case("data-duplicate-column-names", "train", [*FILE_DATA, "data.source.train={tmp}/dup_columns.csv"],
         r"^train file .*dup_columns.csv has duplicate column names in its header \(line 1\): 'text'; give every"
         r" column its own name$"),
    Case("predict-duplicate-column-names", "predict", [*PREDICT, "input={tmp}/dup_columns.csv"],
         r"dup_columns.csv has duplicate column names in its header \(line 1\): 'text'"),
    Case("data-jsonl-list-text", "train", [*FILE_DATA, "data.source.train={tmp}/list_texts.jsonl"],
         r"^train file .*list_texts.jsonl: text column 'text' must hold a string per record, but line 4 holds a list"
         r" \(\[\"a good film\", \"with a plot\"\]\); write each text as one string \(two texts\? "),
    Case("predict-jsonl-list-text", "predict", [*PREDICT, "input={tmp}/list_texts.jsonl"],
         r"list_texts.jsonl: text column 'text' must hold a string per record, but line 4 holds a list"),
    Case("data-jsonl-number-text", "train", [*FILE_DATA, "data.source.train={tmp}/number_texts.jsonl"],
         r"number_texts.jsonl: text column 'text' must hold a string per record, but line 5 holds a number \(4\)"
         r" \(also line\(s\) 10, 15, 20\)"),
    Case("predict-jsonl-number-text", "predict", [*PREDICT, "input={tmp}/number_texts.jsonl"],
         r"number_texts.jsonl: text column 'text' must hold a string per record, but line 5 holds a number"),
    Case("data-jsonl-physical-line", "train", [*FILE_DATA, "data.source.train={tmp}/bad_json_line.jsonl"],
         r"^train file .*bad_json_line.jsonl line 31 is not valid JSON: Expecting ',' delimiter \(column 20\)"),
    Case("predict-jsonl-physical-line", "predict", [*PREDICT, "input={tmp}/bad_json_line.jsonl"],
         r"bad_json_line.jsonl line 31 is not valid JSON"),
    Case("data-csv-unclosed-quote", "train", [*FILE_DATA, "data.source.train={tmp}/unclosed.csv"],
         r"^could not read train file .*unclosed.csv: the quoted field in line 3 is never closed; close it with \""),
    Case("predict-csv-unclosed-quote", "predict", [*PREDICT, "input={tmp}/unclosed.csv"],
         r"unclosed.csv: the quoted field in line 3 is never closed"),
    Case("predict-csv-line-after-quoted-newline", "predict", [*PREDICT, "input={tmp}/quoted_lines.csv"],
         r"quoted_lines.csv: Expected 2 fields in line 5, saw 3;"),
    Case("predict-output-is-the-input", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.txt",
                                                   "output={tmp}/inputs.txt", "overwrite=true"],
         r"^output .*inputs.txt is the input file .*inputs.txt; predictions never replace their input: choose another"
         r" output=...$"),
    Case("predict-output-is-the-input-by-another-path", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.txt",
                                                                   "output={tmp}/broken_model/../inputs.txt",
                                                                   "overwrite=true"],
         r"^output .*broken_model/../inputs.txt is the input file .*/inputs.txt; predictions never replace"),
]
# fmt: on
