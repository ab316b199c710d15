"""`nlp-export format=hf`: a Hugging Face directory that pipelines load offline, with the same predictions."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, pipeline

from nlp_template.export import export
from nlp_template.predict import predict
from nlp_template.utils.errors import UserInputError

pytestmark = pytest.mark.slow


def exported(make_cfg, ckpt: str, tmp_path, name: str = "hf") -> str:
    return str(export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / name}"], name="export")))


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
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert set(config["id2label"].values()) == {"negative", "positive"} and "model.safetensors" in {
        path.name for path in (tmp_path / "hf").iterdir()
    }


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
    assert (occupied / "keep.txt").read_text() == "mine"
    with pytest.raises(UserInputError, match="unknown export format 'tflite'"):
        export(make_cfg([f"ckpt_path={checkpoints['sentiment_tiny']}", "format=tflite"], name="export"))
