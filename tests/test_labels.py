"""Label hygiene and the validation carve: the rules of docs/reliability.md ("Labels", "Validation split").

Whitespace around a label is stripped (and counted), labels are otherwise kept as written, missing labels are an
error naming the rows unless `data.drop_missing_labels=true`, `data.labels` lists each label once,
`data.max_train_examples` is positive, and the carve is stratified by label where there is one label per example.
Most tests drive the data module directly; no training.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path

import hydra
import pandas as pd
import pytest
from conftest import InMemory
from datasets import Dataset, DatasetDict

from nlp_template.data.labels import is_missing
from nlp_template.data.sources import FileSource
from nlp_template.data.splits import stratified_indices
from nlp_template.data.text_classification import TextClassificationDataModule
from nlp_template.utils.errors import UserInputError


def prepare(tmp_path: Path, train: Path, validation: Path | None = None, **kwargs) -> TextClassificationDataModule:
    source = FileSource(train=str(train), validation=str(validation) if validation else None)
    dm = TextClassificationDataModule(source, vocab_size=200, cache_dir=str(tmp_path / "cache"), **kwargs)
    dm.prepare_data()
    return dm


def write_csv(path: Path, labels: list[str]) -> Path:
    """A CSV with a distinct text per row and the labels exactly as given (raw text: no quoting, no escaping)."""
    path.write_text("text,label\n" + "".join(f"review number {i},{label}\n" for i, label in enumerate(labels)))
    return path


def write_jsonl(path: Path, labels: list) -> Path:
    # json.dumps writes float NaN as the bare token NaN, as pandas and many JSON writers do.
    path.write_text(
        "".join(json.dumps({"text": f"review number {i}", "label": v}) + "\n" for i, v in enumerate(labels))
    )
    return path


def label_ids(dm: TextClassificationDataModule, *splits: str) -> list:
    """The encoded labels of the splits, one list."""
    return [label for split in splits for label in dm.splits[split]["labels"]]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------- whitespace
def test_whitespace_around_labels_is_stripped_and_logged(tmp_path, caplog):
    path = write_csv(tmp_path / "train.csv", ["pos ", " pos", "pos", "neg", "neg  "] * 4)
    with caplog.at_level(logging.INFO):
        dm = prepare(tmp_path, path)
    assert dm.labels == ["neg", "pos"]  # one class each, not 'pos ', ' pos', 'pos'
    assert "Stripped leading/trailing whitespace from 12 label(s) (train: 12)" in caplog.text
    assert Counter(label_ids(dm, "train", "validation")) == {
        1: 12,
        0: 8,
    }  # every padded label maps to its stripped class


def test_whitespace_only_labels_are_missing_not_a_class(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["pos", "neg", "   "] * 4)
    with pytest.raises(UserInputError, match=r"^train split has 4 empty label\(s\) in column 'label' at row\(s\) 3,"):
        prepare(tmp_path, path)


# ------------------------------------------------------------------------------------------ kept as written
def test_numeric_looking_labels_are_kept_as_written(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", ["001", "1", "01", "002"] * 5)
    dm = prepare(tmp_path, path)
    assert dm.labels == ["001", "002", "01", "1"]  # four classes: '001' is not '1'


def test_json_number_labels_become_their_strings(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [1, 2, 10] * 5)
    assert prepare(tmp_path, path).labels == ["1", "2", "10"]  # integers keep their numeric order


def test_numeric_looking_csv_labels_are_kept_as_written(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["001", "1", "01", "002"] * 5)
    assert prepare(tmp_path, path).labels == ["001", "002", "01", "1"]


# ---------------------------------------------------------------------------------------------------- missing
MISSING_CSV = ["NaN", "NA", "nan", "N/A", "null", "None", "", "NULL", " na "]


@pytest.mark.parametrize("value", MISSING_CSV)
def test_missing_label_strings_in_csv_are_refused_naming_rows(tmp_path, value):
    path = write_csv(tmp_path / "train.csv", ["pos", "neg", value, "pos", "neg", value] * 2)
    with pytest.raises(UserInputError) as error:
        prepare(tmp_path, path)
    message = one_line(error)
    assert message.startswith("train split has 4 empty label(s) in column 'label' at row(s) 3, 6, 9, 12 (1 = first")
    assert message.endswith("set data.drop_missing_labels=true to leave those rows out")


def test_nan_and_null_in_jsonl_are_refused_naming_rows(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", ["pos", math.nan, "neg", None, "NaN", "pos"] * 2)
    with pytest.raises(UserInputError, match=r"^train split has 6 empty label\(s\) in column 'label' at row\(s\)"
                       r" 2, 4, 5, 8, 10, 11 \(1 = first example; found "):  # fmt: skip
        prepare(tmp_path, path)


def test_nan_in_parquet_is_refused_naming_rows(tmp_path):
    path = tmp_path / "train.parquet"
    pd.DataFrame({"text": [f"review {i}" for i in range(8)], "label": ["pos", None, "neg", math.nan] * 2}).to_parquet(
        path
    )
    with pytest.raises(UserInputError, match=r"^train split has 4 empty label\(s\) .* at row\(s\) 2, 4, 6, 8 "):
        prepare(tmp_path, path)


def test_missing_labels_are_dropped_and_counted_when_asked(tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", ["pos", "neg", "NaN", "pos", "neg", "NA"] * 4)
    dev = write_csv(tmp_path / "dev.csv", ["pos", "neg", "", "pos"])
    with caplog.at_level(logging.INFO):
        dm = prepare(tmp_path, train, dev, drop_missing_labels=True)
    assert dm.labels == ["neg", "pos"]
    assert dm.splits["train"].num_rows == 16 and dm.splits["validation"].num_rows == 3
    assert "Dropped examples with a missing label (data.drop_missing_labels=true): train: 8, validation: 1" in (
        caplog.text
    )


def test_drop_missing_labels_keeps_the_source_row_numbers_of_other_errors(tmp_path):
    # Row 4 has a missing label (dropped), row 5 an empty text: the error names row 5 of the file, not row 4.
    path = tmp_path / "train.csv"
    path.write_text("text,label\na,pos\nb,neg\nc,pos\nd,NaN\n,neg\n" + "e,pos\n" * 5)
    with pytest.raises(UserInputError, match=r"1 empty text\(s\) in column 'text' at row\(s\) 5 "):
        prepare(tmp_path, path, drop_missing_labels=True)


def test_drop_missing_labels_via_the_config(tmp_path, make_cfg):
    path = write_csv(tmp_path / "train.csv", ["pos", "neg", "nan", "pos"] * 5)
    cfg = make_cfg(["data=files", f"data.source.train={path}", "data.drop_missing_labels=true"])
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.splits["train"].num_rows + dm.splits["validation"].num_rows == 15


def test_all_labels_missing_is_refused_even_when_dropping(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["NaN"] * 6)
    with pytest.raises(UserInputError, match=r"^train split: all 6 examples have a missing label in column 'label'"):
        prepare(tmp_path, path, drop_missing_labels=True)


def test_multi_label_missing_elements_are_refused_and_empty_lists_are_not(tmp_path):
    sets = [["plot"], ["cast", None], [], ["plot", "cast"]] * 3
    path = write_jsonl(tmp_path / "topics.jsonl", sets)
    with pytest.raises(UserInputError, match=r"^train split has 3 example\(s\) with a missing label in column 'label'"
                       r" at row\(s\) 2, 6, 10 \(1 = first example; found None;"):  # fmt: skip
        prepare(tmp_path, path)
    dm = prepare(tmp_path, path, drop_missing_labels=True)
    assert dm.problem_type == "multi_label_classification" and dm.labels == ["cast", "plot"]
    assert [0.0, 0.0] in label_ids(dm, "train", "validation")  # [] kept: "no label"


def test_separated_multi_label_parts_follow_the_same_rules(tmp_path):
    path = write_csv(tmp_path / "topics.csv", ["plot|cast", "plot | NaN", "cast", "plot"] * 3)
    with pytest.raises(UserInputError, match=r"^train split has 3 empty label\(s\) .* 2, 6, 10 .*'plot \| NaN'"):
        prepare(tmp_path, path, label_separator="|")


def test_regression_nan_targets_are_missing(tmp_path):
    path = write_jsonl(tmp_path / "scores.jsonl", [1.5, 2.0, math.nan, 3.25] * 3)
    with pytest.raises(UserInputError, match=r"^train split has 3 empty label\(s\) .* at row\(s\) 3, 7, 11 "):
        prepare(tmp_path, path)
    dm = prepare(tmp_path, path, drop_missing_labels=True)
    assert dm.problem_type == "regression"
    assert dm.splits["train"].num_rows + dm.splits["validation"].num_rows == 9


@pytest.mark.parametrize("marker", ["NA", "", "nan"])
def test_a_csv_score_column_with_a_missing_marker_stays_regression(tmp_path, marker):
    # Read as strings, the column would have become one class per distinct score.
    path = write_csv(tmp_path / "scores.csv", ["1.5", "2.0", marker, "3.25"] * 3)
    with pytest.raises(UserInputError, match=r"^train split has 3 empty label\(s\) .* at row\(s\) 3, 7, 11 "):
        prepare(tmp_path, path)
    dm = prepare(tmp_path, path, drop_missing_labels=True)
    assert dm.problem_type == "regression"
    assert dm.splits["train"].num_rows + dm.splits["validation"].num_rows == 9


def test_missing_values_are_exactly_the_documented_ones():
    for value in [None, math.nan, "", "  ", "NaN", "nan", "NA", "n/a", "N/A", "null", "NULL", "None", " none "]:
        assert is_missing(value), value
    for value in ["0", 0, "-", "O", "no", "neg", "nana", "NaN-ish", False]:
        assert not is_missing(value), value


# ------------------------------------------------------------------------------------------ configuration
def test_duplicate_configured_labels_are_refused(tmp_path):
    with pytest.raises(UserInputError, match=r"^data.labels lists 'neg' more than once .* data.labels=\[neg,pos\]$"):
        TextClassificationDataModule(FileSource(train="x.csv"), labels=["neg", "pos", "neg"])
    with pytest.raises(UserInputError, match=r"^data.labels lists 'pos' more than once \(after stripping"):
        TextClassificationDataModule(FileSource(train="x.csv"), labels=["pos ", "neg", "pos"])


@pytest.mark.parametrize("value", [0, -5])
def test_max_train_examples_must_be_positive(value):
    with pytest.raises(UserInputError, match=rf"^data.max_train_examples must be a positive integer, or null to train"
                       rf" on every example; got {value}$"):  # fmt: skip
        TextClassificationDataModule(FileSource(train="x.csv"), max_train_examples=value)


# -------------------------------------------------------------------------------------- the validation carve
def test_stratified_carve_keeps_every_label_in_train(tmp_path):
    labels = [f"label{i % 500}" for i in range(1500)]  # 500 labels x 3 examples: the reproduction
    dm = prepare(tmp_path, write_csv(tmp_path / "train.csv", labels))
    assert len(dm.labels) == 500
    train, validation = Counter(label_ids(dm, "train")), Counter(label_ids(dm, "validation"))
    assert set(train) == set(range(500))  # every label kept training examples
    assert sum(validation.values()) == 150 and max(validation.values()) == 1


def test_stratified_indices_are_proportional_and_leave_singletons_in_train():
    strata = ["a"] * 80 + ["b"] * 19 + ["c"]  # 100 rows, 20 for validation
    kept, held = stratified_indices(strata, 20, seed=0)
    assert sorted(kept + held) == list(range(100))
    assert Counter(strata[i] for i in held) == {"a": 16, "b": 4}  # c's only example stays in train
    assert stratified_indices(strata, 20, seed=0) == (kept, held)  # seeded


def test_labels_with_one_example_stay_in_train(tmp_path):
    rare = [f"rare{i}" for i in range(6)]  # a random half-and-half carve would keep all six in train 1 time in 64
    dm = prepare(tmp_path, write_csv(tmp_path / "train.csv", ["pos", "neg"] * 10 + rare), validation_fraction=0.5)
    assert dm.labels == ["neg", "pos", *rare]
    assert set(label_ids(dm, "train")) == set(range(8))
    assert dm.splits["validation"].num_rows == 13  # ceil(0.5 x 26), all from pos and neg


def test_a_one_row_train_file_is_one_error_line(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["pos"])
    with pytest.raises(UserInputError) as error:
        prepare(tmp_path, path)
    assert one_line(error) == (
        "the train split has 1 example: too few to carve a validation split from (one for each is the least); add"
        " examples, or pass a validation file (data.source.validation=...)"
    )


def test_labels_of_one_example_each_cannot_be_carved(tmp_path):
    with pytest.raises(UserInputError, match=r"^cannot carve a validation split from train: each of its 3 label\(s\)"
                       r" has a single example"):  # fmt: skip
        prepare(tmp_path, write_csv(tmp_path / "train.csv", ["a", "b", "c"]))


def test_random_carve_that_takes_a_label_says_so(tmp_path):
    """Multi-label data is carved at random; when that carve took every example of a label, the message says so."""
    sets = [["plot"], ["cast"]] * 10 + [["sound"]]
    rows = Dataset.from_dict({"text": [f"review {i}" for i in range(21)], "label": sets})
    # The seed whose random carve (the same `train_test_split` the data module runs) puts 'sound' in validation.
    seed = next(s for s in range(100) if ["sound"] in rows.train_test_split(test_size=0.5, seed=s)["test"]["label"])
    source = InMemory(DatasetDict({"train": rows}))
    dm = TextClassificationDataModule(source, vocab_size=200, cache_dir=str(tmp_path / "c"), validation_fraction=0.5,
                                      seed=seed)  # fmt: skip
    with pytest.raises(UserInputError) as error:
        dm.prepare_data()
    message = one_line(error)
    assert message.startswith("validation split has labels not in the label set: ['sound'] (label set: ['cast',")
    assert "carved at random from train (data.validation_fraction=0.5" in message
    assert "pass a validation file (data.source.validation=...)" in message


def test_subset_that_loses_a_label_says_so(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["pos", "neg"] * 30 + ["rare"])
    dev = write_csv(tmp_path / "dev.csv", ["pos", "neg", "rare"])
    with pytest.raises(UserInputError, match=r"not in the label set: \['rare'\].*random subset of"
                       r" data.max_train_examples=10 examples"):  # fmt: skip
        prepare(tmp_path, train, dev, max_train_examples=10, seed=1)


# --------------------------------------------------------------------------------------------- single class
def test_single_class_training_data_is_refused_naming_the_class(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["pos"] * 12)
    with pytest.raises(UserInputError) as error:
        prepare(tmp_path, path)
    assert one_line(error) == (
        "every training example has the label 'pos': a classifier cannot learn from a single class; add training"
        " examples of other labels"
    )


def test_single_class_is_refused_even_with_a_longer_label_list(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["pos"] * 12)
    with pytest.raises(UserInputError, match=r"^every training example has the label 'pos'"):
        prepare(tmp_path, path, labels=["neg", "pos"])


# ------------------------------------------------------------------------------------------- error lines capped
def test_error_lines_name_ten_labels_and_a_count(tmp_path):
    train = write_csv(tmp_path / "train.csv", [f"label{i % 500}" for i in range(1500)])
    dev = write_csv(tmp_path / "dev.csv", [f"other{i}" for i in range(500)])
    with pytest.raises(UserInputError) as error:
        prepare(tmp_path, train, dev)
    message = one_line(error)
    assert message.startswith("validation split has labels not in the label set: ['other0', 'other1', 'other10',")
    assert "'other106' and 490 more] (label set: ['label0'," in message and "'label106' and 490 more])" in message
    assert len(message) < 400


def test_missing_label_rows_are_capped(tmp_path):
    path = write_csv(tmp_path / "train.csv", ["pos", "NaN", "neg"] * 300)
    with pytest.raises(UserInputError) as error:
        prepare(tmp_path, path)
    assert "at row(s) 2, 5, 8, 11, 14, 17, 20, 23, 26, 29 and 290 more (1 = first" in one_line(error)
    assert len(one_line(error)) < 300
