"""DDP metrics equal single-process metrics, for every task, with splits that do not divide among the ranks.

Every experiment trains under `trainer=ddp_sim` with 3 ranks (`torchrun`, one process group for all of them) on
validation and test splits of 37 and 41 examples; the metrics that run reports for its best checkpoint are then
recomputed in one process. Every `val/*` and `test/*` metric must agree to 1e-6: a metric that averaged per-rank
means (the ranks hold 14, 14 and 9 validation examples) or counted an example twice would not.

Evaluation batches of 7 make 6 batches of each split, which the 3 ranks share without splitting one, so every
example sits in a batch of the same shape in both runs and gets bit-identical network outputs: a network's outputs
change in the 7th digit with the shape of the batch around them, which correlations of nearly constant predictions
(a briefly trained regressor) would amplify past 1e-6, a difference that is not the metric's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hydra
import pytest
import torch
from conftest import kept, minilm_dir

from nlp_template.inference.checkpoints import load_run
from nlp_template.utils.config import compose_config
from nlp_template.utils.run import plain_metrics

pytestmark = pytest.mark.slow

RANKS = 3
SPLITS = ["data.source.num_validation=37", "data.source.num_test=41", "data.eval_batch_size=7"]
BRIEF = ["callbacks=[model_checkpoint,classification_report]", "logger=csv", "extras.print_config=false"]
FEW_STEPS = ["data.source.num_train=240", "trainer.max_epochs=1", "+trainer.limit_train_batches=3"]
EXPERIMENTS = kept(
    [
        "sentiment_tiny",
        "pairs_tiny",
        "regression_tiny",
        "multilabel_tiny",
        "sentiment_lstm",
        "ner_tiny",
        "lm_tiny",
        "qa_tiny",
        "translation_tiny",
        "mlm_tiny",
        "choices_tiny",
        "sft_tiny",
    ]
)  # every task and problem type (of those `make strip` kept)
# Jobs that run an experiment with other settings: name -> (experiment, overrides).
VARIANTS = {"translation_rouge": ("translation_tiny", ["model.metric=rougeL"])}
JOBS = {name: (name, []) for name in EXPERIMENTS} | {
    name: variant for name, variant in VARIANTS.items() if variant[0] in EXPERIMENTS
}
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


def single_process_metrics(ckpt: str, tmp_path: Path) -> dict[str, Any]:
    """Validation and test metrics of a checkpoint in one process (its run's data settings)."""
    cfg = compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu"], tmp_path, tmp_path, use_local=False)
    run = load_run(ckpt)
    datamodule = run.datamodule()
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (OMP_NUM_THREADS=1): another thread count sums in another order
    try:
        metrics = dict(trainer.validate(run.model, datamodule=datamodule, verbose=False)[0])
        metrics.update(trainer.test(run.model, datamodule=datamodule, verbose=False)[0])
    finally:
        torch.set_num_threads(threads)
    return plain_metrics(metrics)


def stream_job(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """The streamed-corpus job (litdata deals blocks to ranks itself), when litdata and its tokenizer are here."""
    if not kept(["lm_stream"]) or importlib.util.find_spec("litdata") is None or minilm_dir() is None:
        return {}
    from nlp_template.data.samples import SentimentSamples

    splits = SentimentSamples(num_train=240, num_validation=37, num_test=41).load()
    files = []
    for split in ("train", "validation", "test"):
        files.append(f"data.source.{split}={tmp_path / f'{split}.txt'}")
        (tmp_path / f"{split}.txt").write_text("\n".join(splits[split]["text"]))
    overrides = [*files, f"data.tokenizer={minilm_dir()}", "data.block_size=16", "data.eval_batch_size=7",
                 "trainer.max_epochs=1", "+trainer.limit_train_batches=3"]  # fmt: skip
    return {"lm_stream": ("lm_stream", overrides)}


@pytest.mark.skipif(TORCHRUN is None, reason="no torchrun")
def test_every_metric_of_every_task_under_ddp_equals_one_process(tmp_path):
    streamed = stream_job(tmp_path)
    jobs = {
        name: {"overrides": [f"experiment={experiment}", *extra, *([] if name in streamed else [*SPLITS, *FEW_STEPS]),
                             *BRIEF, "trainer=ddp_sim", f"trainer.devices={RANKS}"],
               "run_dir": str(tmp_path / name), "cache_dir": str(tmp_path / "cache")}
        for name, (experiment, extra) in (JOBS | streamed).items()
    }  # fmt: skip
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    command = [TORCHRUN, "--nproc-per-node", str(RANKS), str(Path(__file__).parent / "drivers" / "train_many.py"),
               str(tmp_path / "jobs.json"), str(tmp_path / "ddp.json")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    distributed = json.loads((tmp_path / "ddp.json").read_text())
    for name in jobs:
        reported = {key: value for key, value in distributed[name].items() if key.startswith(("val/", "test/"))}
        single = single_process_metrics(distributed[name]["best_model_path"], tmp_path / f"{name}_single")
        assert {"val/loss", "test/loss"} <= reported.keys() and len(reported) >= 4, (name, reported)
        assert reported.keys() == single.keys(), name
        for key, value in reported.items():
            assert value == pytest.approx(single[key], rel=1e-6, abs=1e-6), (name, key, value, single[key])
    # The confusion matrix gathered from the 3 ranks counts each of the 41 test examples once.
    rows = (tmp_path / "sentiment_tiny" / "confusion_matrix.csv").read_text().splitlines()[1:]
    counts = [[int(value) for value in row.split(",")[1:]] for row in rows]
    assert sum(map(sum, counts)) == 41
    correct = sum(counts[index][index] for index in range(len(counts)))
    assert correct / 41 == pytest.approx(distributed["sentiment_tiny"]["test/acc"], abs=1e-6)
