"""Bad-input catalogue table: labels and the validation carve (docs/reliability.md, "Labels", "Validation split").

Run by `test_bad_input.py` with its guarantees (one `error:` line, exit 1, the user's files unchanged):
    pytest tests/test_bad_input.py -k "data-label or data-carve or data-max-train"
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

from catalogue import FILE_DATA, Case

ROWS = [f"the film was {word} and long,{label}" for word, label in [("good", "pos"), ("awful", "neg")] * 20]
CSV = "text,label\n" + "\n".join(ROWS) + "\n"  # 40 examples, rows 1-40


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)  # float NaN is written as the bare token NaN


def _parquet(labels: list) -> Callable[[Path], bytes]:
    def write(_: Path) -> bytes:
        import pandas as pd

        buffer = io.BytesIO()
        pd.DataFrame({"text": [f"review {i}" for i in range(len(labels))], "label": labels}).to_parquet(buffer)
        return buffer.getvalue()

    return write


FILES: dict[str, str | bytes | Callable[[Path], bytes]] = {
    "labels_padded.csv": CSV + "a fine film,pos \nan odd film, neg\n",
    "labels_nan.csv": CSV + "a film,NaN\nanother film,NA\n",
    "labels_nan.jsonl": _jsonl(
        [{"text": f"review {i}", "label": ["pos", "neg", math.nan, None][i % 4]} for i in range(20)]
    ),
    "labels_nan.parquet": _parquet(["pos", "neg", None, math.nan] * 5),
    "labels_one_row.csv": "text,label\na good film,pos\n",
    "labels_one_class.csv": "text,label\n" + "".join(f"film {i},pos\n" for i in range(20)),
    "labels_many.csv": "text,label\n" + "".join(f"review {i},label{i % 500}\n" for i in range(1500)),
    "labels_many_dev.csv": "text,label\n" + "".join(f"review {i},other{i}\n" for i in range(500)),
    # Multi-label: carved at random; with data.seed=1 the carve puts the only 'sound' example in validation.
    "labels_rare_topic.jsonl": _jsonl(
        [{"text": f"film {i}", "label": [["plot"], ["cast"]][i % 2]} for i in range(20)]
        + [{"text": "film 20", "label": ["sound"]}]
    ),
}

# fmt: off
CASES = [
    Case("data-label-whitespace-stripped", "data", [*FILE_DATA, "data.source.train={tmp}/labels_padded.csv"],
         r"Stripped leading/trailing whitespace from 2 label\(s\) \(train: 2\)", handled=True),
    Case("data-label-nan-csv", "train", [*FILE_DATA, "data.source.train={tmp}/labels_nan.csv"],
         r"^train split has 2 empty label\(s\) in column 'label' at row\(s\) 41, 42 \(1 = first example; found 'NaN',"
         r" 'NA'; .*\); fill them in, or set data.drop_missing_labels=true to leave those rows out$"),
    Case("data-label-nan-jsonl", "train", [*FILE_DATA, "data.source.train={tmp}/labels_nan.jsonl"],
         r"^train split has 10 empty label\(s\) in column 'label' at row\(s\) 3, 4, 7, 8, 11, 12, 15, 16, 19, 20 "),
    Case("data-label-nan-parquet", "train", [*FILE_DATA, "data.source.train={tmp}/labels_nan.parquet"],
         r"^train split has 10 empty label\(s\) in column 'label' at row\(s\) 3, 4, 7, 8, 11, 12, 15, 16, 19, 20 "),
    Case("data-label-missing-dropped", "data", [*FILE_DATA, "data.source.train={tmp}/labels_nan.csv",
                                                "data.drop_missing_labels=true"],
         r"Dropped examples with a missing label \(data.drop_missing_labels=true\): train: 2", handled=True),
    Case("data-label-duplicate-in-config", "train", [*FILE_DATA, "data.source.train={tmp}/labels_nan.csv",
                                                     "data.labels=[neg,pos,neg]"],
         r"^data.labels lists 'neg' more than once \(after stripping whitespace\); list each label once, in id order,"
         r" e.g. data.labels=\[neg,pos\]$"),
    Case("data-max-train-examples-zero", "train", [*FILE_DATA, "data.source.train={tmp}/labels_padded.csv",
                                                   "data.max_train_examples=0"],
         r"^data.max_train_examples must be a positive integer, or null to train on every example; got 0$"),
    Case("data-label-single-class", "train", [*FILE_DATA, "data.source.train={tmp}/labels_one_class.csv"],
         r"^every training example has the label 'pos': a classifier cannot learn from a single class; add training"
         r" examples of other labels$"),
    Case("data-label-list-capped", "train", [*FILE_DATA, "data.source.train={tmp}/labels_many.csv",
                                             "data.source.validation={tmp}/labels_many_dev.csv"],
         r"^validation split has labels not in the label set: \['other0', .*'other106' and 490 more\] \(label set:"
         r" \['label0', .*'label106' and 490 more\]\)\. Fix the data, or list every label in data.labels=\[...\]$"),
    Case("data-carve-one-row", "train", [*FILE_DATA, "data.source.train={tmp}/labels_one_row.csv"],
         r"^the train split has 1 example: too few to carve a validation split from \(one for each is the least\);"
         r" add examples, or pass a validation file \(data.source.validation=...\)$"),
    Case("data-carve-took-every-example-of-a-label", "train", [*FILE_DATA, "data.seed=1",
                                                               "data.source.train={tmp}/labels_rare_topic.jsonl",
                                                               "data.validation_fraction=0.5"],
         r"^validation split has labels not in the label set: \['sound'\] \(label set: \['cast', 'plot'\]\)\. The"
         r" validation split was carved at random from train \(data.validation_fraction=0.5; .*\) and took every"
         r" example of these labels\. Add examples of them, pass a validation file \(data.source.validation=...\)"),
]
# fmt: on
