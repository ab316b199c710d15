"""The data module: loaders per file format, labels, validation carve, caching, dynamic padding, truncation."""

from __future__ import annotations

import logging

import pytest
import torch

from nlp_template.data.samples import SentimentSamples
from nlp_template.data.sources import FileSource
from nlp_template.data.text_classification import TextClassificationDataModule


def datamodule(source, cache_dir, **kwargs) -> TextClassificationDataModule:
    kwargs = {"vocab_size": 300, "batch_size": 8, "cache_dir": str(cache_dir), **kwargs}
    dm = TextClassificationDataModule(source, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("extension", ["csv", "tsv", "jsonl", "parquet"])
def test_file_formats_load(sentiment_csv, tmp_path, extension):
    train = sentiment_csv(f"train.{extension}", rows=40)
    test = sentiment_csv(f"test.{extension}", rows=10)
    dm = datamodule(FileSource(train=str(train), test=str(test)), tmp_path / "cache")
    assert dm.labels == ["neg", "pos"]
    assert dm.splits["test"].num_rows == 10
    assert dm.splits["train"].num_rows + dm.splits["validation"].num_rows == 40  # validation carved from train


def test_tsv_keeps_bare_quotes(tmp_path):
    # GLUE TSVs hold unbalanced quotes; with quote processing on, pandas would merge these lines into one field.
    path = tmp_path / "train.tsv"
    path.write_text('text\tlabel\n"the film " is great\t1\nit \'s " dull\t0\nfine\t1\nmeh "\t0\n')
    raw = FileSource(train=str(path)).load()["train"]
    assert raw.num_rows == 4
    assert raw["text"][0] == '"the film " is great'


def test_string_labels_are_sorted_and_mapped(sentiment_csv, tmp_path):
    path = sentiment_csv(rows=30, labels=("positive", "negative", "neutral"))
    dm = datamodule(FileSource(train=str(path)), tmp_path / "cache", validation_fraction=0.2)
    assert dm.labels == ["negative", "neutral", "positive"]
    raw = FileSource(train=str(path)).load()["train"]
    train = dm.splits["train"]
    # The carve shuffles, so check the mapping through the texts.
    by_text = dict(zip(raw["text"], raw["label"], strict=True))
    tokenizer = dm.tokenizer
    for ids, label_id in zip(train["input_ids"][:10], train["labels"][:10], strict=True):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        assert dm.labels[label_id] == by_text[next(t for t in by_text if t.lower() == text)]
    assert dm.model_kwargs()["id2label"] == {0: "negative", 1: "neutral", 2: "positive"}


def test_integer_labels_sort_numerically(sentiment_csv, tmp_path):
    path = sentiment_csv(rows=30, labels=(10, 2, 1))
    dm = datamodule(FileSource(train=str(path)), tmp_path / "cache")
    assert dm.labels == ["1", "2", "10"]


def test_label_list_from_config_wins(sentiment_csv, tmp_path):
    path = sentiment_csv(rows=20)
    dm = datamodule(FileSource(train=str(path)), tmp_path / "cache", labels=["pos", "neg", "other"])
    assert dm.labels == ["pos", "neg", "other"]
    assert dm.model_kwargs()["id2label"][2] == "other"


def test_batches_are_padded_to_the_batch_maximum(tmp_path):
    dm = datamodule(SentimentSamples(num_train=200, num_validation=50, num_test=50), tmp_path / "cache")
    global_max = max(len(ids) for ids in dm.splits["train"]["input_ids"])
    widths = set()
    for batch in dm.train_dataloader():
        lengths = batch["attention_mask"].sum(dim=1)
        assert batch["input_ids"].shape[1] == int(lengths.max())  # no column is padding in every row
        assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == dm.tokenizer.pad_token_id)
        widths.add(batch["input_ids"].shape[1])
    assert len(widths) > 1 and min(widths) < global_max


