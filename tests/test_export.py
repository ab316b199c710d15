"""`nlp-export`: Hugging Face directories that pipelines load offline, ONNX and TorchScript graphs verified against
PyTorch, their reports, and the export of the best checkpoint at the end of training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BRIEF
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    pipeline,
)

from nlp_template.export import export
from nlp_template.predict import predict
from nlp_template.utils.errors import UserInputError

pytestmark = pytest.mark.slow


def exported(make_cfg, ckpt: str, tmp_path, name: str = "hf", *overrides: str) -> str:
    cfg = make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / name}", "latency.repeats=2", *overrides], name="export")
    return str(export(cfg))


def test_classifier_export_runs_in_a_pipeline_with_the_same_probabilities(make_cfg, checkpoints, tmp_path):
    directory = exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path)
    classify = pipeline("text-classification", model=directory, top_k=None)
    result = classify(["the ending was not dull at all ."])[0]  # all labels' scores for the one input
    scores = {row["label"]: row["score"] for row in result}
    inputs = tmp_path / "one.txt"
    inputs.write_text("the ending was not dull at all .\n")
    cfg = make_cfg([f"ckpt_path={checkpoints['sentiment_tiny']}", f"input={inputs}", f"output={tmp_path}/p.jsonl"],
                   name="predict")  # fmt: skip
    (ours,) = predict(cfg)
    assert scores == pytest.approx(ours["probabilities"], abs=1e-5)  # same model, same tokenizer, same numbers
    assert json.loads((tmp_path / "hf" / "export_report.json").read_text())["pipeline_task"] == "text-classification"
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert set(config["id2label"].values()) == {"negative", "positive"} and "model.safetensors" in {
        path.name for path in (tmp_path / "hf").iterdir()
    }


@pytest.mark.task("token_classification", "language_modeling")
def test_tagger_and_language_model_exports_load_offline(make_cfg, checkpoints, tmp_path):
    tagger_dir = exported(make_cfg, checkpoints["ner_tiny"], tmp_path, "ner")
    entities = pipeline("token-classification", model=tagger_dir)("Lena Brenner moved to Lake Morven .")
    assert isinstance(entities, list)
    tagger = AutoModelForTokenClassification.from_pretrained(tagger_dir)
    assert "B-PER" in tagger.config.label2id
    lm_dir = exported(make_cfg, checkpoints["lm_tiny"], tmp_path, "lm")
    generated = pipeline("text-generation", model=lm_dir)("the movie", max_new_tokens=5, do_sample=False)
    assert generated[0]["generated_text"].startswith("the movie")


def test_continue_training_from_an_export(make_cfg, checkpoints, tmp_path):
    from nlp_template.train import train

    directory = exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path)
    metrics = train(make_cfg(["model=text_classifier_pretrained", f"model.backbone={directory}", "debug=fdr",
                              "data.source.num_train=100", "extras.print_config=false"]))  # fmt: skip
    assert metrics["test/acc"] >= 0
    # The export holds the checkpoint's trained weights, not a fresh initialisation.
    weights = torch.load(checkpoints["sentiment_tiny"], map_location="cpu", weights_only=True)["state_dict"]
    reloaded = AutoModelForSequenceClassification.from_pretrained(directory)
    embeddings = weights["network.bert.embeddings.word_embeddings.weight"]
    assert torch.equal(reloaded.bert.embeddings.word_embeddings.weight, embeddings)


def test_unsupported_export_and_existing_output(make_cfg, checkpoints, tmp_path):
    with pytest.raises(UserInputError, match="RNNClassifier is not a Hugging Face model"):
        exported(make_cfg, checkpoints["sentiment_lstm"], tmp_path, "lstm")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(UserInputError, match="output exists"):
        exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path, "occupied")
    # overwrite=true replaces earlier exports only: never a folder of other files (`.`, a run directory).
    with pytest.raises(UserInputError, match="is not an earlier export .* overwrite=true only replaces exports"):
        exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path, "occupied", "overwrite=true")
    assert [path.name for path in occupied.iterdir()] == ["keep.txt"] and (occupied / "keep.txt").read_text() == "mine"
    first = Path(exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path, "again"))
    assert exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path, "again", "overwrite=true") == str(first)
    with pytest.raises(UserInputError, match="unknown export format 'tflite'"):
        export(make_cfg([f"ckpt_path={checkpoints['sentiment_tiny']}", "format=tflite"], name="export"))
    # The LSTM's packed sequences are beyond torch.export: asking for it alone is a one-line error naming the way out.
    with pytest.raises(UserInputError, match="torch.export cannot capture .* try onnx_exporter=torchscript"):
        exported(make_cfg, checkpoints["sentiment_lstm"], tmp_path, "dynamo", "format=onnx", "onnx_exporter=dynamo")


def run_onnx(directory: Path, texts: list[str]) -> np.ndarray:
    """What a service would do with the export alone: its tokenizer, onnxruntime, its export_info.json."""
    import onnxruntime

    info = json.loads((directory / "export_info.json").read_text())
    encoded = AutoTokenizer.from_pretrained(directory)(texts, padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {name: encoded[name].astype(np.int64) for name in info["inputs"]})[0]


@pytest.mark.parametrize(
    ("experiment", "fmt"),
    [("sentiment_tiny", "onnx"), ("sentiment_tiny", "torchscript"), ("sentiment_lstm", "onnx"),
     ("sentiment_lstm", "torchscript"), ("pairs_tiny", "onnx"), ("pairs_tiny", "torchscript"), ("ner_tiny", "onnx"),
     ("ner_tiny", "torchscript"), ("lm_tiny", "onnx"), ("lm_tiny", "torchscript")],
)  # fmt: skip
def test_static_exports_are_verified_and_timed(make_cfg, checkpoints, tmp_path, experiment, fmt):
    directory = Path(exported(make_cfg, checkpoints[experiment], tmp_path, fmt, f"format={fmt}"))
    report = json.loads((directory / "export_report.json").read_text())
    assert report["max_abs_diff"] <= 1e-4 and report["verified_on"].startswith("held-out batch 32x")
    assert [row["batch_size"] for row in report["latency"]] == [1, 32]
    assert all(row["pytorch_ms"] > 0 and row["export_ms"] > 0 for row in report["latency"])
    assert report["export_mb"] > 0.5 * report["weights_mb"] > 0
    assert (directory / "tokenizer.json").is_file()  # the tokenizer is saved beside the graph


def test_onnx_export_serves_the_same_probabilities_as_predict(make_cfg, checkpoints, tmp_path):
    texts = ["the ending was not dull at all .", "a great cast , an awful script"]
    directory = Path(exported(make_cfg, checkpoints["sentiment_tiny"], tmp_path, "onnx", "format=onnx"))
    probabilities = torch.from_numpy(run_onnx(directory, texts)).softmax(-1)
    inputs = tmp_path / "texts.txt"
    inputs.write_text("\n".join(texts) + "\n")
    cfg = make_cfg([f"ckpt_path={checkpoints['sentiment_tiny']}", f"input={inputs}", f"output={tmp_path}/p.jsonl"],
                   name="predict")  # fmt: skip
    names = json.loads((directory / "export_info.json").read_text())["id2label"]
    for row, ours in zip(probabilities.tolist(), predict(cfg), strict=True):
        assert dict(zip([names[str(i)] for i in range(len(names))], row, strict=True)) == pytest.approx(
            ours["probabilities"], abs=1e-5
        )


def test_a_wrong_export_is_refused_and_removed(make_cfg, checkpoints, tmp_path, monkeypatch):
    from nlp_template.inference import exporters

    load_runner = exporters.load_runner

    def off_by_a_little(path, names):
        run = load_runner(path, names)
        return lambda batch: [output + 1e-3 for output in run(batch)]  # a wrongly captured branch: close, not equal

    monkeypatch.setattr(exporters, "load_runner", off_by_a_little)
    with pytest.raises(UserInputError, match=r"differs from PyTorch by 1.00e-03 \(> tolerance 0.0001\)"):
        exported(make_cfg, checkpoints["sentiment_lstm"], tmp_path, "bad", "format=torchscript")
    assert not (tmp_path / "bad").exists()  # nothing half-written that a later run could take for an export


def test_best_checkpoint_exported_at_the_end_of_training(make_cfg, tmp_path, caplog):
    from nlp_template.train import train

    brief = [*BRIEF[:-2], "callbacks=[model_checkpoint,export_best]", "test=false"]
    metrics = train(make_cfg(["experiment=sentiment_tiny", *brief, "export_best=hf"]))
    best = Path(metrics["best_model_path"])
    directory = best.with_name(f"{best.stem}_hf")
    assert pipeline("text-classification", model=str(directory))("a fine film")[0]["label"] in {"negative", "positive"}
    # The LSTM is not a Hugging Face model: the run still succeeds, the log says why there is no export.
    metrics = train(make_cfg(["experiment=sentiment_lstm", *brief, "export_best=hf"], run="lstm"))
    assert not Path(metrics["best_model_path"]).with_name(f"{Path(metrics['best_model_path']).stem}_hf").exists()
    assert "Best checkpoint not exported: RNNClassifier is not a Hugging Face model" in caplog.text


def test_graphs_are_captured_on_padded_rows_and_checked_on_another_shape():
    from nlp_template.inference import exporters
    from nlp_template.inference.export_check import held_out_batch

    one_row = {"input_ids": torch.tensor([[5, 6, 7, 8, 9, 10]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    ids, mask = exporters.example_inputs(one_row, ["input_ids", "attention_mask"])  # a one-example test split
    assert ids.shape == (2, 6) and mask.tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]

    class Blocks:  # language-model blocks: all the same length, so the held-out batch gets padded rows itself
        splits = {"test": __import__("datasets").Dataset.from_dict({"input_ids": [[1] * 8] * 4, "length": [8] * 4})}

        held_out_features = __import__("nlp_template.data.base").data.base.TokenizedDataModule.held_out_features

        def prepare_data(self):
            pass

        def collate_inputs(self, rows):
            return {"input_ids": torch.tensor([row["input_ids"] for row in rows]),
                    "attention_mask": torch.ones(len(rows), 8, dtype=torch.long)}  # fmt: skip

    batch = held_out_batch(Blocks(), 32)
    assert batch["attention_mask"].sum(1).tolist() == [8, 4, 8, 4]


def test_half_precision_checkpoints_export_in_fp32(checkpoints, make_cfg, tmp_path):
    """A bf16 backbone config restores the network in bf16; graphs are written in fp32 and verified as such."""
    checkpoint = torch.load(checkpoints["sentiment_tiny"], map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {key: value.to(torch.bfloat16) for key, value in checkpoint["state_dict"].items()}
    checkpoint["hyper_parameters"]["backbone_config"]["dtype"] = "bfloat16"
    half = tmp_path / "bf16.ckpt"
    torch.save(checkpoint, half)
    report = json.loads((Path(exported(make_cfg, str(half), tmp_path, "bf16", "format=onnx")) / "export_report.json")
                        .read_text())  # fmt: skip
    # Restored in bf16 (0.8 MB of weights, half the fp32 size), exported and verified in fp32 (a 1.9 MB graph).
    assert report["weights_mb"] == pytest.approx(0.81, abs=0.02) and report["export_mb"] > 1.8
    assert report["max_abs_diff"] <= 1e-4


def test_a_failing_export_does_not_fail_the_finished_run(checkpoints, monkeypatch, caplog):
    from types import SimpleNamespace

    import nlp_template.callbacks.export_best
    from nlp_template.callbacks.export_best import ExportBestCheckpoint

    def broken(cfg):
        raise RuntimeError("onnxruntime could not load the graph\nsecond line")

    monkeypatch.setattr(nlp_template.callbacks.export_best, "export", broken)
    waited = []
    best = SimpleNamespace(best_model_path=str(Path(checkpoints["sentiment_tiny"]).parent / "missing_best.ckpt"))
    trainer = SimpleNamespace(
        is_global_zero=True, checkpoint_callback=best, strategy=SimpleNamespace(barrier=waited.append)
    )
    ExportBestCheckpoint(format="onnx").on_fit_end(trainer, None)
    assert "Best checkpoint not exported: onnxruntime could not load the graph" in caplog.text and waited
