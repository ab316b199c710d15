"""Precision: warnings for the settings that surprise on CPUs, pad-to-multiple that follows precision."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from nlp_template.data.samples import SentimentSamples
from nlp_template.data.text_classification import TextClassificationDataModule
from nlp_template.utils import precision


def test_cpu_half_precision_warnings(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.precision_warnings("cpu", "32-true") == []
    assert "runs 16-mixed as bf16-mixed" in precision.precision_warnings("cpu", "16-mixed")[0]
    assert "NaN" in precision.precision_warnings("cpu", "16-true")[0]
    assert "4x slower" in precision.precision_warnings("cpu", "bf16-mixed")[0]
    assert precision.precision_warnings("gpu", "16-mixed") == []
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.precision_warnings("cpu", "bf16-mixed") == []


@pytest.mark.parametrize(
    "configured,precision_name,device,expected",
    [(None, "bf16-mixed", "cuda", 8), (None, "16-mixed", "cuda", 8), (None, "32-true", "cuda", None),
     (None, "bf16-mixed", "cpu", None), (16, "32-true", "cpu", 16)],
)  # fmt: skip
def test_pad_to_multiple_follows_precision(tmp_path, configured, precision_name, device, expected):
    dm = TextClassificationDataModule(
        SentimentSamples(num_train=50, num_validation=10, num_test=10), vocab_size=200,
        pad_to_multiple_of=configured, cache_dir=str(tmp_path),
    )  # fmt: skip
    strategy = SimpleNamespace(root_device=SimpleNamespace(type=device))
    dm.trainer = SimpleNamespace(precision=precision_name, strategy=strategy, world_size=1, global_rank=0)
    assert dm.pad_multiple() == expected
    dm.prepare_data()
    batch = next(iter(dm.train_dataloader()))
    assert expected is None or batch["input_ids"].shape[1] % expected == 0
