"""Runs that die: `kill -9` and SIGTERM mid-epoch, requeue signals, NaN losses; DDP parity; reproducibility.

The kill and SIGTERM runs are real `nlp-train` processes that signal themselves at a chosen step (a real signal, at
a reproducible point); they resume in-process with `ckpt_path=last`, and the result is compared with an
uninterrupted run: the same batches in the same order and, on CPU, bit-identical weights and metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import FAST
from test_resume import assert_same_weights, record

from nlp_template.train import train
from nlp_template.utils.errors import UserInputError

TESTS = Path(__file__).parent
# Two epochs of 13 steps; last.ckpt every 5 steps; no early stop; every training batch recorded.
COMMON = [*FAST, "trainer.max_epochs=2", "~callbacks.early_stopping", "callbacks.step_checkpoint.every_n_train_steps=5",
          "logger=csv"]  # fmt: skip
METRICS = ("val/acc", "val/loss", "test/acc", "test/loss", "global_step")


class SignalAtStep(L.Callback):
    """Send this process `signal` (`times` times in a row) once the optimizer has taken `step` steps."""

    def __init__(self, step: int, signal: str, times: int = 1) -> None:
        self.step, self.signal, self.times, self.sent = step, signal, times, False

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            for _ in range(self.times):
                os.kill(os.getpid(), getattr(signal, self.signal))


class PoisonLoss(L.Callback):
    """Make the training loss NaN at the given optimizer steps (what an fp16 overflow or a corrupt batch does)."""

    def __init__(self, steps: list[int], rank: int | None = None) -> None:
        self.steps, self.rank, self.now, self.changed = set(steps), rank, False, []
        PoisonLoss.latest = self

    def on_train_start(self, trainer, pl_module) -> None:
        forward = pl_module.network.forward

        def poisoned(*args, **kwargs):
            output = forward(*args, **kwargs)
            if self.now:
                output.loss = output.loss * float("nan")
            return output

        pl_module.network.forward = poisoned

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.now = trainer.global_step in self.steps and not getattr(self, f"done_{trainer.global_step}", False)
        self.now = self.now and self.rank in (None, trainer.global_rank)
        if self.now:
            setattr(self, f"done_{trainer.global_step}", True)
        self.before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        same = all(torch.equal(a, b) for a, b in zip(self.before, pl_module.parameters(), strict=True))
        self.changed.append(not same)


def extra(log: Path, signal_name: str | None = None, step: int = 0) -> list[str]:
    overrides = ["+callbacks.record._target_=test_resume.RecordBatches", f"+callbacks.record.path={log}"]
    if signal_name:
        overrides += ["+callbacks.signal._target_=test_reliability.SignalAtStep", f"+callbacks.signal.step={step}",
                      f"+callbacks.signal.signal={signal_name}"]  # fmt: skip
    return overrides


def cli_train(
    tmp_path: Path, log_dir: Path, *overrides: str, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **(env or {})}  # fmt: skip
    command = [sys.executable, "-m", "nlp_template.train", *COMMON, f"paths.log_dir={log_dir}",
               f"paths.cache_dir={tmp_path / 'cache'}", *overrides]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def in_process(make_cfg, tmp_path: Path, log_dir: Path, run: str, *overrides: str) -> dict:
    cfg = make_cfg([*COMMON, *overrides], run=f"{log_dir.name}/train/runs/{run}", cache=tmp_path / "cache")
    cfg.paths.log_dir = str(log_dir)  # where ckpt_path=last looks for this experiment's newest last.ckpt
    return train(cfg)


@pytest.fixture
def uninterrupted(make_cfg, tmp_path) -> tuple[dict, list[dict], Path]:
    """Metrics, batch record and final checkpoint of the run the interrupted ones are compared with."""
    log = tmp_path / "uninterrupted.jsonl"
    metrics = in_process(make_cfg, tmp_path, tmp_path / "reference", "full", *extra(log))
    return metrics, record(log), tmp_path / "reference/train/runs/full/checkpoints/last.ckpt"


def assert_same_run(resumed: dict, resumed_ckpt: Path, uninterrupted: tuple) -> None:
    metrics, _, final = uninterrupted
    # One last.ckpt, the newest state, though three callbacks write it (no last-v1.ckpt for ckpt_path=last to miss).
    assert [path.name for path in final.parent.glob("last*.ckpt")] == ["last.ckpt"]
    assert {key: resumed[key] for key in METRICS} == {key: metrics[key] for key in METRICS}
    assert_same_weights(final, resumed_ckpt)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_ckpt_path_last_finishes_as_if_never_killed(make_cfg, tmp_path, uninterrupted):
    log_dir, killed_log, resumed_log = tmp_path / "killed_runs", tmp_path / "killed.jsonl", tmp_path / "resumed.jsonl"
    killed = cli_train(tmp_path, log_dir, *extra(killed_log, "SIGKILL", step=8))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]  # no chance to clean up or save
    last = next(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 5  # the newest step checkpoint
    resumed = in_process(make_cfg, tmp_path, log_dir, "resumed", "ckpt_path=last", *extra(resumed_log))
    # Steps 5-7 ran twice (they were lost with the process); the batches the model learnt from are the reference's.
    seen = [r for r in record(killed_log) if r["step"] < 5] + record(resumed_log)
    assert seen == uninterrupted[1]
    assert_same_run(resumed, log_dir / "train/runs/resumed/checkpoints/last.ckpt", uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_name", "code", "said", "logged"),
    [("SIGTERM", 143, "Stopped by SIGTERM; resume with ckpt_path=last", "SIGTERM"),
     ("SIGINT", 130, "Stopped by Ctrl-C; resume with nlp-train ", "Ctrl-C")],
)  # fmt: skip
def test_sigterm_or_ctrl_c_saves_and_exits_then_resumes_exactly(
    make_cfg, tmp_path, uninterrupted, signal_name, code, said, logged
):
    log_dir, stopped_log, resumed_log = (
        tmp_path / "stopped_runs",
        tmp_path / "stopped.jsonl",
        tmp_path / "resumed.jsonl",
    )
    stopped = cli_train(tmp_path, log_dir, *extra(stopped_log, signal_name, step=8))
    assert stopped.returncode == code, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr and said in stopped.stdout
    if signal_name == "SIGINT":  # the command to type: the run's own overrides, resuming from its last.ckpt
        resume = next(line for line in stopped.stdout.splitlines() if said in line)
        assert "trainer.max_epochs=2" in resume and "ckpt_path=last (run directory: " in resume
    run_dir = next(log_dir.glob("train/runs/*"))
    step = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert step in (8, 9)  # the batch boundary the signal arrived at (callback order decides which)
    assert f"{logged} at step {step}: saved" in (run_dir / "train.log").read_text()
    assert not (run_dir / "metrics.json").exists()  # no test of a half-trained model passed off as the result
    resumed = in_process(make_cfg, tmp_path, log_dir, "resumed", "ckpt_path=last", *extra(resumed_log))
    assert record(stopped_log) + record(resumed_log) == uninterrupted[1]  # nothing lost, nothing repeated
    assert_same_run(resumed, log_dir / "train/runs/resumed/checkpoints/last.ckpt", uninterrupted)
    # What reproduces the run is recorded beside it: resolved config, overrides, git state, versions.
    facts = json.loads((run_dir / "run.json").read_text())
    assert "trainer.max_epochs=2" in facts["overrides"] and {"commit", "dirty"} <= facts["git"].keys()
    assert {"torch", "lightning", "transformers"} <= facts["versions"].keys() and (run_dir / "config.yaml").is_file()


@pytest.mark.slow
def test_second_ctrl_c_aborts_at_once_without_saving(tmp_path):
    log_dir = tmp_path / "runs"
    stopped = cli_train(tmp_path, log_dir, *extra(tmp_path / "b.jsonl", "SIGINT", step=3), "+callbacks.signal.times=2")
    assert stopped.returncode == 1 and "Detected KeyboardInterrupt" in stopped.stdout + stopped.stderr
    assert not list(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))  # step 3: no save, not even the step-5 one


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_saves_on_all_and_resumes(tmp_path):
    """SIGTERM to rank 0 only (as `kill <pid>` does): the ranks agree at the next batch boundary, save, exit 143."""
    log_dir = tmp_path / "runs"
    stopped = cli_train(tmp_path, log_dir, *extra(tmp_path / "b.jsonl", "SIGTERM", step=4), "trainer=ddp_sim",
                        timeout=300)  # fmt: skip
    assert stopped.returncode == 143 and stopped.stdout.count("Stopped by SIGTERM") == 1, stopped.stderr[-2000:]
    last = next(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert step in (4, 5)
    resumed = cli_train(tmp_path, log_dir, "trainer=ddp_sim", "ckpt_path=last", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    finished = [json.loads(path.read_text()) for path in log_dir.glob("train/runs/*/metrics.json")]
    assert len(finished) == 1 and finished[0]["global_step"] > step


def test_requeue_signal_saves_then_hands_over_to_the_launcher(make_cfg, tmp_path):
    """submitit (USR2) and Lightning's SLURM plugin (USR1) requeue the job and exit; first the state is saved."""
    calls = []

    def launcher_handler(signum, frame):  # what submitit does: requeue the job, then leave
        calls.append(signum)
        raise SystemExit(0)

    previous = signal.signal(signal.SIGUSR2, launcher_handler)
    try:
        with pytest.raises(SystemExit):
            train(make_cfg([*COMMON, "trainer.max_epochs=1", "+callbacks.signal._target_=test_reliability.SignalAtStep",
                            "+callbacks.signal.step=3", "+callbacks.signal.signal=SIGUSR2"]))  # fmt: skip
        assert signal.getsignal(signal.SIGUSR2) is launcher_handler  # given back after the run
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert calls == [signal.SIGUSR2]
    saved = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4  # the batch boundary after the signal


