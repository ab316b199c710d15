"""`GenerationSamples`: what the language model writes, at the end of every validation.

A loss curve says a model improves; a few generated lines say how. Each prompt is continued greedily and by
sampling (temperature, top-k) under a fixed seed, inside `torch.random.fork_rng` so that sampling never shifts the
training run's random stream (a run with this callback trains exactly as one without). Samples go to
`<run dir>/samples.md` and, when present, to TensorBoard (text), Weights & Biases (a table) and MLflow (a text
artifact).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from nlp_template.models.generation import generate
from nlp_template.utils.logger_adapters import log_samples


class GenerationSamples(L.Callback):
    """Generate from a few prompts at validation end and log the text.

    Args:
        prompts: prompt strings (a chat data module renders each as a user turn); None takes the first
            `prompt_tokens` tokens of the first validation blocks (chat: the first conversations up to a reply).
        num_prompts: how many validation blocks give prompts when `prompts` is None.
        prompt_tokens: prompt length taken from validation blocks.
        max_new_tokens: tokens generated per sample.
        temperature: sampling temperature.
        top_k: sample from the k most likely tokens only (None: all).
        seed: seed of the sampled continuations.
    """

    def __init__(
        self,
        prompts: list[str] | None = None,
        num_prompts: int = 2,
        prompt_tokens: int = 16,
        max_new_tokens: int = 80,
        temperature: float = 0.8,
        top_k: int | None = None,
        seed: int = 0,
    ) -> None:
        self.prompts = list(prompts) if prompts else None
        self.num_prompts = num_prompts
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.seed = seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Generate and log (rank 0, not during the sanity check)."""
        # Only during fit: the validation that train.py runs on the best checkpoint would repeat the last samples.
        fitting = trainer.state.fn == TrainerFn.FITTING
        if not fitting or trainer.sanity_checking or not trainer.is_global_zero or trainer.datamodule is None:
            return
        tokenizer = trainer.datamodule.tokenizer
        samples = [self.generate(pl_module, tokenizer, prompt) for prompt in self._prompt_ids(trainer)]
        log_samples(trainer, samples)

    def _prompt_ids(self, trainer: L.Trainer) -> list[list[int]]:
        # The data module knows what a prompt is: text to continue, or a conversation waiting for a reply.
        return trainer.datamodule.generation_prompts(self.prompts, self.num_prompts, self.prompt_tokens)

    def generate(self, pl_module: L.LightningModule, tokenizer: Any, prompt: list[int]) -> dict[str, str]:
        """The prompt and its greedy and sampled continuations, decoded."""
        settings = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_k": self.top_k,
                    "seed": self.seed}  # fmt: skip
        greedy, _ = generate(pl_module.network, tokenizer, prompt, do_sample=False, **settings)
        sampled, _ = generate(pl_module.network, tokenizer, prompt, do_sample=True, **settings)
        positions = getattr(pl_module.network.config, "max_position_embeddings", None)
        shown = prompt[-(positions - 1) :] if positions else prompt
        return {"prompt": tokenizer.decode(shown), "greedy": greedy, "sampled": sampled}
