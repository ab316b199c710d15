"""`nlp-export format=executorch`: `.pte` programs verified with ExecuTorch's own runtime against PyTorch's logits.

Lowering takes ~30 s per model on 2 cores, so each model is exported once and every check runs on that export.
The refusal is checked on a small network that fails before lowering.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

pytest.importorskip("executorch")

from fastapi.testclient import TestClient  # noqa: E402

from nlp_template.export import export  # noqa: E402
from nlp_template.inference.exporters import write_executorch  # noqa: E402
from nlp_template.models.graph import GraphModule  # noqa: E402
from nlp_template.serving.app import create_app  # noqa: E402
from nlp_template.serving.predictor import load_predictor  # noqa: E402
from nlp_template.utils.errors import UserInputError  # noqa: E402

pytestmark = pytest.mark.slow
TEXTS = ["the plot is great .", "the acting was awful and the ending was dull .", "far from brilliant ."]


def pte_export(make_cfg, ckpt: str, output: Path, *overrides: str) -> dict:
    cfg = make_cfg([f"ckpt_path={ckpt}", "format=executorch", f"output={output}", "latency.repeats=3", *overrides],
                   name="export")  # fmt: skip
    return json.loads((export(cfg) / "export_report.json").read_text())


def test_a_classifier_runs_in_executorch_like_pytorch_and_serves(make_cfg, checkpoints, tmp_path):
    # A batch bound below the 32 verification rows: the runner feeds the program in chunks of 8.
    ckpt = checkpoints["sentiment_tiny"]
    report = pte_export(make_cfg, ckpt, tmp_path / "pte", "executorch.max_batch_size=8")
    assert json.loads((tmp_path / "pte" / "export_info.json").read_text())["max_batch_size"] == 8
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


def test_the_lstm_runs_in_executorch_like_pytorch_and_serves(make_cfg, checkpoints, tmp_path):
    # Packing cannot be captured: the export computes the same numbers from a mask, its time steps in a scan loop
    # (masked_rnn.py), with a batch of one row that the runner feeds row by row (the verification batch has 32).
    ckpt = checkpoints["sentiment_lstm"]
    report = pte_export(make_cfg, ckpt, tmp_path / "pte")
    assert report["task"] == "RNNClassifier" and report["max_abs_diff"] <= 1e-4
    assert report["verified_on"].startswith("held-out batch 32x")
    assert json.loads((tmp_path / "pte" / "export_info.json").read_text())["max_batch_size"] == 1
    from test_serve import expected, same

    records = [{"text": text} for text in TEXTS]
    with TestClient(create_app(load_predictor(None, str(tmp_path / "pte")), max_batch_size=8)) as client:
        answers = client.post("/predict", json=records).json()
    assert all(map(same, answers, expected(make_cfg, ckpt, tmp_path, records))), answers


class PackingNetwork(torch.nn.Module):
    """A user's recurrent network that packs its sequences, which torch.export cannot capture."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding, self.rnn = torch.nn.Embedding(10, 4), torch.nn.GRU(4, 4, batch_first=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False)
        return SimpleNamespace(logits=self.rnn(packed)[1][0])


def test_a_model_torch_export_cannot_capture_is_refused_naming_the_call(tmp_path):
    module = GraphModule(PackingNetwork(), ["input_ids", "attention_mask"], ("logits",))
    example = (torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]))
    message = (r"torch.export cannot capture this model for ExecuTorch: test_executorch.py:\d+"
               r" `return SimpleNamespace\(logits=self.rnn\(packed\)\[1\]\[0\]\)` in nn/modules/rnn.py \(forward\)"
               r" failed with")  # fmt: skip
    with pytest.raises(UserInputError, match=message):
        write_executorch(module, example, tmp_path, {"batch": 4, "sequence": 8}, 16)
    assert not (tmp_path / "model.pte").exists()
