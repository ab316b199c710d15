"""`MaskedLM`: a LightningModule around `AutoModelForMaskedLM` (BERT, RoBERTa, ... pretrained or from a config).

Continued pretraining (domain adaptation): the loss is the cross-entropy of the masked tokens; validation and test
report it as a mean over every masked token of the split (their masks are fixed, see `data/masked_lm.py`) and its
perplexity `exp(loss)`. The Hugging Face export (`nlp-export format=hf`) is a plain model directory with the run's
tokenizer: give it as `model.backbone` to any encoder task (classification, pairs, NER, QA, multiple choice) and
the encoder weights carry over while the task's head starts fresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.optim import Optimizer
from transformers import AutoModelForMaskedLM

from nlp_template.models.base import TaskModule, labelled_tokens
from nlp_template.utils.errors import UserInputError


class MaskedLM(TaskModule):
    """Masked language modelling.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a small BERT `{model_type: bert, num_hidden_layers: 4, ...}`.
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        cls_token_id: the block start token id (given by the data module; also the config's `bos_token_id`).
        sep_token_id: the block end token id (given by the data module; also the config's `eos_token_id`).
        block_size: tokens per example (given by the data module; must fit the model's position embeddings).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        top_k: how many candidates `nlp-predict` lists per mask (`top_k=...` on its command line overrides it).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass.
        compile: `torch.compile` the network with dynamic shapes.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
    """

    pipeline_task = "fill-mask"
    peft_trains_heads = False  # no new head: with model.peft only the adapters train

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        cls_token_id: int | None = None,
        sep_token_id: int | None = None,
        block_size: int | None = None,
        tokenizer_path: str | None = None,
        top_k: int = 5,
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
        # The special ids go into the config too: a config built from scratch (ModernBERT's) otherwise keeps the ids of
        # its original 50k vocabulary, outside this tokenizer's.
        special = {"cls_token_id": cls_token_id, "sep_token_id": sep_token_id, "bos_token_id": cls_token_id,
                   "eos_token_id": sep_token_id}  # fmt: skip
        task_settings = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, **special}
        self.network = self.hf_network(AutoModelForMaskedLM, task_settings)
        positions = getattr(self.network.config, "max_position_embeddings", None)
        if block_size and positions and block_size > positions:
            raise UserInputError(
                f"data.block_size={block_size} is larger than the model's {positions} position embeddings; lower"
                " data.block_size (or build the model with more, model.config.max_position_embeddings)"
            )
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)

    def loss_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The labelled tokens (the loss is a mean over them)."""
        return labelled_tokens(batch)

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Accumulate the loss, weighted by the batch's masked tokens."""
        self.log_loss(stage, self(**batch).loss, self.loss_count(batch))

    def log_epoch(self, stage: str) -> None:
        """Perplexity of the masked tokens: exp of the split's token-weighted loss, summed across ranks."""
        loss = self.eval_losses[stage].compute()  # cached: Lightning's own compute of `{stage}/loss` reuses it
        self.log(f"{stage}/ppl", torch.exp(loss), prog_bar=stage == "val")

    def predict_records(
        self, records: list[dict], datamodule: Any, batch_size: int = 64, **settings: Any
    ) -> Iterator[dict]:
        """Each record with the candidates for its mask tokens (the text must hold the tokenizer's mask token)."""
        tokenizer = datamodule.load_tokenizer()
        return super().predict_records(records, datamodule, batch_size, tokenizer=tokenizer, **settings)

    def decode_predictions(
        self, examples: list[dict], features: list[dict], outputs: Any, tokenizer: Any = None, top_k: int | None = None,
        **unused: Any,
    ) -> list[dict]:  # fmt: skip
        """Per mask token of the input, the `top_k` candidates with probabilities; `filled`: the text with the best."""
        top_k = top_k or self.hparams.top_k
        probabilities = outputs.logits.float().softmax(-1)
        results = []
        for row, feature in enumerate(features):
            ids = list(feature["input_ids"])
            masks = [index for index, token in enumerate(ids) if token == tokenizer.mask_token_id]
            candidates = []
            for index in masks:
                scores, tokens = probabilities[row, index].topk(top_k)
                candidates.append([{"token": tokenizer.convert_ids_to_tokens(int(token)), "score": float(score)}
                                   for score, token in zip(scores, tokens, strict=True)])  # fmt: skip
                ids[index] = int(tokens[0])
            filled = tokenizer.decode(ids, skip_special_tokens=True)
            results.append({"masks": candidates, "filled": filled})
        return results
