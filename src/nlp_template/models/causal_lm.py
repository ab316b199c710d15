"""`CausalLM`: a LightningModule around `AutoModelForCausalLM` (GPT-2, Llama, ... pretrained or from a config).

Loss: the network's next-token cross-entropy in nats, a mean over the predicted tokens of the batch (padding of the
last, shorter block is masked out). Validation and test report the loss as a token-weighted mean over the whole
split (not a mean of batch means, which would over-weight a short last block) and its perplexity `exp(loss)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.optim import Optimizer
from transformers import AutoModelForCausalLM

from nlp_template.models.base import TaskModule
from nlp_template.models.generation import generate
from nlp_template.utils.errors import UserInputError


class CausalLM(TaskModule):
    """Causal (next-token) language modelling.

    Args:
        backbone: Hub id or local directory of the model (or of its config when `pretrained` is false).
        pretrained: load the backbone's weights; false builds the network with random weights.
        config: config fields to set or override, e.g. a small GPT-2 `{model_type: gpt2, n_layer: 4, ...}`.
        vocab_size: tokenizer vocabulary size (given by the data module).
        pad_token_id: tokenizer pad id (given by the data module).
        eos_token_id: tokenizer end-of-text id (given by the data module; also the generation start/stop token).
        block_size: tokens per example (given by the data module; must fit the model's position embeddings).
        tokenizer_path: where the run's tokenizer is saved (given by the data module).
        optimizer: partial optimizer, called with the parameter groups.
        scheduler: partial scheduler, called with the optimizer and `num_training_steps`.
        gradient_clip_val: clip the gradient norm to this; `trainer.gradient_clip_val`, when set, wins (0: off).
        backbone_config: the network's full config; set automatically and used when loading a checkpoint.
        gradient_checkpointing: recompute activations in the backward pass.
        compile: `torch.compile` the network with dynamic shapes.
        peft: train parameter-efficient adapters instead of every weight: `lora` (or another peft method).
        peft_settings: the method's settings (LoRA: `r`, `alpha`, `dropout`, `target_modules`; see adapters.py).
        packed: training blocks hold several documents with their own position ids (given by a chat data module with
            `data.packing=true`); the network's attention is checked to keep them apart.
    """

    pipeline_task = "text-generation"
    prediction_key = "continuation"  # the field nlp-predict writes the generated text to
    peft_trains_heads = False  # no new head: with model.peft only the adapters train
    predicts_from_graph = False  # predictions are generated with the network's `generate`

    def __init__(
        self,
        backbone: str | None = None,
        pretrained: bool = False,
        config: dict[str, Any] | None = None,
        vocab_size: int | None = None,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        block_size: int | None = None,
        tokenizer_path: str | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        gradient_clip_val: float | None = None,
        backbone_config: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        compile: bool = False,
        peft: str | None = None,
        peft_settings: dict[str, Any] | None = None,
        packed: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, gradient_clip_val)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"], logger=False)
        task_settings = {
            "vocab_size": vocab_size,
            "pad_token_id": pad_token_id,
            "bos_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
        }
        self.network = self.hf_network(AutoModelForCausalLM, task_settings)
        positions = getattr(self.network.config, "max_position_embeddings", None)
        if block_size and positions and block_size > positions:
            raise UserInputError(
                f"data.block_size={block_size} is larger than the model's {positions} position embeddings; lower"
                " data.block_size (or build the model with more positions, e.g. model.config.n_positions)"
            )
        if packed:
            check_packed_attention(self.network)
        self.setup_network(gradient_checkpointing, compile, peft, peft_settings)

    def forward(self, **batch: torch.Tensor) -> Any:
        """The network's output, without a key/value cache (generation makes its own).

        Training and scoring forwards never reuse a cache, and transformers keeps packed documents apart only when
        there is none, and no attention mask: a packed batch (with `position_ids`) leaves its mask out.
        """
        if "position_ids" in batch:
            batch = {key: value for key, value in batch.items() if key != "attention_mask"}
        return super().forward(**batch, use_cache=False)

    def loss_count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The predicted tokens: each labelled position after the first predicts the next token."""
        return (batch["labels"][:, 1:] != -100).sum()

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """Accumulate the loss, weighted by the batch's predicted tokens."""
        self.log_loss(stage, self(**batch).loss, self.loss_count(batch))

    def log_epoch(self, stage: str) -> None:
        """Perplexity over the whole split: exp of the token-weighted loss, summed across ranks."""
        loss = self.eval_losses[stage].compute()  # cached: Lightning's own compute of `{stage}/loss` reuses it
        self.log(f"{stage}/ppl", torch.exp(loss), prog_bar=stage == "val")  # already the same on every rank

    def predict_records(
        self, records: list[dict], datamodule: Any, batch_size: int = 64, max_new_tokens: int = 80,
        do_sample: bool = False, temperature: float = 0.8, top_k: int | None = None, seed: int = 0, **unused: Any,
    ) -> Iterator[dict]:  # fmt: skip
        """A continuation of each record's text as prompt (greedy, or sampled with `seed`), one at a time."""
        settings = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "temperature": temperature,
                    "top_k": top_k, "seed": seed}  # fmt: skip
        tokenizer = datamodule.load_tokenizer()
        for record in records:
            _, features = datamodule.encode_records([record])  # the training encoding, without a document end
            prompt = features[0]["input_ids"] or [tokenizer.eos_token_id]
            continuation, truncated = generate(self.network, tokenizer, prompt, **settings)
            yield {**record, self.prediction_key: continuation, **({"truncated": True} if truncated else {})}


@torch.no_grad()
def check_packed_attention(network: torch.nn.Module) -> None:
    """Refuse packing when the network lets packed documents attend to each other.

    transformers builds attention that stays inside each document from position ids that restart, when no
    attention mask is given; models built on its shared masking (Llama, Qwen2, Mistral, GPT-2, ... with eager, sdpa,
    flex or flash attention) do, older ones do not. Tested here rather than listed: two short documents packed in
    one row must give the same logits as each alone.
    """
    vocab = network.config.vocab_size
    ids = torch.arange(1, 8).remainder(vocab).unsqueeze(0)
    positions = torch.tensor([[0, 1, 2, 0, 1, 2, 3]])
    was_training = network.training
    network.eval()
    try:
        packed = network(input_ids=ids, position_ids=positions, use_cache=False).logits
        alone = torch.cat([network(input_ids=part, use_cache=False).logits for part in (ids[:, :3], ids[:, 3:])], 1)
    finally:
        network.train(was_training)
    if not torch.allclose(packed, alone, atol=1e-4):
        implementation = getattr(network.config, "_attn_implementation", None)
        raise UserInputError(
            f"data.packing=true: this model ({network.config.model_type}, attention {implementation}) lets packed"
            " conversations attend to each other, which would train on text from the wrong conversation; set"
            " data.packing=false, or use a model whose attention follows position ids (e.g. llama, qwen2, gpt2)"
        )
