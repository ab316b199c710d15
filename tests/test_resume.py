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


class StopAfterFirstEpoch(L.Callback):
    """Stop a run configured for more epochs after its first (an interruption that keeps the schedule intact)."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


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
    # Lightning tells the batch sampler the epoch (through `.sampler`): each epoch has its own order.
    epochs = [[r["rows"] for r in record(full_log)][i * steps_per_epoch : (i + 1) * steps_per_epoch] for i in (0, 1)]
    assert epochs[0] != epochs[1]
    mid = checkpoints / "step_5.ckpt"
    checkpoint = torch.load(mid, map_location="cpu", weights_only=False)
    assert checkpoint["TextClassificationDataModule"]["batching"] | {"seed": 0} == {
        "epoch": 0, "consumed": 5, "seed": 0, "mode": batching
    }  # fmt: skip

    resumed_log = tmp_path / "resumed.jsonl"
    train(make_cfg([*common, f"ckpt_path={mid}", *callbacks(resumed_log)], run="resumed"))
    # The rest of epoch 0 and all of epoch 1, batch for batch, as in the uninterrupted run.
    assert record(resumed_log) == [r for r in record(full_log) if r["step"] >= 5]
    # And the same random numbers (dropout): the final weights are identical, bit for bit, on CPU.
    assert_same_weights(*(tmp_path / run / "checkpoints/last.ckpt" for run in ("full", "resumed")))


def assert_same_weights(first: Path, second: Path) -> None:
    states = [torch.load(path, map_location="cpu", weights_only=True)["state_dict"] for path in (first, second)]
    assert states[0].keys() == states[1].keys()
    for name, tensor in states[0].items():
        assert torch.equal(states[1][name], tensor), name


def files_and_hashes(directory: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.mark.slow
def test_ckpt_path_last_continues_the_newest_run_exactly(make_cfg, tmp_path):
    # Random batches: with length grouping this tiny run scores the same val/acc in both epochs, and a run resumed in
    # a new directory does not inherit ModelCheckpoint's best (Lightning restores it only in the same dirpath), so it
    # reports epoch 2's weights where the uninterrupted run reports epoch 1's: a known gap (session-10 note).
    common = [*FAST, "~callbacks.early_stopping", "~callbacks.throughput", "data.batching=random"]
    log_dir = tmp_path / "logs"

    def config(overrides: list[str], run: str):
        cfg = make_cfg([*common, *overrides], run=f"logs/train/runs/{run}")
        cfg.paths.log_dir = str(log_dir)  # runs live under <log_dir>/train/runs/, where ckpt_path=last looks
        return cfg

    uninterrupted = train(config(["trainer.max_epochs=2"], "uninterrupted"))
    last = log_dir / "train/runs/uninterrupted/checkpoints/last.ckpt"
    last.rename(tmp_path / "uninterrupted.ckpt")  # only the interrupted run may be found
    # Configured for 2 epochs like the uninterrupted run (the learning-rate schedule spans both), stopped after 1.
    train(config(["trainer.max_epochs=2", "+callbacks.stop._target_=test_resume.StopAfterFirstEpoch"], "first"))
    before = files_and_hashes(log_dir / "train/runs/first")
    resumed = train(config(["trainer.max_epochs=2", "ckpt_path=last"], "resumed"))

    # Same weights, optimizer, scheduler, sampler order and random streams: on CPU the results are identical.
    assert_same_weights(tmp_path / "uninterrupted.ckpt", log_dir / "train/runs/resumed/checkpoints/last.ckpt")
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "global_step"):
        assert resumed[key] == uninterrupted[key], (key, resumed, uninterrupted)
    assert files_and_hashes(log_dir / "train/runs/first") == before  # the first run's files are untouched
    assert (log_dir / "train/runs/resumed/checkpoints/last.ckpt").is_file()


def test_ckpt_path_last_without_a_run_of_this_experiment(make_cfg):
    from nlp_template.utils.errors import UserInputError
    from nlp_template.utils.resume import resolve_checkpoint

    with pytest.raises(UserInputError, match="ckpt_path=last: no last.ckpt of this experiment"):
        resolve_checkpoint(make_cfg(["ckpt_path=last"]))
    assert resolve_checkpoint(make_cfg(["ckpt_path=auto"])) is None  # auto starts from scratch


def test_jobs_that_differ_only_in_seed_resume_their_own_checkpoints(make_cfg, tmp_path):
    """`-m seed=1,2 ckpt_path=auto`: a requeued seed-2 job must not continue the seed-1 job's run."""
    from hydra.utils import instantiate

    from nlp_template.utils.resume import resolve_checkpoint
    from nlp_template.utils.run import RUN_CONFIG_KEY

    def config(seed: int):
        cfg = make_cfg([f"seed={seed}", "ckpt_path=auto"])
        cfg.paths.log_dir = str(tmp_path / "logs")
        return cfg

    saved = tmp_path / "logs/train/multiruns/x/0/checkpoints/last.ckpt"
    saved.parent.mkdir(parents=True)
    checkpoint = {}
    callback = instantiate(config(1).run_callbacks.run_config)
    callback.on_save_checkpoint(type("T", (), {"loggers": []})(), None, checkpoint)
    torch.save({RUN_CONFIG_KEY: checkpoint[RUN_CONFIG_KEY]}, saved)
    assert resolve_checkpoint(config(1)) == str(saved)
    assert resolve_checkpoint(config(2)) is None  # starts from scratch instead of taking seed 1's weights
