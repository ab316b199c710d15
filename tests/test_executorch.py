"""`nlp-export format=executorch`: `.pte` programs verified with ExecuTorch's own runtime against PyTorch's logits.

Lowering takes ~30 s per model on 2 cores, so each model is exported once and every check runs on that export.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("executorch")

from fastapi.testclient import TestClient  # noqa: E402

from nlp_template.export import export  # noqa: E402
from nlp_template.serving.app import create_app  # noqa: E402
from nlp_template.serving.predictor import load_predictor  # noqa: E402
from nlp_template.utils.errors import UserInputError  # noqa: E402

pytestmark = pytest.mark.slow
TEXTS = ["the plot is great .", "the acting was awful and the ending was dull .", "far from brilliant ."]


def pte_export(make_cfg, ckpt: str, output: Path) -> dict:
    cfg = make_cfg([f"ckpt_path={ckpt}", "format=executorch", f"output={output}", "latency.repeats=3"], name="export")
    return json.loads((export(cfg) / "export_report.json").read_text())


def test_a_classifier_runs_in_executorch_like_pytorch_and_serves(make_cfg, checkpoints, tmp_path):
    ckpt = checkpoints["sentiment_tiny"]
    report = pte_export(make_cfg, ckpt, tmp_path / "pte")
    assert report["format"] == "executorch" and report["file"] == "model.pte"
    assert report["max_abs_diff"] <= 1e-4 and report["verified_on"].startswith("held-out batch 32x")
    assert {row["batch_size"] for row in report["latency"]} == {1, 32} and report["export_mb"] > 0.1
    # The .pte behind the server: the task's own encoding and decoding around ExecuTorch's runtime, as nlp-predict.
    from test_serve import expected, same

    records = [{"text": text} for text in TEXTS]
    reference = expected(make_cfg, ckpt, tmp_path, records)
    with TestClient(create_app(load_predictor(None, str(tmp_path / "pte")), max_batch_size=8)) as client:
        assert client.get("/info").json()["backend"] == "executorch"
        answers = client.post("/predict", json=records).json()
    assert all(map(same, answers, reference)), answers


def test_the_token_classifier_runs_in_executorch_like_pytorch(make_cfg, checkpoints, tmp_path):
    report = pte_export(make_cfg, checkpoints["ner_tiny"], tmp_path / "pte")
    assert report["task"] == "TokenClassifier" and report["max_abs_diff"] <= 1e-4


def test_a_model_torch_export_cannot_capture_is_refused_naming_the_call(make_cfg, checkpoints, tmp_path):
    # The recurrent classifier packs its sequences (pack_padded_sequence), which torch.export cannot trace.
    with pytest.raises(UserInputError, match=r"torch.export cannot capture this model for ExecuTorch:"
                                             r" rnn_classifier.py:\d+ `outputs, final = self.rnn\(packed\)`"
                                             r" in nn/modules/rnn.py \(forward\) failed with"):  # fmt: skip
        pte_export(make_cfg, checkpoints["sentiment_lstm"], tmp_path / "lstm")
    assert not (tmp_path / "lstm").exists()


def test_a_batch_bound_below_the_check_batches_is_refused_before_lowering(make_cfg, checkpoints, tmp_path):
    cfg = make_cfg([f"ckpt_path={checkpoints['sentiment_tiny']}", "format=executorch", f"output={tmp_path / 'pte'}",
                    "executorch.max_batch_size=8"], name="export")  # fmt: skip
    message = r"executorch.max_batch_size=8 is below the batches the export is checked on \(32\): lower verify_examples"
    with pytest.raises(UserInputError, match=message):
        export(cfg)
    assert not (tmp_path / "pte").exists()
