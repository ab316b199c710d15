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


@pytest.mark.task("language_modeling")
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_two_torchrun_nodes_train_like_one_process_accumulating_their_batches(tmp_path, make_cfg):
    """Two torchrun agents on localhost (c10d rendezvous, a process each, gloo) as two nodes of one job."""
    import json
    import socket

    from nlp_template.train import train

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A token task (the exact step weighs every token the same across ranks) without dropout (the same weights); 300
    # training blocks in 20 batches of 15: an even count, so no batch is split to share them among the nodes.
    run = ["experiment=lm_tiny", *FAST, "trainer.max_epochs=1", "data.batch_size=15", "callbacks=none"]
    node = [torchrun, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=nodes-test", "--local-addr=127.0.0.1", "-m", "nlp_template.train", "trainer=ddp_sim",
            "trainer.devices=1", "trainer.num_nodes=2", *run, f"paths.log_dir={tmp_path / 'logs'}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    agents = [subprocess.Popen(node, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]  # fmt: skip
    try:
        outputs = [agent.communicate(timeout=600) for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert all(agent.returncode == 0 for agent in agents), [err[-2000:] for _, err in outputs]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # both nodes wrote to one directory
    assert run_dir.name == "torchrun-nodes-test"
    nodes = json.loads((run_dir / "metrics.json").read_text())
    # One process taking the two nodes' batches one after the other: the same examples per optimizer step.
    single = train(make_cfg([*run, "trainer.accumulate_grad_batches=2", "trainer=cpu"]))
    assert nodes["val/loss"] == pytest.approx(single["val/loss"], abs=1e-4)
    assert nodes["test/loss"] == pytest.approx(single["test/loss"], abs=1e-4)


def test_the_sbatch_template_runs_two_nodes_under_a_stand_in_srun(tmp_path):
    """tools/slurm_multinode.sbatch as SLURM would run it: 2 nodes x 1 task, each task a rank reading SLURM's variables.

    The stand-in `srun` starts one process per task with the variables SLURM gives each (on this host, gloo, CPU).
    """
    root = Path(__file__).parents[1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        "#!/bin/bash\n"
        'for rank in 0 1; do SLURM_PROCID=$rank SLURM_NODEID=$rank SLURM_LOCALID=0 "$@" & done\n'
        "wait -n && wait -n\n"
    )
    (bin_dir / "srun").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "7001", "SLURM_JOB_NAME": "nlp-train", "SLURM_NTASKS": "2", "SLURM_NNODES": "2",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NODELIST": "localhost",
             "MASTER_PORT": "0"}  # fmt: skip
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        slurm["MASTER_PORT"] = str(probe.getsockname()[1])
    env = {**os.environ, **slurm, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHON": sys.executable}  # fmt: skip
    command = ["bash", str(root / "tools" / "slurm_multinode.sbatch"), "trainer.accelerator=cpu",
               "+trainer.strategy.process_group_backend=gloo", "trainer.max_epochs=1", *FAST,
               f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()  # both tasks wrote to one directory
    assert run_dir.name == "slurm-7001" and (run_dir / "metrics.json").is_file()
    log = (run_dir / "train.log").read_text()  # two ranks: one tokenized, the other loaded its cache entry
    assert log.count("Tokenized data saved to cache") == 1 and log.count("Tokenized data found in cache") == 1


@pytest.mark.task("language_modeling")
def test_fsdp2_on_cpu_trains_exactly_like_ddp_and_its_checkpoint_evaluates_anywhere(tmp_path, make_cfg):
    """trainer=fsdp2 (ModelParallelStrategy + fully_shard) with 2 CPU processes over gloo against trainer=ddp_sim."""
    import json

    from nlp_template.eval import evaluate

    run = ["experiment=lm_tiny", *FAST, "trainer.max_epochs=1", "data.batch_size=15", "callbacks=none",
           f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    strategies = {
        "ddp": ["trainer=ddp_sim"],
        "fsdp2": ["trainer=fsdp2", "trainer.accelerator=cpu", "trainer.strategy.process_group_backend=gloo"],
    }
    metrics = {}
    for name, trainer in strategies.items():
        result = run_cli(tmp_path, [*run, *trainer, f"paths.output_dir={tmp_path / name}"])
        assert result.returncode == 0, result.stderr[-3000:]
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    for key in ("val/loss", "test/loss"):
        assert metrics["fsdp2"][key] == pytest.approx(metrics["ddp"][key], abs=1e-6)
    # The sharded run saved one full state dict: one process evaluates it like any checkpoint.
    again = evaluate(make_cfg([f"ckpt_path='{metrics['fsdp2']['best_model_path']}'"], name="eval", run="eval"))
    assert again["test/loss"] == pytest.approx(metrics["fsdp2"]["test/loss"], abs=1e-5)


def run_cli(cwd: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    """`nlp-train <overrides>` in a subprocess (DDP and FSDP start their ranks from the command line)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "nlp_template.train", *overrides, "extras.print_config=false"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


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
