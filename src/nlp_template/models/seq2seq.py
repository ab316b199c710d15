"""`Seq2SeqLM`: a LightningModule around `AutoModelForSeq2SeqLM` (T5, BART, ... pretrained or from a config).

Training minimises the decoder's teacher-forced cross-entropy over the target tokens (padding is -100, skipped).
Validation and test report that loss as a token-weighted mean over the split (`ExactMean`) and, by generating from
every source (`generation.num_beams`, `generation.max_new_tokens`), a corpus metric on the decoded texts:
`metric: bleu` (sacreBLEU, 13a tokenization, 0-100) or `metric: rougeL` (ROUGE-L, with ROUGE-1 and ROUGE-2,
F-measure, 0-100; `metrics/generation.py`). Their states are n-gram counts or sums of per-sentence scores, summed
over DDP ranks, so they equal a single process's. References are the decoded `labels` (cut at
`max_target_length`), as in the Hugging Face examples. A few (source, reference, generated) triples of each
validation during training go to `<run dir>/samples.md` and the loggers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.optim import Optimizer
from transformers import AutoModelForSeq2SeqLM

from nlp_template.metrics.generation import ROUGE_KEYS, text_metric
from nlp_template.models.base import TaskModule, labelled_tokens
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.logger_adapters import log_samples

METRICS = ("bleu", "rougeL")
GENERATION = {"num_beams": 1, "max_new_tokens": None, "on_validation": True, "samples": 3}


class Seq2SeqLM(TaskModule):
    """Sequence-to-sequence generation: translation, summarization, any text-to-text task.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a small BART `{model_type: bart, d_model: 256, ...}`.
        metric: `bleu` (translation) or `rougeL` (summarization; ROUGE-1/2 logged too), on generated text; the
            logged name, so `monitor.metric: val/${model.metric}` follows it.
        generation: `num_beams`, `max_new_tokens` (None: the data's `max_target_length`), `on_validation` (false:
            generation metrics on the test split only) and `samples` (triples logged per validation).
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module; the decoder's start token of a model from config).
        eos_token_id: tokenizer end-of-sequence id (given by the data module).
        max_target_length: the data's target length (given by the data module).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        generation_config: the network's generation settings; set automatically, restored with a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass.
        compile: `torch.compile` the network with dynamic shapes.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
    """

    # transformers 5 removed the translation/summarization/text2text pipelines: the export is used through
    # `AutoModelForSeq2SeqLM.from_pretrained(dir).generate(...)` (docs/deployment.md).
    pipeline_task = None
    export_format = "hf"
    peft_trains_heads = False  # no new head: with model.peft only the adapters train
    predicts_from_graph = False  # predictions are generated with the network's `generate`

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        metric: str = "bleu",
        generation: dict[str, Any] | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        max_target_length: int = 128,
        tokenizer_path: str | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        backbone_config: dict[str, Any] | None = None,
        generation_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
        peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, gradient_clip_val)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        if metric not in METRICS:
            raise UserInputError(f"model.metric={metric} is not one of {', '.join(METRICS)}")
        unknown = sorted(set(generation or {}) - set(GENERATION))
        if unknown:
            raise UserInputError(f"model.generation has unknown key(s) {unknown}; it takes {sorted(GENERATION)}")
        self.generation = {**GENERATION, **(generation or {})}
        self.generation["max_new_tokens"] = self.generation["max_new_tokens"] or max_target_length
        settings = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, "eos_token_id": eos_token_id}
        if not pretrained:  # a pretrained model keeps its own start token (T5: pad, BART: </s>)
            settings.update(decoder_start_token_id=pad_token_id)
        self.network = self.hf_network(AutoModelForSeq2SeqLM, settings)
        self._restore_generation_config()
        self.metric_name = metric
        self.text_metrics = torch.nn.ModuleDict({stage: text_metric(metric) for stage in ("val", "test")})
        self._samples: list[dict[str, str]] = []
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)

    def _restore_generation_config(self) -> None:
        """The network's generation settings: a checkpoint's as saved, else the backbone's with ours on top.

        transformers 5 keeps generation settings out of `config.to_dict()`, so a network rebuilt from the saved
        config would lose a pretrained backbone's (BART-CNN's `min_length`, `no_repeat_ngram_size`, ...): they are
        kept in the hyperparameters. They also go into the HF export's `generation_config.json`, so `generate()` there
        decodes as validation did.
        """
        from transformers import GenerationConfig

        saved = self.hparams.get("generation_config")
        if saved:
            self.network.generation_config = GenerationConfig.from_dict(saved)
            return
        config = self.network.generation_config
        config.update(num_beams=self.generation["num_beams"], max_new_tokens=self.generation["max_new_tokens"])
        config.max_length = None  # max_new_tokens rules; both set makes every generate() call warn
        self.hparams["generation_config"] = config.to_dict()

    # ------------------------------------------------------------------------------------------------ evaluation
    def loss_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The labelled tokens (the loss is a mean over them)."""
        return labelled_tokens(batch)

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Teacher-forced loss (weighted by target tokens) and, where enabled, the metric on generated text."""
        loss = self(**batch).loss
        self.log_loss(stage, loss, self.loss_count(batch))
        if stage == "val" and not self.generation["on_validation"]:
            return
        generated = self.generate_texts(batch["input_ids"], batch["attention_mask"])
        references = self.decode(batch["labels"])
        self.text_metrics[stage].update(generated, [[reference] for reference in references])
        if stage == "val" and len(self._samples) < self.generation["samples"]:
            sources = self.decode(batch["input_ids"])
            rows = zip(sources, references, generated, strict=True)
            self._samples += [{"source": s, "reference": r, "generated": g} for s, r, g in rows]

    def log_epoch(self, stage: str) -> None:
        """The split's BLEU or ROUGE (0-100) from the summed states of every rank; samples after a validation."""
        if stage == "val" and not self.generation["on_validation"]:
            return
        metric = self.text_metrics[stage]
        value = metric.compute()
        scores = {"bleu": value} if self.metric_name == "bleu" else {
            key: value[f"{key}_fmeasure"] for key in ROUGE_KEYS}  # fmt: skip
        for key, score in scores.items():
            self.log(f"{stage}/{key}", score.float() * 100, prog_bar=stage == "val" and key == self.metric_name)
        metric.reset()
        if stage == "val":
            self._write_samples()

    def _write_samples(self) -> None:
        """Log this validation's first triples (rank 0, while fitting, not in the sanity check)."""
        samples, self._samples = self._samples, []
        trainer = self._trainer
        if trainer is None or not samples or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.state.fn != TrainerFn.FITTING:
            return
        log_samples(trainer, samples)

    # ------------------------------------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **overrides: Any) -> torch.Tensor:
        """Generated token ids (greedy or beam search), the decoder start token first."""
        settings = {"num_beams": self.generation["num_beams"], "max_new_tokens": self.generation["max_new_tokens"],
                    **overrides}  # fmt: skip
        was_training = self.network.training
        self.network.eval()
        try:
            return self.network.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                                         pad_token_id=self.network.config.pad_token_id,
                                         eos_token_id=self.network.config.eos_token_id, **settings)  # fmt: skip
        finally:
            self.network.train(was_training)

    def generate_texts(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **overrides: Any) -> list[str]:
        """Generated texts, decoded without special tokens."""
        return self.decode(self.generate_ids(input_ids, attention_mask, **overrides))

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids (labels' -100 as padding) -> texts without special tokens."""
        tokenizer = self.tokenizer()
        ids = ids.masked_fill(ids == -100, tokenizer.pad_token_id)
        return [text.strip() for text in tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)]

    def tokenizer(self) -> Any:
        """The run's tokenizer: the attached data module's, else loaded once from `tokenizer_path`.

        The data module's first: `nlp-eval` of a run directory that was moved finds the tokenizer beside the
        checkpoint (`inference/checkpoints.py`), where the recorded absolute path no longer exists.
        """
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if getattr(datamodule, "tokenizer", None) is not None:
            return datamodule.tokenizer
        if getattr(self, "_tokenizer", None) is None:
            from transformers import AutoTokenizer

            path = self.hparams.get("tokenizer_path")
            if not path:
                raise UserInputError("the model has no tokenizer_path (the data module sets it in nlp-train)")
            object.__setattr__(self, "_tokenizer", AutoTokenizer.from_pretrained(path))
        return self._tokenizer

    # ------------------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_records(
        self, records: list[dict], datamodule: Any, batch_size: int = 32, num_beams: int | None = None,
        max_new_tokens: int | None = None, **unused: Any,
    ) -> Iterator[dict]:  # fmt: skip
        """Each record with its generated text (`generated`), in order; settings default to training's."""
        object.__setattr__(self, "_tokenizer", datamodule.load_tokenizer())
        overrides = {key: value for key, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens))
                     if value is not None}  # fmt: skip
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            _, features = datamodule.encode_records(chunk)
            batch = {key: value.to(self.device) for key, value in datamodule.collate_inputs(features).items()}
            texts = self.generate_texts(batch["input_ids"], batch["attention_mask"], **overrides)
            for record, feature, text in zip(chunk, features, texts, strict=True):
                yield {**record, "generated": text, **({"truncated": True} if feature.get("truncated") else {})}

    def graph_module(self, input_names: list[str]) -> torch.nn.Module:
        """Not a single graph: generation loops over the decoder (refused in one line, naming what works)."""
        raise UserInputError(f"{type(self).__name__} generates with a decoder loop, which onnx/torchscript exports do"
                             " not cover here; use format=hf (load it with AutoModelForSeq2SeqLM.from_pretrained and"
                             " call generate)")  # fmt: skip
