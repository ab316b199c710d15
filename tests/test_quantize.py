"""`nlp-export format=onnx quantize=int8`: a smaller graph with integer MatMuls, kept only if the test metric holds.

The metric the check compares is computed by the task's own evaluation with the graph in the network's place: for
the fp32 graph it must equal `nlp-eval`'s on the checkpoint, which is what makes the int8 comparison trustworthy.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from nlp_template.export import export
from nlp_template.inference.quantize import guarded_metric, metric_check
from nlp_template.utils.errors import UserInputError


def int8_export(make_cfg, ckpt: str, output: Path, *overrides: str, export_format: str = "onnx",
                quantize: str = "int8") -> dict:  # fmt: skip
    cfg = make_cfg([f"ckpt_path={ckpt}", f"format={export_format}", f"quantize={quantize}", f"output={output}",
                    "latency.repeats=2", *overrides], name="export")  # fmt: skip
    return json.loads((export(cfg) / "export_report.json").read_text())


def eval_metrics(make_cfg, ckpt: str) -> dict:
    from nlp_template.eval import evaluate

    return evaluate(make_cfg([f"ckpt_path={ckpt}"], name="eval", run="eval"))


def test_the_guarded_metric_and_its_direction_come_from_the_run_or_are_given():
    monitored = {"monitor": {"metric": "val/mse", "mode": "min"}}
    assert guarded_metric(monitored, None, None) == ("test/mse", "min")
    assert guarded_metric(monitored, "test/mse", None) == ("test/mse", "min")  # the monitored one: its mode
    assert guarded_metric(monitored, "test/pearson", "max") == ("test/pearson", "max")
    with pytest.raises(UserInputError, match=r"metric_mode must be max .* or min .* for test/pearson, got None"):
        guarded_metric(monitored, "test/pearson", None)  # another metric: the direction is never guessed
    with pytest.raises(UserInputError, match="does not say which metric its run monitored: set metric=test/<name>"):
        guarded_metric({}, None, None)


def test_the_metric_check_refuses_a_drop_in_either_direction():
    kept = metric_check("test/acc", "max", {"test/acc": 0.90}, {"test/acc": 0.895}, 0.01)
    assert kept["drop"] == pytest.approx(0.005) and kept["fp32"] == 0.90 and kept["int8"] == 0.895
    with pytest.raises(UserInputError, match=r"makes test/acc worse by 0.0200 \(0.9000 -> 0.8800"):
        metric_check("test/acc", "max", {"test/acc": 0.90}, {"test/acc": 0.88}, 0.01)
    assert metric_check("test/mse", "min", {"test/mse": 0.50}, {"test/mse": 0.40}, 0.01)["drop"] == pytest.approx(-0.1)
    with pytest.raises(UserInputError, match=r"makes test/mse worse by 0.1000 \(0.5000 -> 0.6000"):
        metric_check("test/mse", "min", {"test/mse": 0.50}, {"test/mse": 0.60}, 0.01)  # lower is better: up is worse
    with pytest.raises(UserInputError, match=r"checks test/ppl, which the exported graph cannot give"):
        metric_check("test/ppl", "min", {"test/ppl": float("nan")}, {"test/ppl": float("nan")}, 0.01)


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "integer_op"), [("sentiment_tiny", "MatMulInteger"),
                                                        ("sentiment_lstm", "DynamicQuantizeLSTM")])  # fmt: skip
def test_int8_export_is_smaller_keeps_the_metric_and_serves(make_cfg, checkpoints, tmp_path, experiment, integer_op,
                                                            monkeypatch):  # fmt: skip
    ckpt = checkpoints[experiment]
    here = tmp_path / "cwd"  # onnxruntime's shape inference writes scratch files into the working directory
    here.mkdir()
    monkeypatch.chdir(here)
    # The tiny models are barely trained: allow any drop here, the refusal has its own test below.
    report = int8_export(make_cfg, ckpt, tmp_path / "int8", "max_metric_drop=1")
    int8 = report["int8"]
    assert report["quantize"] == "int8" and int8["metric"] == "test/acc" and int8["mode"] == "max"
    assert int8["fp32"] == pytest.approx(eval_metrics(make_cfg, ckpt)["test/acc"], abs=1e-6)  # same as nlp-eval
    assert int8["drop"] == pytest.approx(int8["fp32"] - int8["int8"]) and int8["integer_nodes"] > 0
    assert int8["int8_mb"] < int8["fp32_mb"] and report["export_mb"] == pytest.approx(int8["int8_mb"])
    assert report["fp32_max_abs_diff"] <= 1e-4  # the fp32 graph was verified first
    assert report["max_abs_diff"] == int8["max_abs_diff"] > 0  # the report's difference is the file's: int8
    assert {row["batch_size"] for row in int8["fp32_latency"]} == {row["batch_size"] for row in report["latency"]}
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert integer_op in ops and not (tmp_path / "int8" / "model.int8.onnx").exists()
    assert not list(here.iterdir())  # no scratch files left where the command ran

    from nlp_template.serving.predictor import load_predictor

    served = load_predictor(None, str(tmp_path / "int8")).predict([{"text": "the plot is great ."}])
    assert served[0]["label"] in {"negative", "positive"}


@pytest.mark.slow
def test_int8_export_is_refused_when_the_metric_drops_too_much(make_cfg, checkpoints, tmp_path):
    # A negative allowance refuses any int8 graph that is not better by more than it: the refusal path, for real.
    with pytest.raises(UserInputError, match=r"quantize=int8 makes test/acc worse by .* more than max_metric_drop=-1,"
                                             r" so the export was removed"):  # fmt: skip
        int8_export(make_cfg, checkpoints["sentiment_tiny"], tmp_path / "refused", "max_metric_drop=-1")
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_int8_needs_onnx_and_a_metric_the_graph_gives(make_cfg, checkpoints, tmp_path):
    with pytest.raises(UserInputError, match="quantize=int8 quantizes ONNX graphs .*use format=onnx, not torchscript"):
        int8_export(make_cfg, checkpoints["sentiment_tiny"], tmp_path / "ts", export_format="torchscript")
    with pytest.raises(UserInputError, match=r"unknown quantize=int4; use quantize=int8"):
        int8_export(make_cfg, checkpoints["sentiment_tiny"], tmp_path / "int4", quantize="int4")
    # The language model's metric is perplexity, which comes from the loss: a graph outputs logits only.
    with pytest.raises(UserInputError, match=r"quantize=int8 checks test/\w+, which the exported graph cannot give"):
        int8_export(make_cfg, checkpoints["lm_tiny"], tmp_path / "lm")
    assert not (tmp_path / "lm").exists()