@pytest.mark.slow
def test_slurm_requeue_through_lightnings_slurm_plugin(tmp_path):
    """Under SLURM (its variables set, a stand-in `scontrol` on PATH), USR1 saves last.ckpt, then Lightning's SLURM
    plugin saves its hpc checkpoint and requeues the job with `scontrol requeue <job id>`."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls.txt"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "nlp", "SLURM_JOB_ID": "4242",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost",
             "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    log_dir = tmp_path / "slurm_runs"
    result = cli_train(tmp_path, log_dir, *extra(tmp_path / "batches.jsonl", "SIGUSR1", step=3), env=slurm)
    assert result.returncode == 0, result.stderr[-2000:]  # SLURM, not the job, ends it after a requeue
    assert calls.read_text().split() == ["requeue", "4242"]
    run_dir = next(log_dir.glob("train/runs/*"))
    assert "SIGUSR1 at step" in (run_dir / "train.log").read_text() and list(run_dir.glob("hpc_ckpt_*.ckpt"))


@pytest.mark.parametrize("action", ["stop", "skip"])
def test_nan_loss_stops_or_skips_the_step(make_cfg, action):
    short = [*FAST, "trainer.max_epochs=1", "+trainer.limit_train_batches=6", "+trainer.limit_val_batches=1",
             "test=false", "callbacks=none", f"nonfinite_loss.action={action}",
             "+callbacks.poison._target_=test_reliability.PoisonLoss", "+callbacks.poison.steps=[3]"]  # fmt: skip
    if action == "stop":
        with pytest.raises(UserInputError, match=r"training loss is nan at step 3: lower model.optimizer.lr"):
            train(make_cfg(short))
        return
    metrics = train(make_cfg(short))
    # No update from the NaN batch (step 3); the others update (step 0 too, but its warm-up learning rate is 0).
    assert PoisonLoss.latest.changed[1:] == [True, True, False, True, True]
    assert metrics["skipped_steps"] == 1 and metrics["val/loss"] == metrics["val/loss"]  # finite weights
    with pytest.raises(UserInputError, match=r"NaN/inf in 1 batches \(last at step 3, over nonfinite_loss.max_sk"):
        train(make_cfg([*short, "nonfinite_loss.max_skipped=0"], run="strict"))


@pytest.mark.slow
def test_nan_on_one_ddp_rank_stops_or_skips_on_every_rank(tmp_path):
    """Only rank 1's loss is NaN: both ranks must stop (or skip) together, or the other one hangs in the all-reduce."""
    poison = ["+callbacks.poison._target_=test_reliability.PoisonLoss", "+callbacks.poison.steps=[3]",
              "+callbacks.poison.rank=1", "trainer=ddp_sim", "test=false"]  # fmt: skip
    stopped = cli_train(tmp_path, tmp_path / "stop", *poison, timeout=300)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    assert "error: training loss is" in stopped.stderr and "at step 3" in stopped.stderr
    skipped = cli_train(tmp_path, tmp_path / "skip", *poison, "nonfinite_loss.action=skip", timeout=300)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    metrics = json.loads(next((tmp_path / "skip").glob("train/runs/*/metrics.json")).read_text())
    assert metrics["skipped_steps"] == 1  # counted on rank 0, whose own loss was finite


