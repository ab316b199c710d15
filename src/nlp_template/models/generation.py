"""Text generation from a causal language model: greedy or seeded sampling, within the model's positions."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase


@torch.no_grad()
def generate(
    network: Any, tokenizer: PreTrainedTokenizerBase, prompt: list[int], max_new_tokens: int = 80,
    do_sample: bool = False, temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
) -> tuple[str, bool]:  # fmt: skip
    """Decode a continuation of `prompt` (token ids); sampling runs in a forked RNG seeded with `seed`.

    A model with learned positions cannot read past them (GPT-2's `n_positions`): the prompt keeps its last tokens
    and generation stops there. Returns the text and whether the prompt had to be cut.
    """
    positions = getattr(network.config, "max_position_embeddings", None)
    truncated = bool(positions) and len(prompt) > positions - 1
    if positions:
        prompt = prompt[-(positions - 1) :]  # room for at least one new token
        max_new_tokens = min(max_new_tokens, positions - len(prompt))
    device = next(network.parameters()).device
    ids = torch.tensor([prompt], device=device)
    settings = {"attention_mask": torch.ones_like(ids), "max_new_tokens": max_new_tokens,
                "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    if do_sample:  # top_k=0 turns Hugging Face's default top-k (50) off
        settings.update(do_sample=True, temperature=temperature, top_k=top_k or 0)
    else:
        settings.update(do_sample=False)
    was_training = network.training
    network.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            output = network.generate(ids, **settings)
    finally:
        network.train(was_training)
    return tokenizer.decode(output[0, len(prompt) :], skip_special_tokens=True), truncated
