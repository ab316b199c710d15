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
    new = generate_ids(network, prompt, max_new_tokens, tokenizer.pad_token_id, do_sample, temperature, top_k, seed)
    return tokenizer.decode(new, skip_special_tokens=True), truncated


@torch.no_grad()
def generate_ids(
    network: Any, prompt: list[int], max_new_tokens: int, pad_token_id: int | None, do_sample: bool = False,
    temperature: float = 0.8, top_k: int | None = None, seed: int = 0,
) -> list[int]:  # fmt: skip
    """The new token ids after `prompt` (stopping at the network's end-of-text), in eval mode, seeded."""
    device = next(network.parameters()).device
    ids = torch.tensor([prompt], device=device)
    settings = {"attention_mask": torch.ones_like(ids), "max_new_tokens": max_new_tokens,
                "pad_token_id": pad_token_id}  # fmt: skip
    if do_sample:  # top_k=0 turns Hugging Face's default top-k (50) off
        settings.update(do_sample=True, temperature=temperature, top_k=top_k or 0)
    else:
        settings.update(do_sample=False)
    was_training = network.training
    network.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            output = network.generate(input_ids=ids, **settings)
    finally:
        network.train(was_training)
    return output[0, len(prompt) :].tolist()
