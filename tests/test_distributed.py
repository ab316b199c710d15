"""DDP under Hydra on the CPU (gloo): single runs, -m sweeps, torchrun. Subprocesses, because DDP starts processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAST
from test_cli import run

pytestmark = pytest.mark.slow


def test_ddp_sim_single_run_prepares_data_once_and_writes_once(tmp_path):
    result = run(
        "train", "trainer=ddp_sim", "trainer.max_epochs=1", *FAST[:-1],
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("CONFIG") == 1  # rank 1 runs the entry point too, but prints nothing
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    log = (run_dir / "train.log").read_text()
    assert log.count("Tokenized data saved to cache") == 1  # rank 0 tokenized ...
    assert log.count("Tokenized data found in cache") == 1  # ... rank 1 loaded its result
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 1
    assert (run_dir / "metrics.json").is_file()


def test_ddp_sim_multirun_gives_each_job_its_own_hyperparameters(tmp_path):
    # Different hidden sizes per job: a child that took another job's value (or ran a sweep of its own) would crash
    # DDP with a parameter shape mismatch or leave extra run directories behind.
    result = run(
        "train", "-m", "trainer=ddp_sim", "trainer.max_epochs=1", "model.config.hidden_size=64,96", *FAST,
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    assert not (tmp_path / "logs" / "train" / "runs").exists()
    for job, hidden in (("0", 64), ("1", 96)):
        hparams = yaml.safe_load((sweep_dir / job / "csv" / "hparams.yaml").read_text())
        assert hparams["model"]["config"]["hidden_size"] == hidden
        assert (sweep_dir / job / "metrics.json").is_file()
    assert len(re.findall(r"Run directory: ", result.stdout)) == 2
    # One table of the jobs, printed and saved beside them.
    rows = (sweep_dir / "summary.csv").read_text().splitlines()
    assert len(rows) == 3 and "model.config.hidden_size=64" in rows[1] and "val/acc" in rows[0]
    assert "Sweep of 2 job(s)" in result.stdout and (sweep_dir / "summary.md").is_file()
    assert (sweep_dir / "sweep.png").is_file()  # val/acc against model.config.hidden_size


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_cpu_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    command = [
        torchrun, "--nproc-per-node", "2", "-m", "nlp_template.train", "trainer=ddp", "trainer.accelerator=cpu",
        "trainer.devices=2", "trainer.max_epochs=1", *FAST,
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # both ranks wrote to one directory
    assert "torchrun" in run_dir.name
    assert (run_dir / "metrics.json").is_file()
    assert (run_dir / "train.log").read_text().count("Tokenized data saved to cache") == 1


def test_submitit_local_launcher_runs_a_job(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run(
        "train", "-m", "hydra/launcher=submitit_local", "debug=fdr", *FAST,
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "debug" / "multiruns").iterdir()
    assert (sweep_dir / "0" / "metrics.json").is_file()
    assert (sweep_dir / ".submitit").is_dir()  # the job really went through submitit
