"""End-to-end through the real command lines, in subprocesses (each start costs ~10 s of imports)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST

pytestmark = pytest.mark.slow


def run(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", f"nlp_template.{module}", *overrides]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_train_then_eval_from_the_command_line(tmp_path):
    common = [f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    long_tag = "a-tag-longer-than-any-terminal-line-" * 4  # 140 characters: Rich cut such values at 80 columns
    trained = run("train", "trainer.max_epochs=2", f"tags=[{long_tag}]", *FAST[:-1], *common, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "CONFIG" in trained.stdout and long_tag in trained.stdout  # a pipe gets the whole config as plain YAML
    run_dir = Path(re.search(r"Run directory: (.+)", trained.stdout).group(1))
    assert run_dir.parent == tmp_path / "logs" / "train" / "runs"
    assert (run_dir / "config.yaml").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # What was printed is in train.log too: the config, the summary with the next commands, the run directory.
    log = (run_dir / "train.log").read_text()
    assert long_tag in log and f"nlp-eval ckpt_path={metrics['best_model_path']}" in log
    assert f"nlp-eval ckpt_path={metrics['best_model_path']}" in trained.stdout and "Run directory: " in log

    evaluated = run("eval", f"ckpt_path={metrics['best_model_path']}", *common, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_dir = Path(re.search(r"Run directory: (.+)", evaluated.stdout).group(1))
    eval_metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert eval_metrics["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-4)
    assert eval_metrics["test/f1"] == pytest.approx(metrics["test/f1"], abs=1e-4)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["trainer.max_epoch=3"], r"Could not override 'trainer.max_epoch'"),
        (["data=files"], r"^error: missing required value 'data.source.train'"),
        (["data=files", "data.source.train=/nowhere/train.csv"], r"^error: train file not found: /nowhere/train.csv"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, overrides, message):
    result = run("train", *overrides, f"paths.log_dir={tmp_path}", "extras.print_config=false", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr, re.MULTILINE), result.stderr


def test_eval_of_a_missing_checkpoint(tmp_path):
    result = run("eval", f"ckpt_path={tmp_path / 'x.ckpt'}", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: checkpoint not found" in result.stderr
