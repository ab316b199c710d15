"""ThroughputMonitor: FLOPs for the real shapes, rates and padding from real batches, summary in metrics.json."""

from __future__ import annotations

import torch
from conftest import FAST
from transformers import AutoConfig, AutoModelForSequenceClassification

from nlp_template.callbacks.throughput import ThroughputMonitor
from nlp_template.train import train


def tiny_bert(layers: int = 2, hidden: int = 128) -> torch.nn.Module:
    config = AutoConfig.for_model(
        "bert", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=2 * hidden,
        vocab_size=500, num_labels=2,
    )  # fmt: skip
    return AutoModelForSequenceClassification.from_config(config)


def test_flops_match_the_transformer_formula():
    hidden, layers = 128, 2
    monitor = ThroughputMonitor()
    linear_params = layers * (4 * hidden * hidden + 2 * hidden * 2 * hidden)
    for length in (8, 37, 128):
        # forward + backward = 3 x forward; forward = 2 FLOPs per weight and token + 2 attention matmuls per layer.
        expected = 3 * (2 * linear_params * length + layers * 2 * 2 * length * length * hidden)
        counted = monitor.flops_per_example(tiny_bert(layers, hidden), length)
        assert 0 < counted - expected < 0.01 * expected  # the rest: pooler, classifier, softmax


def test_per_length_counting_matches_the_fitted_curve():
    network, monitor = tiny_bert(), ThroughputMonitor()
    fitted = [monitor.flops_per_example(network, n) for n in (5, 77, 200)]
    assert monitor._quadratic  # a transformer is exactly quadratic in the length
    assert fitted == [monitor._count(network, n) for n in (5, 77, 200)]


def test_training_logs_throughput_and_summarises_it(make_cfg):
    cfg = make_cfg(["trainer.max_epochs=1", "callbacks.throughput.log_every_n_steps=3", *FAST, "data.batching=random"])
    metrics = train(cfg)
    assert 0.3 < metrics["throughput/padding_fraction"] < 0.8  # random batches of 5-55 word sentences
    assert metrics["throughput/real_tokens_per_sec"] < metrics["throughput/padded_tokens_per_sec"]
    assert metrics["throughput/samples_per_sec"] > 0 and metrics["throughput/tflops_per_sec"] > 0
    assert "throughput/mfu" not in metrics  # no known peak FLOP/s for a CPU


def test_question_answering_flops_are_counted_from_its_outputs():
    """A task whose network has no `logits` (start/end logits) still gets FLOPs: the monitor asks the task."""
    from transformers import AutoModelForQuestionAnswering

    config = AutoConfig.for_model("bert", hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=256, vocab_size=500)  # fmt: skip
    monitor = ThroughputMonitor()
    monitor._outputs = ("start_logits", "end_logits")  # what on_train_start reads from QuestionAnswering
    qa = monitor.flops_per_example(AutoModelForQuestionAnswering.from_config(config), 64)
    classifier = ThroughputMonitor().flops_per_example(tiny_bert(), 64)
    assert qa > 0 and abs(qa - classifier) < 0.05 * classifier  # the same encoder; only the small heads differ
