"""Train the default experiments, export each as hf / onnx / torchscript, and print the README's size/latency table.

    python bench/export_latency.py [--experiments sentiment_tiny sentiment_lstm] [--repeats 50] [--out DIR]

Every step is the command a user runs (`nlp-train experiment=NAME`, then `nlp-export ckpt_path=... format=...`);
the table comes from the exports' own `export_report.json`: file sizes, the maximum absolute logit difference from
PyTorch on a held-out batch of 32 test examples, and median CPU latency of PyTorch and of the export for batch 1 and
batch 32 (same threads for both). `--ckpt NAME=PATH` reuses a trained checkpoint instead of training.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

# executorch where it is installed (the `mobile` extra).
MOBILE = ("executorch",) if importlib.util.find_spec("executorch") else ()
FORMATS = {"TextClassifier": ("hf", "onnx", "torchscript", *MOBILE), "RNNClassifier": ("onnx", "torchscript", *MOBILE)}


def cli(module: str, *overrides: str) -> str:
    """Run `python -m nlp_template.<module>` and return its standard output (fail loudly)."""
    command = [sys.executable, "-m", f"nlp_template.{module}", "extras.print_config=false", *overrides]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def fresh(path: Path) -> Path:
    """`path` with the time appended: a benchmark run again never trains into a finished run's directory."""
    return path.with_name(f"{path.name}_{time.strftime('%Y%m%d_%H%M%S')}")


def train(overrides: list[str], run_dir: Path) -> str:
    """`nlp-train <overrides>` into a fresh `run_dir_<time>`; the best checkpoint's path (the other benches use it)."""
    stdout = cli("train", *overrides, f"hydra.run.dir={fresh(run_dir)}")
    run_dir = Path(re.search(r"Run directory: (.+)", stdout).group(1))
    return json.loads((run_dir / "metrics.json").read_text())["best_model_path"]


def export(ckpt: str, fmt: str, out: Path, repeats: int) -> dict:
    """Export the checkpoint; its report."""
    directory = out / fmt
    cli("export", f"ckpt_path={ckpt}", f"format={fmt}", f"output={directory}", "overwrite=true",
        f"latency.repeats={repeats}", f"hydra.run.dir={out / 'export_runs' / fmt}")  # fmt: skip
    return json.loads((directory / "export_report.json").read_text())


def table(rows: list[tuple[str, dict]]) -> str:
    """The reports as a markdown table."""
    header = "| experiment (task) | format | size MB | max abs diff | tokens | batch 1: PyTorch / export ms"
    lines = [header + " | batch 32 |", "|---|---|---|---|---|---|---|"]
    for experiment, report in rows:
        latency = {row["batch_size"]: row for row in report.get("latency", [])}
        cells = [_latency_cell(latency[size]) if size in latency else "same as PyTorch" for size in (1, 32)]
        difference = f"{report['max_abs_diff']:.1e}" if "max_abs_diff" in report else "0 (same weights)"
        tokens = next((row["sequence_length"] for row in latency.values()), "")
        lines.append(f"| {experiment} ({report['task']}) | {report['format']} | {report['export_mb']:.2f} |"
                     f" {difference} | {tokens} | {cells[0]} | {cells[1]} |")  # fmt: skip
    return "\n".join(lines)


def _latency_cell(row: dict) -> str:
    return f"{row['pytorch_ms']:.2f} / {row['export_ms']:.2f} ({row['speedup']:.1f}x)"


def main() -> None:
    """Parse arguments, train, export, print the table and save it with the reports."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=["sentiment_tiny", "sentiment_lstm"])
    parser.add_argument("--ckpt", nargs="*", default=[], help="NAME=PATH: use this checkpoint for NAME")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/export"))
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.ckpt)
    rows = []
    for experiment in args.experiments:
        ckpt = given.get(experiment) or train([f"experiment={experiment}"], args.out / "runs" / experiment)
        task = "RNNClassifier" if "lstm" in experiment else "TextClassifier"
        for fmt in FORMATS[task]:
            rows.append((experiment, export(ckpt, fmt, args.out / experiment, args.repeats)))
    threads = next((report["threads"] for _, report in rows if "threads" in report), "?")
    text = table(rows) + f"\n\nCPU threads: {threads}; medians of {args.repeats} timed runs after 3 warm-up runs.\n"
    print(text)
    (args.out / "table.md").write_text(text)


if __name__ == "__main__":
    main()
