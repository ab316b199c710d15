"""Training curves where people look: `<run dir>/curves.png` beside metrics.json, from the CSV logger's file.

Up to three panels: the training and validation loss, the monitored metric (e.g. `val/acc`), and the learning rate.
Reading `csv/metrics.csv` (written by the default `logger=csv`) rather than holding values in memory keeps the
plot the same for a resumed run, whose CSV continues the first one's. Without that file, or without matplotlib (an
optional dependency), no plot is drawn and the reason is logged.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)


def read_series(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Column -> [(step, value), ...] for every numeric column of a Lightning CSV log (empty cells skipped)."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = _float(row.get("step"))
            if step is None:
                continue
            for key, text in row.items():
                value = _float(text)
                if key not in ("step", "epoch") and value is not None:
                    series.setdefault(key, []).append((step, value))
    return series


def plot_curves(run_dir: str | Path, monitor: str | None = None) -> Path | None:
    """Draw `<run_dir>/curves.png` from `<run_dir>/csv/metrics.csv`; returns its path, or None when not drawn."""
    run_dir = Path(run_dir)
    source = run_dir / "csv" / "metrics.csv"
    if not source.is_file():
        log.info("No %s (logger=csv is off): curves.png is not drawn", source)
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: curves.png is not drawn")
        return None
    series = read_series(source)
    panels = [
        ("loss", [key for key in ("train/loss", "val/loss") if key in series]),
        (monitor or "", [monitor] if monitor and monitor != "val/loss" and monitor in series else []),
        ("learning rate", sorted(key for key in series if key.startswith("lr-"))[:1]),
    ]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for axis, (title, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            steps, values = zip(*series[key], strict=True)
            axis.plot(steps, values, marker="o" if key.startswith("val/") else None, markersize=3, label=key)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = run_dir / "curves.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_sweep(rows: list[dict], metric: str, path: str | Path) -> Path | None:
    """One panel per swept parameter: `metric` of every job against that parameter's value (`<sweep dir>/sweep.png`).

    `rows` are `utils.summary.sweep_rows`; a parameter is swept when the jobs' overrides give it two or more values.
    Numbers go on a numeric axis, other values (`model=a,b`) one position each. None when nothing can be drawn.
    """
    values: dict[str, list[str]] = {}
    for row in rows:
        for override in str(row.get("overrides", "")).split():
            key, _, value = override.partition("=")
            values.setdefault(key.lstrip("+~"), []).append(value)
    swept = [key for key, seen in values.items() if len(set(seen)) > 1 and len(seen) == len(rows)]
    scores = [_float(str(row.get(metric, ""))) for row in rows]
    if not swept or all(score is None for score in scores):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: sweep.png is not drawn")
        return None
    figure, axes = plt.subplots(1, len(swept), figsize=(4 * len(swept), 3.2), squeeze=False)
    for axis, key in zip(axes[0], swept, strict=True):
        numbers = [_float(value) for value in values[key]]
        if all(number is not None for number in numbers):
            axis.scatter(numbers, scores)
        else:  # categories, in the order the sweep ran them
            names = list(dict.fromkeys(values[key]))
            axis.scatter([names.index(value) for value in values[key]], scores)
            axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
        axis.set_xlabel(key)
        axis.set_ylabel(metric)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