def test_second_setup_does_no_tokenization(tmp_path, monkeypatch):
    source = SentimentSamples(num_train=100, num_validation=20, num_test=20)
    first = datamodule(source, tmp_path / "cache")

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again although the cache holds this data")

    monkeypatch.setattr(TextClassificationDataModule, "tokenize", fail)
    second = datamodule(source, tmp_path / "cache")
    assert second.splits["train"]["input_ids"] == first.splits["train"]["input_ids"]
    # A different setting is a different cache entry.
    with pytest.raises(AssertionError, match="tokenized again"):
        datamodule(source, tmp_path / "cache", max_length=16)


def test_trained_tokenizer_is_reused_and_saved_in_the_run_directory(tmp_path):
    source = SentimentSamples(num_train=100, num_validation=20, num_test=20)
    first = datamodule(source, tmp_path / "cache", output_dir=str(tmp_path / "run1"))
    second = datamodule(source, tmp_path / "cache", output_dir=str(tmp_path / "run2"))
    assert (tmp_path / "run1" / "tokenizer" / "tokenizer.json").is_file()
    assert first.tokenizer.get_vocab() == second.tokenizer.get_vocab()
    assert first.model_kwargs()["tokenizer_path"] == str((tmp_path / "run1" / "tokenizer").resolve())


def test_truncation_is_counted_and_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        dm = datamodule(SentimentSamples(num_train=100, num_validation=20, num_test=20), tmp_path / "c", max_length=12)
    assert max(len(ids) for ids in dm.splits["train"]["input_ids"]) == 12
    assert dm.stats["train"]["truncated"] > 0
    assert "truncated to max_length=12" in caplog.text


def test_sentence_pairs_get_segment_ids(tmp_path, sentiment_csv):
    path = sentiment_csv(
        "pairs.csv", premise=["a cat sits", "a dog runs"] * 10, hypothesis=["an animal", "nothing"] * 10,
        label=["yes", "no"] * 10,
    )  # fmt: skip
    dm = datamodule(
        FileSource(train=str(path)), tmp_path / "cache", text_column="premise", text_pair_column="hypothesis"
    )
    batch = next(iter(dm.train_dataloader()))
    assert "token_type_ids" in batch and batch["token_type_ids"].max() == 1


def test_max_train_examples_takes_a_subset(tmp_path):
    source = SentimentSamples(num_train=100, num_validation=20, num_test=20)
    dm = datamodule(source, tmp_path / "cache", max_train_examples=30)
    assert dm.splits["train"].num_rows == 30


def test_samples_are_deterministic_balanced_and_varied():
    first, second = SentimentSamples(seed=7).load(), SentimentSamples(seed=7).load()
    assert first["train"]["text"] == second["train"]["text"]
    assert SentimentSamples(seed=8).load()["train"]["text"] != first["train"]["text"]
    lengths = [len(text.split()) for text in first["train"]["text"]]
    assert 4 <= min(lengths) <= 8 and 45 <= max(lengths) <= 70
    share = first["train"]["label"].count("positive") / first["train"].num_rows
    assert 0.45 < share < 0.55


def test_a_bag_of_words_cannot_solve_the_samples():
    """Naive Bayes over unigrams stays far below the >= 0.90 the default transformer run reaches."""
    import math
    from collections import Counter

    data = SentimentSamples().load()
    counts = {label: Counter() for label in ("negative", "positive")}
    for text, label in zip(data["train"]["text"], data["train"]["label"], strict=True):
        counts[label].update(text.split())
    vocab = set(counts["negative"]) | set(counts["positive"])
    totals = {label: sum(c.values()) + len(vocab) for label, c in counts.items()}

    def predict(text: str) -> str:
        scores = {
            label: sum(math.log((counts[label][w] + 1) / totals[label]) for w in text.split()) for label in counts
        }
        return max(scores, key=scores.get)

    test = data["test"]
    accuracy = sum(predict(t) == y for t, y in zip(test["text"], test["label"], strict=True)) / test.num_rows
    assert accuracy < 0.75
