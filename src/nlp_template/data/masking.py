"""Masking for masked language modelling: BERT's 80/10/10 corruption of token- or whole-word-level picks.

Why not `transformers.DataCollatorForLanguageModeling`: its whole-word masking finds words from character offsets
(`offset_mapping`), which mean nothing once documents are packed into blocks, and it turns off the random-token
replacement for whole words. Here the data module records, per token, whether it starts a word (`WORD_START`),
continues one (`WORD_CONTINUE`) or is a special token (`SPECIAL`, never masked), and one function masks either
tokens or whole words from that. The same function, with a seeded generator, fixes the validation and test masks
once at tokenization, so their loss is the same for any batching and any number of ranks.
"""

from __future__ import annotations

import torch

WORD_START, WORD_CONTINUE, SPECIAL = 1, 0, -1


def word_ids(word_marks: torch.Tensor, whole_words: bool) -> torch.Tensor:
    """Per token, the id of the unit masked together (-1: never masked), from the marks above, (batch, length).

    Token-level: each maskable token is its own unit. Whole words: a start and its continuations share an id; the
    continuations a block begins with (their start is in the previous block) are never masked.
    """
    maskable = word_marks >= 0
    if not whole_words:
        positions = torch.arange(word_marks.shape[1]).expand_as(word_marks)
        return torch.where(maskable, positions, -1)
    ids = torch.cumsum(word_marks == WORD_START, dim=1) - 1
    return torch.where(maskable & (ids >= 0), ids, -1)


def mask_tokens(
    input_ids: torch.Tensor,
    units: torch.Tensor,
    probability: float,
    mask_token_id: int,
    vocab_size: int,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted inputs, labels): each unit (see `word_ids`) is picked with `probability`; labels are -100 elsewhere.

    A picked token becomes the mask token (`mask_replace_prob`), a random token (`random_replace_prob`) or stays as
    it is (the rest). A row with maskable tokens but no pick gets one (its first unit by draw order), so no batch is
    without a target: a batch of only -100 labels has a NaN loss.
    """
    draws = torch.rand(input_ids.shape, generator=generator)
    maskable = units >= 0
    first = maskable & torch.cat([torch.ones_like(units[:, :1], dtype=torch.bool), units[:, 1:] != units[:, :-1]], 1)
    picked = first & (draws < probability)
    lonely = maskable.any(1) & ~picked.any(1)  # rows that drew no unit: pick the one with the lowest draw
    if lonely.any():
        lowest = torch.where(first, draws, 2.0).argmin(1)
        picked[lonely, lowest[lonely]] = True
    index = units.clamp(min=0)
    chosen_units = torch.zeros(units.shape[0], units.shape[1] + 1).scatter_add_(1, index, picked.float()) > 0
    masked = chosen_units.gather(1, index) & maskable
    labels = torch.where(masked, input_ids, -100)
    how = torch.rand(input_ids.shape, generator=generator)
    inputs = input_ids.clone()
    inputs[masked & (how < mask_replace_prob)] = mask_token_id
    randomised = masked & (how >= mask_replace_prob) & (how < mask_replace_prob + random_replace_prob)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs[randomised] = random_tokens[randomised]
    return inputs, labels
