"""Mid-epoch resume through Lightning: the checkpoint holds the sampler position, the resumed run sees the rest."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import FAST

from nlp_template.train import train


class RecordBatches(L.Callback):
    """Append (global step, first token ids of each row) of every training batch to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rows = batch["input_ids"][:, :6].tolist()
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "rows": rows}) + "\n")


def record(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def callbacks(log: Path, checkpoints: Path | None = None) -> list[str]:
    overrides = ["+callbacks.record._target_=test_resume.RecordBatches", f"+callbacks.record.path={log}"]
    if checkpoints:  # every 5 steps, kept: one of them is mid-epoch
        overrides += [
            "+callbacks.every5._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            f"+callbacks.every5.dirpath={checkpoints}", "+callbacks.every5.filename='step_{step}'",
            "+callbacks.every5.every_n_train_steps=5", "+callbacks.every5.save_top_k=-1",
            "+callbacks.every5.auto_insert_metric_name=false",
        ]  # fmt: skip
    return overrides


@pytest.mark.slow
@pytest.mark.parametrize("batching", ["random", "token_budget"])
def test_resume_mid_epoch_sees_exactly_the_remaining_batches(make_cfg, tmp_path, batching):
    budget = ["data.max_tokens=400", "data.batch_size=null"] if batching == "token_budget" else []
    common = ["trainer.max_epochs=2", f"data.batching={batching}", *budget, *FAST, "~callbacks.early_stopping"]

    full_log, checkpoints = tmp_path / "full.jsonl", tmp_path / "every5"
    train(make_cfg([*common, *callbacks(full_log, checkpoints)], run="full"))
    steps_per_epoch = len(record(full_log)) // 2
    assert steps_per_epoch > 5
    mid = checkpoints / "step_5.ckpt"
    checkpoint = torch.load(mid, map_location="cpu", weights_only=False)
    assert checkpoint["TextClassificationDataModule"]["batching"] | {"seed": 0} == {
        "epoch": 0, "consumed": 5, "seed": 0, "mode": batching
    }  # fmt: skip

    resumed_log = tmp_path / "resumed.jsonl"
    train(make_cfg([*common, f"ckpt_path={mid}", *callbacks(resumed_log)], run="resumed"))
    # The rest of epoch 0 and all of epoch 1, batch for batch, as in the uninterrupted run.
    assert record(resumed_log) == [r for r in record(full_log) if r["step"] >= 5]
