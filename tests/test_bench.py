"""The benchmark and GPU-check scripts still run (tiny settings, CPU): a script nobody runs rots."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, minilm_dir

BENCH = Path(__file__).parents[1] / "bench"
pytestmark = pytest.mark.slow


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_smoke(tmp_path):
    rows = load("gpu_check").main(["--smoke", "--out", str(tmp_path)])
    assert rows[0]["losses_finite"] and rows[0]["samples_per_sec"] > 0
    assert "| 32-true | True |" in (tmp_path / "gpu_check.md").read_text()
    # The two-node row ran for real: two torchrun agents (gloo on CPU in the smoke run), one run directory.
    nodes = rows[-1]
    assert nodes["precision"] == "32-true, 2 nodes x 1 CPU process" and nodes["losses_finite"], nodes
    assert nodes["job_tokens_per_sec"] == 2 * nodes["real_tokens_per_sec"] > 0
    assert "Two nodes:" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir() or minilm_dir() is None, reason="needs SST-2 and MiniLM")
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="the HF Trainer needs accelerate")
def test_compare_hf_trainer_smoke(tmp_path, monkeypatch):
    configs = ["hf_random", "hf_grouped", "tpl_random", "tpl_budget", "torch_loop"]
    argv = ["compare", "--train-examples", "96", "--repeats", "1", "--out", str(tmp_path), "--configs", *configs]
    monkeypatch.setattr(sys, "argv", argv)
    load("compare_hf_trainer").main()
    table = json.loads((tmp_path / "results.json").read_text())["table"]
    assert set(table) == set(configs)
    # Every configuration saw every example once: the same number of real tokens.
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert len({run[0]["real"] for run in runs.values()}) == 1
    assert (tmp_path / "throughput.png").stat().st_size > 0


def test_export_latency_smoke(tmp_path, monkeypatch, checkpoints):
    given = f"sentiment_lstm={checkpoints['sentiment_lstm']}"
    argv = [
        "export_latency",
        "--experiments",
        "sentiment_lstm",
        "--ckpt",
        given,
        "--repeats",
        "1",
        "--out",
        str(tmp_path),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    bench = load("export_latency")
    # Lowering to ExecuTorch takes ~30 s; tests/test_executorch.py exports this checkpoint to it already.
    monkeypatch.setitem(bench.FORMATS, "RNNClassifier", ("onnx", "torchscript"))
    bench.main()
    table = (tmp_path / "table.md").read_text()
    assert (
        "| sentiment_lstm (RNNClassifier) | onnx |" in table
        and "| sentiment_lstm (RNNClassifier) | torchscript |" in table
    )


def test_cli_startup_smoke(tmp_path):
    rows = load("cli_startup").main(["--repeats", "1", "--out", str(tmp_path)])
    assert len(rows) == 10 and all(row["median_s"] > 0 for row in rows)
    assert "| `nlp-train --help` |" in (tmp_path / "cli_startup.md").read_text()


@pytest.mark.task("masked_lm")
def test_mlm_domain_adaptation_smoke(tmp_path):
    """The recipe end to end through the CLI: MLM, HF export, the classifier from it and from random weights."""
    results = load("mlm_domain_adaptation").main(["--corpus", "embedded", "--quick", "--out", str(tmp_path)])
    assert set(results["classifier"]) == {"mlm_encoder_200", "random_weights_200"}
    assert all(0 <= row["test_acc"] <= 1 for row in results["classifier"].values())
    assert (tmp_path / "mlm_export" / "hf" / "config.json").is_file() and (tmp_path / "results.json").is_file()


@pytest.mark.skipif(not (SHARED_DATA / "sst2").is_dir() or minilm_dir() is None, reason="needs SST-2 and MiniLM")
@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs peft")
def test_lora_sst2_smoke(tmp_path):
    rows = load("lora_sst2").main(["--quick", "--ranks", "4", "--out", str(tmp_path)])
    assert set(rows) == {"full fine-tuning", "LoRA r=4"}
    assert rows["LoRA r=4"]["trainable"] < 0.01 * rows["full fine-tuning"]["trainable"]
    assert (
        rows["LoRA r=4"]["checkpoint_mb"] < rows["full fine-tuning"]["checkpoint_mb"]
    )  # no optimizer state for frozen weights


@pytest.mark.task("chat")
@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs peft")
def test_sft_instructions_smoke(tmp_path):
    """Before/after exact match, the base chat model's export, full and LoRA adaptation, scored by nlp-predict."""
    results = load("sft_instructions").main(["--quick", "--out", str(tmp_path)])
    assert 0 <= results["before"]["test_exact_match"] <= 1
    for name in ("full_sft", "base_4_families", "adapt_full", "adapt_lora_r8"):
        assert set(results[name]) >= {"all", "add", "reverse", "lookup"}
    assert results["adapt_lora_r8"]["trainable"] < 0.05 * results["adapt_full"]["trainable"]
    assert (tmp_path / "base_hf" / "config.json").is_file() and (tmp_path / "results.json").is_file()


@pytest.mark.skipif(not (SHARED_DATA / "conll2003").is_dir() or minilm_dir() is None, reason="needs CoNLL and MiniLM")
@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="the HF Trainer needs accelerate")
def test_finetune_defaults_smoke(tmp_path, monkeypatch):
    argv = ["finetune_defaults", "--task", "ner", "--train-examples", "64", "--variants", "clip_1.0", "hf_trainer",
            "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    load("finetune_defaults").main()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metric"] == "val/f1" and set(results["results"]) == {"clip_1.0", "hf_trainer"}
    assert all(0 <= values[0] <= 1 for values in results["results"].values())


@pytest.mark.skipif(not (SHARED_DATA / "tiny_shakespeare").is_dir() or minilm_dir() is None,
                    reason="needs Tiny Shakespeare and MiniLM")  # fmt: skip
@pytest.mark.skipif(importlib.util.find_spec("litdata") is None, reason="needs litdata")
def test_stream_vs_arrow_smoke(tmp_path, monkeypatch):
    argv = ["stream_vs_arrow", "--max-lines", "600", "--repeats", "1", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    load("stream_vs_arrow").main()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["arrow"][0]["steps"] >= results["stream"][0]["steps"] > 0  # the stream drops partial blocks
    assert "stream / arrow tokens/s" in (tmp_path / "table.md").read_text()


def test_serve_load_smoke(tmp_path, checkpoints):
    pytest.importorskip("fastapi")
    argv = ["--ckpt", checkpoints["sentiment_tiny"], "--settings", "4:0.01", "--requests", "24", "--clients", "4",
            "--repeats", "1", "--threads", "1", "--out", str(tmp_path)]  # fmt: skip
    rows = load("serve_load").main(argv)
    assert [row["backend"] for row in rows] == ["pytorch", "onnx"]
    assert all(row["failed"] == 0 and row["requests_per_sec"] > 0 for row in rows)
    assert all(round_["answered"] == 24 for row in rows for round_ in row["rounds"])  # every request answered
    assert "| onnx | 4 | 0.01 |" in (tmp_path / "table.md").read_text()


def test_int8_exports_smoke(tmp_path, checkpoints):
    rows = load("int8_exports").main(["--models", "default", "--ckpt", f"default={checkpoints['sentiment_tiny']}",
                                      "--repeats", "1", "--out", str(tmp_path)])  # fmt: skip
    report = rows[0][1]
    assert report["quantize"] == "int8" and report["int8"]["int8_mb"] < report["int8"]["fp32_mb"]
    assert "| default (TextClassifier) |" in (tmp_path / "table.md").read_text()
