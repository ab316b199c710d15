"""Optuna sweeps through Hydra (hydra/sweeper=optuna_study): trials, resume, crash recovery, pruning, parallel jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAST

from nlp_template.utils.config import PROJECT_ROOT

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.slow


def sweep(tmp_path: Path, *overrides: str) -> Path:
    """Run `nlp-train -m hparams_search=sentiment_optuna` on tiny settings; returns the log directory."""
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "nlp_template.train", "-m", "hparams_search=sentiment_optuna", *FAST,
               "trainer.max_epochs=2", "~callbacks.early_stopping", f"paths.log_dir={logs}",
               f"paths.cache_dir={tmp_path}/cache", *overrides]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return logs


def load(logs: Path) -> optuna.Study:
    return optuna.load_study(study_name="sentiment_optuna", storage=f"sqlite:///{logs}/optuna.db")


def summaries(logs: Path) -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in sorted(logs.glob("train/multiruns/*/optuna_summary.yaml"))]


def test_three_trials_then_resume_with_two_parallel_jobs(tmp_path):
    logs = sweep(tmp_path, "hydra.sweeper.n_trials=3")
    study = load(logs)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    first = [t.params for t in study.trials]
    summary = summaries(logs)[0]
    assert summary["trials"] == {"COMPLETE": 3} and summary["best_value"] == study.best_value
    # Each job trained with its own trial's parameters.
    job = yaml.safe_load(next(logs.glob("train/multiruns/*/1/config.yaml")).read_text())
    assert job["model"]["optimizer"]["lr"] == pytest.approx(study.trials[1].params["model.optimizer.lr"])
    assert job["data"]["batch_size"] == study.trials[1].params["data.batch_size"]

    # The same command again, with a larger budget and two trials at a time: the study continues.
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    logs = sweep(tmp_path, "hydra.sweeper.n_trials=5", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "hydra.sweeper.n_jobs=2")  # fmt: skip
    study = load(logs)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    assert [t.params for t in study.trials[:3]] == first  # the earlier trials are kept, not redone


def test_a_trial_left_running_by_a_crash_is_retried(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    study = optuna.create_study(study_name="sentiment_optuna", storage=f"sqlite:///{logs}/optuna.db",
                                direction="maximize")  # fmt: skip
    crashed = study.ask({"model.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 3e-3, log=True)})
    sweep(tmp_path, "hydra.sweeper.n_trials=1")
    trials = load(logs).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params["model.optimizer.lr"] == crashed.params["model.optimizer.lr"]  # queued again first


def test_pruned_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    # A pruner no trial can satisfy (val/acc >= 2): every trial is stopped after its first validation.
    pruner = ["hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "+hydra.sweeper.pruner.lower=2.0",
              "~hydra.sweeper.pruner.n_startup_trials", "~hydra.sweeper.pruner.n_warmup_steps"]  # fmt: skip
    logs = sweep(tmp_path, "hydra.sweeper.n_trials=2", *pruner)
    study = load(logs)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    assert all(list(t.intermediate_values) == [0] for t in study.trials)  # reported once, then stopped
    assert summaries(logs)[0]["trials"] == {"PRUNED": 2} and summaries(logs)[0]["best_value"] is None


def test_optuna_trials_under_ddp_keep_their_parameters_on_every_rank(tmp_path):
    # Hidden sizes differ per trial: a DDP child that took another trial's value (or sampled its own) would crash
    # with a parameter shape mismatch. A search space of its own, from a config folder added to Hydra's search path.
    search = tmp_path / "conf" / "hparams_search"
    search.mkdir(parents=True)
    (search / "ddp_check.yaml").write_text(
        "# @package _global_\ndefaults:\n  - sentiment_optuna\n  - _self_\n"
        "hydra:\n  sweeper:\n    study_name: ddp_check\n    params:\n      model.config.hidden_size: choice(64, 96)\n"
    )
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "nlp_template.train", "-m", "hparams_search=ddp_check",
               f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "hydra.sweeper.n_trials=2",
               "hydra.sweeper.pruner=null", "trainer=ddp_sim", "trainer.max_epochs=1", *FAST, f"paths.log_dir={logs}",
               f"paths.cache_dir={tmp_path}/cache"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="ddp_check", storage=f"sqlite:///{logs}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        job = next(logs.glob(f"train/multiruns/*/{trial.number}"))
        hparams = yaml.safe_load((job / "csv" / "hparams.yaml").read_text())
        assert hparams["model"]["config"]["hidden_size"] == trial.params["model.config.hidden_size"]
        assert (job / "metrics.json").is_file()


def test_optuna_trials_as_submitit_jobs(tmp_path):
    # The SLURM path without SLURM: submitit's local executor runs each trial as a separate submitted job.
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    logs = sweep(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "hydra/launcher=submitit_local",
                 "trainer.max_epochs=1")  # fmt: skip
    study = load(logs)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert len(list(logs.glob("train/multiruns/*/.submitit/*"))) >= 2  # submitted, not run in-process
