"""Bad input gives one clear line that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch

from nlp_template.data.sources import FileSource, HubSource
from nlp_template.data.text_classification import TextClassificationDataModule
from nlp_template.models.text_classifier import TextClassifier
from nlp_template.utils.errors import UserInputError, exit_on_user_error


def prepare(source, tmp_path, **kwargs) -> TextClassificationDataModule:
    dm = TextClassificationDataModule(source, vocab_size=200, cache_dir=str(tmp_path / "cache"), **kwargs)
    dm.prepare_data()
    return dm


def test_missing_text_column_lists_the_columns(sentiment_csv, tmp_path):
    path = sentiment_csv()
    with pytest.raises(UserInputError, match=r"no column 'sentence' \(data.text_column\).*\['text', 'label'\]"):
        prepare(FileSource(train=str(path)), tmp_path, text_column="sentence")


def test_missing_label_column_lists_the_columns(sentiment_csv, tmp_path):
    path = sentiment_csv()
    with pytest.raises(UserInputError, match=r"no column 'sentiment' \(data.label_column\).*Set data.label_column"):
        prepare(FileSource(train=str(path)), tmp_path, label_column="sentiment")


def test_empty_file(tmp_path):
    (tmp_path / "train.csv").write_text("")
    with pytest.raises(UserInputError, match="train file is empty"):
        prepare(FileSource(train=str(tmp_path / "train.csv")), tmp_path)


def test_header_only_file(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n")
    with pytest.raises(UserInputError, match="header but no rows"):
        prepare(FileSource(train=str(tmp_path / "train.csv")), tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(UserInputError, match=r"train file not found: .*nope.csv \(set data.source.train"):
        prepare(FileSource(train=str(tmp_path / "nope.csv")), tmp_path)


def test_unknown_extension(tmp_path):
    (tmp_path / "train.xlsx").write_text("x")
    with pytest.raises(UserInputError, match="unknown extension '.xlsx'"):
        prepare(FileSource(train=str(tmp_path / "train.xlsx")), tmp_path)


def test_validation_label_unseen_in_training(sentiment_csv, tmp_path):
    train = sentiment_csv("train.csv", labels=("neg", "pos"))
    validation = sentiment_csv("dev.csv", rows=10, labels=("neg", "pos", "mixed"))
    with pytest.raises(UserInputError, match=r"validation split has labels not in the label set: \['mixed'\]"):
        prepare(FileSource(train=str(train), validation=str(validation)), tmp_path)


def test_model_path_that_does_not_exist(tmp_path):
    with pytest.raises(UserInputError, match="model directory does not exist: .*missing_model"):
        TextClassifier(backbone=str(tmp_path / "missing_model"), pretrained=True, id2label={0: "a", 1: "b"})


def test_tokenizer_path_that_does_not_exist(sentiment_csv, tmp_path):
    with pytest.raises(UserInputError, match="tokenizer directory does not exist"):
        prepare(FileSource(train=str(sentiment_csv())), tmp_path, tokenizer=str(tmp_path / "no_tokenizer"))


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserInputError, match="could not load model config from .*empty_dir"):
        TextClassifier(backbone=str(tmp_path / "empty_dir"), pretrained=True, id2label={0: "a", 1: "b"})


def test_hub_model_while_offline():
    with pytest.raises(UserInputError, match="could not load model config from 'someone/no-such-model' .offline"):
        TextClassifier(backbone="someone/no-such-model", pretrained=True, id2label={0: "a", 1: "b"})


def test_hub_dataset_while_offline(tmp_path):
    source = HubSource(path="nyu-mll/glue", name="sst2", cache_dir=str(tmp_path / "hf"))
    with pytest.raises(UserInputError, match=r"could not load data set 'nyu-mll/glue' \(sst2\) .*Offline\?"):
        prepare(source, tmp_path)


def test_nan_loss_stops_with_a_hint():
    from nlp_template.callbacks.nonfinite_loss import NonFiniteLoss

    model = TextClassifier(config={"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 16},
                           id2label={0: "a", 1: "b"}, vocab_size=50)  # fmt: skip
    for parameter in model.parameters():
        parameter.data.fill_(float("nan"))
    batch = {"input_ids": torch.tensor([[1, 2, 3]]), "labels": torch.tensor([1])}
    loss = model.training_step(batch, 0)
    trainer = type("Trainer", (), {"world_size": 1, "global_step": 0})()
    with pytest.raises(UserInputError, match="training loss is nan at step 0: lower model.optimizer.lr"):
        NonFiniteLoss().on_before_backward(trainer, model, loss)
    with pytest.raises(UserInputError, match="nonfinite_loss.action=maybe is not one of stop, skip"):
        NonFiniteLoss(action="maybe")
    skipping = NonFiniteLoss(action="skip", max_skipped=1)
    skipping.on_before_backward(trainer, model, loss)
    resumed = NonFiniteLoss(action="skip", max_skipped=1)
    resumed.load_state_dict(skipping.state_dict())  # the count travels in checkpoints
    with pytest.raises(UserInputError, match=r"NaN/inf in 2 batches .*max_skipped=1"):
        resumed.on_before_backward(trainer, model, loss)


def test_entry_points_print_one_line_and_exit_1(capsys):
    @exit_on_user_error
    def run():
        try:
            raise KeyError("deep inside a library")
        except KeyError as error:
            raise UserInputError("train file is empty: x.csv") from error

    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: train file is empty: x.csv\n"


def test_bugs_keep_their_traceback():
    @exit_on_user_error
    def run():
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run()


def test_hydra_still_has_the_hook_for_one_line_config_errors():
    """`one_line_config_errors` swaps Hydra's private `run_and_report` for the call (there is no public hook); without
    it, config errors quietly fall back to Hydra's multi-line report. A Hydra release that moves it fails here."""
    import hydra._internal.utils as hydra_utils

    assert callable(getattr(hydra_utils, "run_and_report", None))
