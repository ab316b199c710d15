"""Domain adaptation, measured: the same classifier from random weights vs from an encoder MLM-pretrained here.

    python bench/mlm_domain_adaptation.py [--corpus sst2|embedded] [--data-dir ../shared/data] [--quick]

Four commands, run as a user would run them, one after the other in one process tree:
1. `nlp-train` masked-LM pretraining of a small BERT from config on the unlabelled corpus,
2. `nlp-export format=hf` of its best checkpoint (a plain Hugging Face directory with the trained tokenizer),
3. `nlp-train` of a classifier with `model.backbone=<export> model.pretrained=true` (the MLM encoder),
4. the same command with `model.pretrained=false`: the same architecture, tokenizer, data, schedule and seed, random
   weights.
Corpora: `sst2` pretrains on the text of SST-2's 67k training phrases and fine-tunes on a labelled subset of them,
tested on GLUE dev (`--data-dir` must hold `sst2/`); `embedded` uses the generated sentiment sentences (offline).
`--quick` shortens every run (the test's smoke run; its numbers mean nothing). Writes `results.json` and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpora(data_dir: Path) -> dict[str, dict[str, list[str]]]:
    """Per corpus: the MLM run's overrides and the classifier run's (both runs add their own output paths)."""
    sst2 = data_dir / "sst2"
    return {
        "embedded": {
            "mlm": ["experiment=mlm_tiny"],
            "classifier": [
                "experiment=sentiment_tiny",
                "data.max_train_examples=200",
                "data.max_length=64",
                "trainer.max_epochs=10",
            ],
        },
        "sst2": {
            "mlm": [
                "experiment=mlm_tiny",
                "data=mlm_text_files",
                f"data.source.train={sst2 / 'train.tsv'}",
                "data.text_column=sentence",
                "data.vocab_size=8000",
                "data.block_size=64",
                "data.batch_size=64",
                "model.config.num_hidden_layers=4",
                "model.config.hidden_size=256",
                "model.config.intermediate_size=1024",
                "trainer.max_epochs=8",
            ],  # fmt: skip
            "classifier": [
                "data=files",
                f"data.source.train={sst2 / 'train.tsv'}",
                f"data.source.test={sst2 / 'dev.tsv'}",
                "data.text_column=sentence",
                "data.max_length=64",
                "data.validation_fraction=0.02",
                "data.max_train_examples=4000",
                "data.batch_size=32",
                "data.batching=length_grouped",
                "trainer.max_epochs=4",
                "model.optimizer.lr=2e-4",
            ],
        },
    }


QUICK = {"mlm": ["trainer.max_epochs=1", "+trainer.limit_train_batches=20"],
         "classifier": ["trainer.max_epochs=1", "+trainer.limit_train_batches=5"]}  # fmt: skip


def command(module: str, overrides: list[str], cwd: Path = ROOT) -> float:
    """Run `python -m nlp_template.<module> <overrides>` (it must succeed); its wall time in seconds."""
    print("$ nlp-" + module + " " + " ".join(overrides), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", f"nlp_template.{module}", *overrides], cwd=cwd, check=True)
    return time.perf_counter() - start


def best_checkpoint(run_dir: Path) -> Path:
    """The run's best checkpoint, as its metrics.json records it."""
    return Path(json.loads((run_dir / "metrics.json").read_text())["best_model_path"])


def main(argv: list[str] | None = None) -> dict:
    """Pretrain, export, fine-tune twice; print and save the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=["sst2", "embedded"], default=None, help="default: sst2 when present")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="tiny runs: checks the recipe, not the numbers")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"mlm-{stamp}")
    args = parser.parse_args(argv)
    data_dir, out = args.data_dir.resolve(), args.out.resolve()
    corpus = args.corpus or ("sst2" if (data_dir / "sst2").is_dir() else "embedded")
    settings = corpora(data_dir)[corpus]
    common = [f"paths.data_dir={data_dir}", "extras.print_config=false", f"paths.log_dir={out / 'logs'}"]
    quick = QUICK if args.quick else {"mlm": [], "classifier": []}
    times = {"mlm": command("train", [*settings["mlm"], *common, *quick["mlm"], f"hydra.run.dir={out / 'mlm'}"])}
    export = out / "mlm_export"
    times["export"] = command("export", [f"ckpt_path={best_checkpoint(out / 'mlm')}", "format=hf",
                                         f"hydra.run.dir={export}", *common])  # fmt: skip
    mlm = json.loads((out / "mlm" / "metrics.json").read_text())
    results = {"corpus": corpus, "quick": args.quick, "mlm": {"val_loss": mlm.get("val/loss"),
               "test_ppl": mlm.get("test/ppl"), "seconds": times["mlm"]}, "classifier": {}}  # fmt: skip
    for start, pretrained in (("mlm_encoder", "true"), ("random_weights", "false")):
        overrides = [
            *settings["classifier"],
            "model=text_classifier_pretrained",
            f"model.backbone={export / 'hf'}",
            f"model.pretrained={pretrained}",
            *common,
            *quick["classifier"],
            f"hydra.run.dir={out / start}",
        ]
        seconds = command("train", overrides)
        metrics = json.loads((out / start / "metrics.json").read_text())
        results["classifier"][start] = {"test_acc": metrics["test/acc"], "val_acc": metrics.get("val/acc"),
                                        "fit_seconds": metrics["fit_seconds"], "seconds": seconds}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nMLM on {corpus}: val loss {mlm.get('val/loss'):.3f}, {times['mlm']:.0f} s\n")
    print("| classifier starts from | test accuracy | fit s |\n|---|---|---|")
    for start, row in results["classifier"].items():
        print(f"| {start.replace('_', ' ')} | {row['test_acc']:.3f} | {row['fit_seconds']:.0f} |")
    return results


if __name__ == "__main__":
    main()
