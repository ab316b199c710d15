"""The end-of-run summary (results, then the commands for the checkpoint) and the table of a multirun's jobs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nlp_template.utils.plots import plot_sweep
from nlp_template.utils.summary import announce, markdown_table, run_summary, sweep_rows


def test_the_summary_names_the_best_checkpoint_its_score_and_the_next_commands(tmp_path):
    cfg = OmegaConf.create({"monitor": {"metric": "val/acc"}, "paths": {"output_dir": str(tmp_path)}})
    best = tmp_path / "checkpoints" / "epoch_002.ckpt"
    metrics = {"best_model_path": str(best), "val/acc": 0.91234, "test/acc": 0.9, "test/loss": 0.25,
               "fit_seconds": 12.34, "global_step": 40, "throughput/samples_per_sec": 812.3}  # fmt: skip
    text = run_summary(cfg, metrics)
    assert f"best checkpoint  {best}  (val/acc 0.9123)" in text
    assert "test             acc 0.9000, loss 0.2500" in text and "12.3 s, 40 steps, 812 samples/s" in text
    for command in ("nlp-eval", "nlp-predict", "nlp-export"):
        assert f"{command} ckpt_path={best}" in text


def test_without_a_best_checkpoint_the_last_one_is_offered(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    cfg = OmegaConf.create({"monitor": {"metric": "val/acc"}, "paths": {"output_dir": str(tmp_path)}})
    text = run_summary(cfg, {"best_model_path": None, "fit_seconds": 1.0, "global_step": 3})
    assert "final weights" in text and f"nlp-eval ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}" in text


def test_announce_also_writes_to_the_log_file(tmp_path, capsys):
    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        announce("Run directory: somewhere")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert "Run directory: somewhere" in capsys.readouterr().out
    assert "Run directory: somewhere" in (tmp_path / "train.log").read_text()


def test_sweep_rows_read_every_job_in_order(tmp_path):
    for job, (hidden, acc) in enumerate([(64, 0.8), (96, 0.85), (128, None)]):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        (tmp_path / str(job) / ".hydra" / "overrides.yaml").write_text(f"- model.config.hidden_size={hidden}\n")
        if acc is not None:  # the third job crashed: no metrics.json
            (tmp_path / str(job) / "metrics.json").write_text(json.dumps({"val/acc": acc, "global_step": 5}))
    (tmp_path / "10").mkdir()  # job numbers sort as numbers, not strings
    rows = sweep_rows(tmp_path)
    assert [row["job"] for row in rows] == ["0", "1", "2", "10"]
    assert rows[1]["overrides"] == "model.config.hidden_size=96" and rows[1]["val/acc"] == 0.85
    assert rows[2]["val/acc"] == "" and rows[2]["status"] == "no metrics.json"
    table = markdown_table(rows, "val/acc").splitlines()
    assert table[0] == "| job | overrides | val/acc |"
    assert table[2].startswith("| 0 | model.config.hidden_size=64 | 0.8")
    assert Path(rows[0]["run_dir"]).name == "0"


def test_the_sweep_plot_has_a_panel_per_swept_parameter(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"overrides": f"model.optimizer.lr={lr} model=m{i % 2} seed=1", "val/acc": acc}
            for i, (lr, acc) in enumerate([(1e-3, 0.8), (3e-3, 0.85), (1e-2, 0.7)])]  # fmt: skip
    assert plot_sweep(rows, "val/acc", tmp_path / "sweep.png") == tmp_path / "sweep.png"
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert plot_sweep(rows, "val/f1", tmp_path / "none.png") is None  # no such metric: nothing drawn
    assert plot_sweep(rows[:1], "val/acc", tmp_path / "one.png") is None  # one job: nothing was swept
