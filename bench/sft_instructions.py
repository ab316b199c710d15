"""Chat SFT, measured: exact match before and after training, and LoRA vs full fine-tuning of a chat model.

    python bench/sft_instructions.py [--quick] [--out DIR]

Offline, on the embedded instruction conversations (`data=sample_instructions`) and the small GPT-2 of
`experiment=sft_tiny`, every step a command a user would run, one after the other:
1. `before`: the test exact match of the untrained model (the same config, no training step);
2. `nlp-train experiment=sft_tiny`: full SFT on all six task families;
3. a base chat model: the same run on four families only (add, subtract, capitals, lookup), exported with
   `nlp-export format=hf` (a plain Hugging Face directory with the chat template);
4. that base adapted to two new families (reverse, count) by full fine-tuning and by LoRA (`model.peft=lora`), the
   same data, epochs and seed; LoRA at a higher learning rate, the usual practice.
Every model is scored with `nlp-predict` on the test conversations cut before their last reply: exact match per task
family (reply text equal to the reference), so step 4 shows what each method learns (new families) and keeps (old
ones). `--quick` shortens every run (the test's smoke run; its numbers mean nothing). Writes `results.json` and prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The new families use only characters the old ones have: the base's character tokenizer knows no others (a first
# draft adapted to look-ups, whose `=` and `,` it had never seen, and read them as <unk>).
OLD, NEW = ["add", "subtract", "capitals", "lookup"], ["reverse", "count"]
SFT = ["experiment=sft_tiny", "extras.print_config=false"]


def command(module: str, overrides: list[str]) -> float:
    """Run `nlp-<module>` with the overrides; returns its wall seconds."""
    print(f"$ nlp-{module} {' '.join(overrides)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", f"nlp_template.{module}", *overrides], cwd=ROOT, check=True)
    return time.perf_counter() - start


def test_prompts(out: Path, quick: bool) -> tuple[Path, list[dict]]:
    """The test split's conversations cut before their last reply (an input file), and the references."""
    from nlp_template.data.samples import InstructionSamples

    test = InstructionSamples(num_train=40 if quick else 4000).load()["test"]
    rows = [{"messages": messages[:-1], "reference": messages[-1]["content"], "task": task}
            for messages, task in zip(test["messages"], test["task"], strict=True)]  # fmt: skip
    if quick:
        rows = rows[:24]
    path = out / "test_prompts.jsonl"
    path.write_text("".join(json.dumps({"messages": row["messages"]}) + "\n" for row in rows))
    return path, rows


def scored(run: Path, prompts: Path, references: list[dict]) -> dict[str, float]:
    """Exact match per task family (and `all`) of the run's best checkpoint's replies, through `nlp-predict`."""
    metrics = json.loads((run / "metrics.json").read_text())
    output = run / "test_replies.jsonl"
    command("predict", [f"ckpt_path={metrics['best_model_path']}", f"input={prompts}", f"output={output}",
                        "+settings.max_new_tokens=24", "extras.print_config=false"])  # fmt: skip
    replies = [json.loads(line)["response"] for line in output.read_text().splitlines()]
    hits: dict[str, list[bool]] = defaultdict(list)
    for reply, row in zip(replies, references, strict=True):
        hits[row["task"]].append(reply == row["reference"])
        hits["all"].append(reply == row["reference"])
    return {task: sum(values) / len(values) for task, values in sorted(hits.items())}


def untrained_exact_match(out: Path, quick: bool) -> float:
    """Test exact match of the model before any training step (the config of step 2, in this process)."""
    import hydra
    import lightning as L

    from nlp_template.training import accepted
    from nlp_template.utils.config import compose_config

    overrides = [*SFT, *(["data.source.num_test=24"] if quick else [])]
    cfg = compose_config("train", overrides, out / "untrained", out / "cache", use_local=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    L.seed_everything(cfg.seed)
    model = hydra.utils.instantiate(cfg.model, _convert_="all", **accepted(cfg.model, datamodule.model_kwargs()))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return trainer.test(model, datamodule=datamodule, verbose=False)[0]["test/exact_match"]


def main(argv: list[str] | None = None) -> dict:
    """Run every step; print and save the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps each: checks the script, not the numbers")
    parser.add_argument("--lora-lr", type=float, default=2e-3)
    parser.add_argument("--adapt-epochs", type=int, default=3)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"sft-{stamp}")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    common = [f"paths.cache_dir={out / 'cache'}"]
    if args.quick:
        common += ["data.source.num_train=40", "data.source.num_validation=8", "data.source.num_test=8",
                   "trainer.max_epochs=1", "+trainer.limit_train_batches=2"]  # fmt: skip
    prompts, references = test_prompts(out, args.quick)
    results: dict = {"before": {"test_exact_match": untrained_exact_match(out, args.quick)}, "seconds": {}}

    runs = {"full_sft": [], "base_4_families": [f"data.source.tasks=[{','.join(OLD)}]"]}
    for name, extra in runs.items():
        results["seconds"][name] = command("train", [*SFT, *common, *extra, f"hydra.run.dir={out / name}"])
        results[name] = scored(out / name, prompts, references)
    base = json.loads((out / "base_4_families" / "metrics.json").read_text())["best_model_path"]
    command("export", [f"ckpt_path={base}", "format=hf", f"output={out / 'base_hf'}", "extras.print_config=false"])
    adapt = [*SFT, *common, f"model.backbone={out / 'base_hf'}", "model.pretrained=true", "model.config=null",
             f"data.source.tasks=[{','.join(NEW)}]", f"trainer.max_epochs={1 if args.quick else args.adapt_epochs}",
             "data.source.num_train=2000" if not args.quick else "data.source.num_train=40"]  # fmt: skip
    methods = {"adapt_full": ["model.optimizer.lr=1e-3"],
               "adapt_lora_r8": ["model.peft=lora", "model.peft_settings.r=8", "model.peft_settings.alpha=16",
                                 f"model.optimizer.lr={args.lora_lr}"]}  # fmt: skip
    for name, extra in methods.items():
        results["seconds"][name] = command("train", [*adapt, *extra, f"hydra.run.dir={out / name}"])
        metrics = json.loads((out / name / "metrics.json").read_text())
        counts = {"trainable": metrics["trainable_parameters"], "total": metrics["total_parameters"]}
        results[name] = {**scored(out / name, prompts, references), **counts}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print_tables(results)
    return results


def print_tables(results: dict) -> None:
    """The two Markdown tables of docs/tasks.md."""
    tasks = [*OLD, *NEW]
    print(f"\nuntrained model: test exact match {results['before']['test_exact_match']:.3f}\n")
    print("| model | all | " + " | ".join(tasks) + " | trainable parameters | train s |")
    print("|---|---|" + "---|" * len(tasks) + "---|---|")
    for name in ("full_sft", "base_4_families", "adapt_full", "adapt_lora_r8"):
        row = results[name]
        cells = " | ".join(f"{row.get(task, float('nan')):.3f}" for task in tasks)
        share = f"{row['trainable']:,} ({100 * row['trainable'] / row['total']:.1f}%)" if "trainable" in row else "all"
        print(f"| {name} | {row['all']:.3f} | {cells} | {share} | {results['seconds'][name]:.0f} |")


if __name__ == "__main__":
    main()
