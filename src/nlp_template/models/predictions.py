"""Predictions of a trained model on raw texts, one function per task, each yielding one JSON-ready dict per input.

- classification (`TextClassifier`, `RNNClassifier`): the label and every label's probability;
- token classification (`TokenClassifier`): entities with character offsets into the input text (words are the
  whitespace-separated pieces of the text; each word's tag is the prediction on its first word piece);
- causal LM (`CausalLM`): a continuation of the text as prompt (greedy, or sampled with a seed).

Inputs longer than the model's `max_length` are truncated and flagged `"truncated": true`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from nlp_template.metrics.entities import entity_spans


def batched(records: list[dict], size: int) -> Iterator[list[dict]]:
    """Consecutive chunks of `size` records."""
    for start in range(0, len(records), size):
        yield records[start : start + size]


@torch.no_grad()
def classify(
    model: Any, tokenizer: PreTrainedTokenizerBase, batches: Iterable[list[dict]], max_length: int
) -> Iterator[dict]:
    """Label and probabilities per record (`text`, optionally `text_pair`)."""
    names = [model.hparams.id2label[index] for index in range(len(model.hparams.id2label))]
    for chunk in batches:
        pairs = [record["text_pair"] for record in chunk] if "text_pair" in chunk[0] else None
        encoded = tokenizer([record["text"] for record in chunk], pairs, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")  # fmt: skip
        inputs = {
            key: value for key, value in encoded.items() if key in ("input_ids", "attention_mask", "token_type_ids")
        }
        probabilities = model(**inputs).logits.float().softmax(dim=-1).tolist()
        for row, (record, probs) in enumerate(zip(chunk, probabilities, strict=True)):
            best = max(range(len(names)), key=probs.__getitem__)
            yield {**record, "label": names[best], "probabilities": dict(zip(names, probs, strict=True)),
                   **_truncated(encoded, row)}  # fmt: skip


@torch.no_grad()
def tag_entities(
    model: Any, tokenizer: PreTrainedTokenizerBase, batches: Iterable[list[dict]], max_length: int
) -> Iterator[dict]:
    """Entities (type, text, start, end character offsets) and the tag of every word, per record."""
    for chunk in batches:
        words = [[(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", record["text"])] for record in chunk]
        encoded = tokenizer([[word for word, _, _ in row] for row in words], is_split_into_words=True, truncation=True,
                            max_length=max_length, padding=True, return_tensors="pt")  # fmt: skip
        predicted = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.argmax(-1)
        for row, record in enumerate(chunk):
            tags = ["O"] * len(words[row])  # words cut off by truncation stay O (and the record says truncated)
            seen = set()
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None and word not in seen:
                    seen.add(word)
                    tags[word] = model.hparams.id2label[int(predicted[row, position])]
            entities = [
                {"type": kind, "text": record["text"][words[row][start][1] : words[row][end - 1][2]],
                 "start": words[row][start][1], "end": words[row][end - 1][2]}
                for kind, start, end in sorted(entity_spans(tags), key=lambda span: span[1])
            ]  # fmt: skip
            truncated = {"truncated": True} if len(seen) < len(words[row]) else {}
            yield {**record, "entities": entities, "tags": tags, **truncated}


def continue_texts(
    model: Any, tokenizer: PreTrainedTokenizerBase, records: Iterable[dict], **settings: Any
) -> Iterator[dict]:
    """A continuation of each record's text (see `generate` for the settings)."""
    for record in records:
        prompt = tokenizer(record["text"], add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]
        continuation, truncated = generate(model.network, tokenizer, prompt, **settings)
        yield {**record, "continuation": continuation, **({"truncated": True} if truncated else {})}


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


def _truncated(encoded: Any, row: int) -> dict:
    return {"truncated": True} if encoded.encodings[row].overflowing else {}
