"""GPU check: mixed precision on CUDA and throughput/MFU of a BERT-base-size encoder at sequence length 128.

    python bench/gpu_check.py --out DIR            # on a CUDA machine (bench/gpu_check.sh sets one up), ~5 min
    python bench/gpu_check.py --smoke --out DIR    # the same code path on a CPU with a tiny model (tested)

For each precision (bf16-mixed, 16-mixed, 32-true, and bf16-mixed with `model.compile=true`, whose first steps
include Inductor's compile time and the recompiles dynamic shapes need) it trains the template's TextClassifier,
built from a config with BERT-base's shape (12 layers, hidden 768, 12 heads, intermediate 3072: its 85M encoder
parameters; the embedding table follows the trained vocabulary; no download), through the
template's own `train()` on examples that are all exactly 128 tokens long (embedded sentiment sentences joined
together), and reports the ThroughputMonitor's medians (samples/s, tokens/s, step time, TFLOP/s, MFU, peak memory),
whether every logged loss was finite, and the dev accuracy. Writes gpu_check.json and gpu_check.md to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

from nlp_template.data.samples import SentimentSamples
from nlp_template.train import train
from nlp_template.utils.config import compose_config

ROOT = Path(__file__).resolve().parents[1]

BERT_BASE = ["hidden_size=768", "num_hidden_layers=12", "num_attention_heads=12", "intermediate_size=3072"]
TINY = ["hidden_size=64", "num_hidden_layers=1", "num_attention_heads=2", "intermediate_size=128"]


def write_long_examples(path: Path, count: int, seed: int) -> None:
    """Join generated sentences until every text is longer than 128 tokens (truncated to exactly 128)."""
    data = SentimentSamples(num_train=count * 12, num_validation=1, num_test=1, seed=seed).load()["train"]
    texts, labels = data["text"], data["label"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(count):
            writer.writerow([" ".join(texts[i * 12 : (i + 1) * 12]), labels[i * 12]])


def check(precision: str, args: argparse.Namespace, files: dict[str, Path], compile: bool = False) -> dict:
    """Train `args.steps` steps in `precision` and return the throughput medians and health checks."""
    name = precision + (" + compile" if compile else "")
    run_dir = args.out / f"run-{precision}{'-compile' if compile else ''}"
    shape = TINY if args.smoke else BERT_BASE
    overrides = [
        "data=files", f"data.source.train={files['train']}", f"data.source.validation={files['dev']}",
        f"data.source.test={files['dev']}", "data.max_length=128", f"data.batch_size={args.batch_size}",
        *[f"model.config.{item}" for item in shape], f"trainer={'cpu' if args.smoke else 'gpu'}",
        f"trainer.precision={precision}", "trainer.max_epochs=1", f"+trainer.max_steps={args.steps}",
        "+trainer.num_sanity_val_steps=0", "trainer.log_every_n_steps=1",
        f"callbacks.throughput.log_every_n_steps={args.log_every}",
        "~callbacks.early_stopping", "extras.print_config=false", "logger=csv", f"model.compile={compile}",
    ]  # fmt: skip
    cfg = compose_config("train", overrides, run_dir, args.out / "cache")
    start = time.perf_counter()
    metrics = train(cfg)
    losses = []
    with open(run_dir / "csv" / "metrics.csv") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    return {
        "precision": name,
        "wall_seconds": time.perf_counter() - start,
        "losses_finite": bool(losses) and all(math.isfinite(loss) for loss in losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "dev_accuracy": metrics.get("val/acc"),
        **{key.split("/", 1)[1]: value for key, value in metrics.items() if key.startswith("throughput/")},
    }


def report(rows: list[dict], device: str) -> str:
    """A Markdown table of the checks."""
    lines = [
        f"Device: {device}",
        "",
        "| precision | losses finite | samples/s | tokens/s | step (ms) | TFLOP/s | MFU | peak mem (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "n/a"
        lines.append(
            f"| {r['precision']} | {r['losses_finite']} | {r.get('samples_per_sec', 0):,.0f} |"
            f" {r.get('real_tokens_per_sec', 0):,.0f} | {1000 * r.get('step_time_sec', 0):.1f} |"
            f" {r.get('tflops_per_sec', 0):.1f} | {mfu} | {r.get('peak_memory_gb', 0):.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the checks; returns one row per precision."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny model, a few steps: tests the script")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA device: use --smoke to exercise the script on a CPU")
    args.steps = args.steps or (6 if args.smoke else 300)
    args.batch_size = args.batch_size or (4 if args.smoke else 64)
    args.log_every = 2 if args.smoke else 25
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"train": args.out / "train.csv", "dev": args.out / "dev.csv"}
    write_long_examples(files["train"], max(args.steps * args.batch_size, 64), seed=1)
    write_long_examples(files["dev"], 64 if args.smoke else 1024, seed=2)
    runs = [("32-true", False)] if args.smoke else [("bf16-mixed", False), ("bf16-mixed", True), ("16-mixed", False),
                                                    ("32-true", False)]  # fmt: skip
    rows = [check(precision, args, files, compile) for precision, compile in runs]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    (args.out / "gpu_check.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    markdown = report(rows, f"{device}, torch {torch.__version__}")
    (args.out / "gpu_check.md").write_text(markdown)
    print(markdown)
    return rows


if __name__ == "__main__":
    main()