@pytest.mark.slow
def test_requeue_signal_without_a_launcher_saves_then_terminates(tmp_path):
    """No handler for USR2 before: its default action (terminate) still happens, after last.ckpt is saved."""
    log_dir = tmp_path / "runs"
    result = cli_train(tmp_path, log_dir, *extra(tmp_path / "batches.jsonl", "SIGUSR2", step=3))
    assert result.returncode == -signal.SIGUSR2, result.stderr[-2000:]
    saved = next(log_dir.glob("train/runs/*/checkpoints/last.ckpt"))
    assert torch.load(saved, map_location="cpu", weights_only=True)["global_step"] in (3, 4)


class RecordGlobalLoss(L.Callback):
    """Rank 0 appends the mean training loss over all ranks at every step (the loss of the global batch)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = pl_module.all_gather(outputs["loss"].detach()).float().mean().item()
        if trainer.is_global_zero:
            with open(self.path, "a") as handle:
                handle.write(f"{loss}\n")


@pytest.mark.slow
def test_two_ddp_processes_train_like_one_with_the_same_global_batch(make_cfg, tmp_path):
    # 400 examples: 10 global batches of 40 per epoch either way; no dropout (its random numbers differ per rank).
    # Random batches: a batch of 40 is then exactly two consecutive batches of 20 (length grouping plans its
    # mega-batches and batch order per batch size, so 1 x 40 and 2 x 20 see other examples per step).
    common = ["test=false", "+model.config.hidden_dropout_prob=0", "+model.config.attention_probs_dropout_prob=0",
              "+callbacks.losses._target_=test_reliability.RecordGlobalLoss", "data.batching=random"]  # fmt: skip
    single = in_process(make_cfg, tmp_path, tmp_path / "logs", "single", *common, "data.batch_size=40",
                        f"+callbacks.losses.path={tmp_path / 'single.txt'}")  # fmt: skip
    ddp = cli_train(tmp_path, tmp_path / "ddp_logs", *common, "trainer=ddp_sim", "data.batch_size=20",
                    f"+callbacks.losses.path={tmp_path / 'ddp.txt'}")  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = ([float(x) for x in (tmp_path / f"{name}.txt").read_text().split()] for name in ("single", "ddp"))
    assert len(one) == len(two) == 20
    # Same examples per step, gradients averaged over ranks = the mean over the global batch; only the order of
    # float32 additions differs (all-reduce vs one batch), which stays far below 1e-4 over 20 steps.
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-4
    ddp_metrics = json.loads(next((tmp_path / "ddp_logs").glob("train/runs/*/metrics.json")).read_text())
    assert ddp_metrics["val/acc"] == pytest.approx(single["val/acc"], abs=1e-6)
    assert ddp_metrics["val/loss"] == pytest.approx(single["val/loss"], abs=1e-4)


@pytest.mark.slow
def test_same_seed_and_config_give_identical_results(make_cfg):
    brief = [*FAST, "trainer.max_epochs=2", "logger=csv"]
    first, second = (train(make_cfg(brief, run=name)) for name in ("first", "second"))
    keys = [key for key in first if key.startswith(("val/", "test/")) or key == "global_step"]
    assert {key: first[key] for key in keys} == {key: second[key] for key in keys}
    assert_same_weights(Path(first["best_model_path"]), Path(second["best_model_path"]))


def test_checkpoints_load_without_running_code(tmp_path):
    """A pickle runs code while it loads; checkpoints are read with `weights_only=True` and such files refused."""
    from nlp_template.inference.checkpoints import load_run_config

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "nlp_template_config": Payload()}, evil)
    with pytest.raises(UserInputError, match="holds Python objects beyond tensors and plain containers"):
        load_run_config(evil)
    assert not marker.exists()  # nothing ran
    (tmp_path / "truncated.ckpt").write_bytes(evil.read_bytes()[:100])
    with pytest.raises(UserInputError, match="is not a readable checkpoint"):
        load_run_config(tmp_path / "truncated.ckpt")


def test_cache_follows_file_contents_not_names(make_cfg, tmp_path, sentiment_csv):
    """Edit a data file in place (same name, same size, same modification time): its cached token ids are not reused."""
    import hydra

    path = sentiment_csv("train.csv", rows=60)
    cache = tmp_path / "cache"

    def prepare():
        cfg = make_cfg(["data=files", f"data.source.train={path}", "data.validation_fraction=0.2"], cache=cache)
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.prepare_data()
        return datamodule

    first = prepare()
    entries = {p.name for p in (cache / "tokenized").iterdir()}
    stat = path.stat()
    path.write_text(path.read_text().replace("good", "nice"))  # same length: "good" and "nice" have 4 letters
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second = prepare()
    assert {p.name for p in (cache / "tokenized").iterdir()} > entries  # a new entry; the old one is kept
    texts = [second.tokenizer.decode(ids) for split in second.splits.values() for ids in split["input_ids"]]
    assert any("nice" in text for text in texts) and not any("good" in text for text in texts)
    assert first.splits["train"]["input_ids"] != second.splits["train"]["input_ids"]


def test_remote_code_runs_only_when_the_config_allows_it(tmp_path):
    from nlp_template.models.backbones import build_config
    from nlp_template.utils.hub import set_trust_remote_code

    model_dir, marker = tmp_path / "custom_model", tmp_path / "code_ran"
    model_dir.mkdir()
    config = {"model_type": "custom_xyz", "auto_map": {"AutoConfig": "configuration_xyz.XyzConfig"}}
    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "configuration_xyz.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\nfrom transformers import PretrainedConfig\n\n"
        "class XyzConfig(PretrainedConfig):\n    model_type = 'custom_xyz'\n"
    )
    with pytest.raises(UserInputError, match="ships its own Python code, which is not run unless extras.trust_remote"):
        build_config(str(model_dir), None, {})
    assert not marker.exists()
    set_trust_remote_code(True)  # extras.trust_remote_code=true (apply_extras does this in the entry points)
    try:
        assert build_config(str(model_dir), None, {}).model_type == "custom_xyz" and marker.exists()
    finally:
        set_trust_remote_code(False)
