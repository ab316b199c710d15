"""What a finished run says: a summary panel with the next commands, and the table of a multirun's jobs.

A run ends with its best checkpoint and score, the test metrics, the fit time and throughput, the run directory,
and the `nlp-eval` / `nlp-predict` / `nlp-export` commands for that checkpoint, ready to paste. Everything printed
here also goes to the run's log file (`train.log`), so a SLURM job's log and the run directory tell the same story.

`SweepSummary` is a Hydra callback (conf/hydra/default.yaml): after a `-m` multirun or a sweep, it reads every job's
`metrics.json` and `overrides.yaml`, prints one table and saves it as `<sweep dir>/summary.csv` and `summary.md`,
and plots the optimized metric against each swept parameter (`sweep.png`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shlex
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nlp_template.utils.config import to_log_file
from nlp_template.utils.plots import plot_sweep

log = logging.getLogger(__name__)


def announce(text: str) -> None:
    """Print `text` and append it to the run's log file (the console handler would print it twice)."""
    print(text, flush=True)
    to_log_file(text)


def run_summary(cfg: DictConfig, metrics: dict[str, Any]) -> str:
    """The end-of-run panel as plain text: results first, then the commands to use the checkpoint."""
    monitor = OmegaConf.select(cfg, "monitor.metric")
    best = metrics.get("best_model_path")
    ckpt = best or _last_checkpoint(cfg)
    lines = ["", "Run finished " + "-" * 60]
    if best:
        score = metrics.get(monitor) if monitor else None
        lines.append(f"  best checkpoint  {best}" + (f"  ({monitor} {_number(score)})" if score is not None else ""))
    elif ckpt:
        lines.append(f"  checkpoint       {ckpt} (no best-checkpoint selection: the final weights)")
    tests = {key: value for key, value in sorted(metrics.items()) if key.startswith("test/")}
    if tests:
        lines.append("  test             " + ", ".join(f"{key[5:]} {_number(value)}" for key, value in tests.items()))
    speed = metrics.get("throughput/samples_per_sec")
    fit = f"  fit              {metrics.get('fit_seconds', 0):.1f} s, {metrics.get('global_step', 0)} steps"
    lines.append(fit + (f", {speed:.0f} samples/s" if speed else ""))
    trainable, total = metrics.get("trainable_parameters"), metrics.get("total_parameters")
    if trainable and total and trainable < total:  # only worth a line when part of the network is frozen
        lines.append(f"  parameters       {trainable:,} of {total:,} trained ({100 * trainable / total:.2f}%)")
    lines.append(f"  run directory    {cfg.paths.output_dir}")
    if ckpt:
        path = shlex.quote(str(ckpt))
        lines += [
            "  next:",
            f"    nlp-eval ckpt_path={path}",
            f"    nlp-predict ckpt_path={path} input=<file.txt|.jsonl|.csv> output=predictions.jsonl",
            f"    nlp-export ckpt_path={path} format={_export_format(cfg)}",
        ]
    return "\n".join(lines)


def _export_format(cfg: DictConfig) -> str:
    """The export the task suggests (`TaskModule.export_format`: onnx, or hf where a graph cannot hold the task)."""
    target = OmegaConf.select(cfg, "model._target_")
    try:
        return getattr(hydra.utils.get_class(target), "export_format", "onnx") if target else "onnx"
    except Exception:  # noqa: BLE001 - a summary line is not worth failing a finished run
        return "onnx"


def _last_checkpoint(cfg: DictConfig) -> str | None:
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def _number(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    return f"{value:.4f}" if math.isfinite(value) and not float(value).is_integer() else str(value)


class SweepSummary(Callback):
    """After a multirun: one row per job (its overrides, the optimized metric, the other metrics, its directory)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Collect the jobs' results, print the table, save `summary.csv` and `summary.md` in the sweep directory."""
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        if not rows:
            return
        metric = config.get("optimized_metric")
        table = markdown_table(rows, metric)
        (sweep_dir / "summary.md").write_text(table + "\n")
        with open(sweep_dir / "summary.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nSweep of {len(rows)} job(s) ({sweep_dir}/summary.csv):\n{table}", flush=True)
        if metric:
            plot_sweep(rows, metric, sweep_dir / "sweep.png")  # the metric against each swept parameter


def sweep_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One dict per job directory of a sweep: `job`, `overrides`, every metric of its metrics.json, `run_dir`."""
    rows = []
    jobs = [path for path in sweep_dir.iterdir() if path.is_dir() and path.name.isdigit()]
    for job in sorted(jobs, key=lambda path: int(path.name)):
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.is_file() else []
        metrics_file = job / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        scores = {key: value for key, value in metrics.items() if "/" in key and not key.startswith("throughput/")}
        if not metrics_file.is_file():  # a job that crashed or was stopped
            scores["status"] = "no metrics.json"
        rows.append({"job": job.name, "overrides": " ".join(overrides), **scores, "run_dir": str(job)})
    keys = list(dict.fromkeys(key for row in rows for key in row))  # every job gets every column, in one order
    return [{key: row.get(key, "") for key in keys} for row in rows]


def markdown_table(rows: list[dict[str, Any]], metric: str | None) -> str:
    """The jobs as a markdown table: job, overrides, the optimized metric first, then val/ and test/ metrics."""
    scores = [key for key in rows[0] if "/" in key]
    scores.sort(key=lambda key: (key != metric, not key.startswith("val/"), key))
    columns = ["job", "overrides", *scores[:6]]  # a readable width; summary.csv has them all
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_number(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)
