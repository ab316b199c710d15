"""GPU check: mixed precision on CUDA and throughput/MFU of a BERT-base-size encoder at sequence length 128.

    python bench/gpu_check.py --out DIR            # on a CUDA machine (bench/gpu_check.sh sets one up), ~5 min
    python bench/gpu_check.py --smoke --out DIR    # the same code path on a CPU with a tiny model (tested)

For each precision (bf16-mixed, 16-mixed, 32-true, and bf16-mixed with `model.compile=true`, whose first steps
include Inductor's compile time and the recompiles dynamic shapes need) it trains the template's TextClassifier,
built from a config with BERT-base's shape (12 layers, hidden 768, 12 heads, intermediate 3072: its 85M encoder
parameters; the embedding table follows the trained vocabulary; no download), through the
template's own `train()` on examples that are all exactly 128 tokens long (embedded sentiment sentences joined
together), and reports the ThroughputMonitor's medians (samples/s, tokens/s, step time, TFLOP/s, MFU, peak memory),
whether every logged loss was finite, and the dev accuracy. Then the first precision again as a two-node job: two
torchrun agents on this host, one GPU each (NCCL; skipped with fewer than 2 GPUs), with its scaling efficiency.
Writes gpu_check.json and gpu_check.md to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
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


def overrides(
    precision: str, args: argparse.Namespace, files: dict[str, Path], compile: bool, trainer: str
) -> list[str]:
    """The run's overrides: the long examples, BERT-base's shape (tiny in the smoke run), `precision`, the steps."""
    shape = TINY if args.smoke else BERT_BASE
    return [
        "data=files", f"data.source.train={files['train']}", f"data.source.validation={files['dev']}",
        f"data.source.test={files['dev']}", "data.max_length=128", f"data.batch_size={args.batch_size}",
        *[f"model.config.{item}" for item in shape], f"trainer={trainer}",
        f"trainer.precision={precision}", "trainer.max_epochs=1", f"+trainer.max_steps={args.steps}",
        "+trainer.num_sanity_val_steps=0", "trainer.log_every_n_steps=1",
        f"callbacks.throughput.log_every_n_steps={args.log_every}",
        "~callbacks.early_stopping", "extras.print_config=false", "logger=csv", f"model.compile={compile}",
    ]  # fmt: skip


def row(name: str, seconds: float, run_dir: Path, metrics: dict) -> dict:
    """One table row: health checks from the run's logged losses, and the throughput medians of `metrics`."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        losses = [float(r["train/loss"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    return {
        "precision": name,
        "wall_seconds": seconds,
        "losses_finite": bool(losses) and all(math.isfinite(loss) for loss in losses),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "dev_accuracy": metrics.get("val/acc"),
        **{key.split("/", 1)[1]: value for key, value in metrics.items() if key.startswith("throughput/")},
    }


def check(precision: str, args: argparse.Namespace, files: dict[str, Path], compile: bool = False) -> dict:
    """Train `args.steps` steps in `precision` and return the throughput medians and health checks."""
    name = precision + (" + compile" if compile else "")
    run_dir = args.out / f"run-{precision}{'-compile' if compile else ''}"
    trainer = "cpu" if args.smoke else "gpu"
    cfg = compose_config("train", overrides(precision, args, files, compile, trainer), run_dir, args.out / "cache")
    start = time.perf_counter()
    metrics = train(cfg)
    return row(name, time.perf_counter() - start, run_dir, metrics)


def two_nodes(precision: str, args: argparse.Namespace, files: dict[str, Path]) -> dict:
    """Two torchrun agents on this host as the two nodes of one job (c10d rendezvous), one GPU each (NCCL).

    The smoke run starts two CPU processes (gloo) instead. Throughput is rank 0's, i.e. per node; the row's
    `job_tokens_per_sec` doubles it (both nodes train batches of the same shape).
    """
    import torch

    name = f"{precision}, 2 nodes x 1 {'CPU process' if args.smoke else 'GPU'}"
    gpus = torch.cuda.device_count()
    if not args.smoke and gpus < 2:
        return {"precision": name, "skipped": f"needs 2 GPUs (this machine has {gpus})"}
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logs = args.out / "two-nodes"
    node = [torchrun, "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=gpu-check", "--local-addr=127.0.0.1", "-m", "nlp_template.train",
            *overrides(precision, args, files, False, "ddp_sim" if args.smoke else "ddp"), "trainer.devices=1",
            "trainer.num_nodes=2", f"paths.log_dir={logs}", f"paths.cache_dir={args.out / 'cache'}"]  # fmt: skip
    start = time.perf_counter()
    agents = [subprocess.Popen(node, env={**os.environ, "CUDA_VISIBLE_DEVICES": str(i)}) for i in range(2)]
    try:
        codes = [agent.wait(timeout=1800) for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    seconds = time.perf_counter() - start
    if any(codes):
        return {"precision": name, "skipped": f"failed: torchrun agents exited with {codes}"}
    (run_dir,) = (logs / "train" / "runs").iterdir()
    result = row(name, seconds, run_dir, json.loads((run_dir / "metrics.json").read_text()))
    result["job_tokens_per_sec"] = 2 * result.get("real_tokens_per_sec", 0)
    return result


def report(rows: list[dict], device: str) -> str:
    """A Markdown table of the checks."""
    lines = [
        f"Device: {device}",
        "",
        "| precision | losses finite | samples/s | tokens/s | step (ms) | TFLOP/s | MFU | peak mem (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['precision']} | {r['skipped']} | | | | | | |")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "n/a"
        lines.append(
            f"| {r['precision']} | {r['losses_finite']} | {r.get('samples_per_sec', 0):,.0f} |"
            f" {r.get('real_tokens_per_sec', 0):,.0f} | {1000 * r.get('step_time_sec', 0):.1f} |"
            f" {r.get('tflops_per_sec', 0):.1f} | {mfu} | {r.get('peak_memory_gb', 0):.1f} |"
        )
    nodes = [r for r in rows if "job_tokens_per_sec" in r]
    single = next((r for r in rows if r["precision"] == (nodes[0]["precision"].split(",")[0] if nodes else "")), None)
    if nodes and single and single.get("real_tokens_per_sec"):
        efficiency = nodes[0]["job_tokens_per_sec"] / (2 * single["real_tokens_per_sec"])
        lines += ["", f"Two nodes: {nodes[0]['job_tokens_per_sec']:,.0f} tokens/s for the job (tokens/s above is per"
                      f" node), {efficiency:.0%} of twice the one-device row."]  # fmt: skip
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
    rows.append(two_nodes(runs[0][0], args, files))  # the first row's precision on two nodes of one job
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    (args.out / "gpu_check.json").write_text(json.dumps({"device": device, "rows": rows}, indent=2))
    markdown = report(rows, f"{device}, torch {torch.__version__}")
    (args.out / "gpu_check.md").write_text(markdown)
    print(markdown)
    return rows


if __name__ == "__main__":
    main()
