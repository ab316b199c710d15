"""`QuestionAnswering`: extractive question answering around `AutoModelForQuestionAnswering` (BERT, RoBERTa, ...).

Loss: the network's mean of the start and end cross-entropies over the windows of the batch. Validation and test
collect every window's start/end logits; at the end of the split the windows of each example are decoded into its
best answer (`models/qa_answers.py`: n-best spans, `max_answer_length`, the best span across windows, and for SQuAD
v2.0 the null-score threshold), and exact match and F1 are computed with the official SQuAD normalisation
(`metrics/squad.py`) against every gold answer. Under DDP every rank's windows are gathered first, so the scores
are those of the whole split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.optim import Optimizer
from transformers import AutoModelForQuestionAnswering

from nlp_template.metrics.squad import squad_scores
from nlp_template.models.base import TaskModule
from nlp_template.models.qa_answers import best_answers

STAGE_SPLITS = {"val": "validation", "test": "test"}


class QuestionAnswering(TaskModule):
    """Extractive question answering: start and end of the answer span in the context.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override (e.g. a tiny encoder from `model_type: bert`).
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        version_2_with_negative: questions may have no answer (given by the data module).
        n_best: best start and end positions per window considered for the answer.
        max_answer_length: longest answer in tokens.
        null_threshold: SQuAD v2.0: answer "" when the null score beats the best span's by more than this.
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass.
        compile: `torch.compile` the network with dynamic shapes.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
    """

    graph_outputs = ("start_logits", "end_logits")

    @property
    def pipeline_task(self) -> str | None:
        """`question-answering` where the installed transformers still has that pipeline (4.x; 5.x removed it).

        Either way the `hf` export loads with `AutoModelForQuestionAnswering`, and `models/qa_answers.py` decodes
        its logits as the 4.x pipeline did.
        """
        from transformers.pipelines import SUPPORTED_TASKS

        return "question-answering" if "question-answering" in SUPPORTED_TASKS else None

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        tokenizer_path: str | None = None,
        version_2_with_negative: bool = False,
        n_best: int = 20,
        max_answer_length: int = 30,
        null_threshold: float = 0.0,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        backbone_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
        peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, gradient_clip_val)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        task_settings = {"vocab_size": vocab_size, "pad_token_id": pad_token_id}
        self.network = self.hf_network(AutoModelForQuestionAnswering, task_settings)
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)
        self._windows: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {"val": [], "test": []}

    def _answer_settings(self, **overrides: Any) -> dict[str, Any]:
        settings = {key: self.hparams[key] for key in ("n_best", "max_answer_length", "null_threshold")}
        settings.update({key: value for key, value in overrides.items() if key in settings and value is not None})
        return {**settings, "version_2": self.hparams.version_2_with_negative}

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Loss of the batch; keep each window's logits (real positions only) for the split's answers."""
        indices = batch.pop("feature_index")
        output = self(**batch)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        starts, ends = output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()
        for row, (index, length) in enumerate(zip(indices.tolist(), lengths, strict=True)):
            self._windows[stage].append((index, starts[row, :length], ends[row, :length]))
        self.log_loss(stage, output.loss, self.loss_count(batch))  # a mean over the windows

    def log_epoch(self, stage: str) -> None:
        """Exact match and F1 (0-100, SQuAD's scale) over the whole split, from every rank's windows."""
        windows, self._windows[stage] = self._windows[stage], []
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if self._trainer is None or self.trainer.datamodule is None or not (windows or distributed):
            return  # every rank must reach the gather below, even one that saw no window
        datamodule = self.trainer.datamodule
        if distributed:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, windows)
            windows = [window for part in gathered for window in part]
        split = STAGE_SPLITS[stage]
        features = datamodule.splits[split]
        ids, contexts, golds = datamodule.references(split)
        windows = sorted({index: (index, s, e) for index, s, e in windows}.values(), key=lambda window: window[0])
        rows = features.select([index for index, _, _ in windows]).select_columns(["example_row", "offset_mapping"])
        metas = [{"example_index": row["example_row"], "offset_mapping": row["offset_mapping"]} for row in rows]
        answers = best_answers(contexts, metas, [s for _, s, _ in windows], [e for _, _, e in windows],
                               **self._answer_settings())  # fmt: skip
        # Scored over the examples that had windows evaluated: all of them, unless trainer.limit_*_batches cut the
        # split short (a debug run), where unseen examples would otherwise count as wrong answers.
        seen = sorted({meta["example_index"] for meta in metas})
        predicted = {ids[row]: answers[row]["answer"] for row in seen}
        scores = squad_scores(predicted, {ids[row]: golds[row] for row in seen})
        # The same numbers on every rank (all windows were gathered): no further reduction.
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items()}, prog_bar=stage == "val")

    def decode_predictions(
        self, examples: list[dict], features: list[dict], outputs: Any, n_best: int | None = None,
        max_answer_length: int | None = None, null_threshold: float | None = None, **unused: Any,
    ) -> list[dict]:  # fmt: skip
        """The answer text, its character start and end in the context, and its score, per example."""
        contexts = [""] * len(examples)
        for feature in features:
            contexts[feature["example_index"]] = feature["context"]
        lengths = [len(feature["input_ids"]) for feature in features]
        starts = [row[:n] for row, n in zip(outputs.start_logits.float().cpu().numpy(), lengths, strict=True)]
        ends = [row[:n] for row, n in zip(outputs.end_logits.float().cpu().numpy(), lengths, strict=True)]
        settings = self._answer_settings(n_best=n_best, max_answer_length=max_answer_length,
                                         null_threshold=null_threshold)  # fmt: skip
        return best_answers(contexts, features, starts, ends, **settings)

    def export_info(self) -> dict[str, Any]:
        """How to decode the exported logits into answers."""
        return self._answer_settings()
