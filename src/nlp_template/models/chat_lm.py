"""`ChatLM`: supervised fine-tuning (SFT) of a causal language model on chat conversations.

The loss is the causal LM's, on the assistant's tokens only (the data module masks the rest, `data/chat.py`).
Validation and test also score the model's own replies: each conversation is cut where its last reply starts, the
model answers greedily, and `exact_match` is the share of replies equal to the reference token for token, up to and
including the end-of-turn token (a right answer that does not stop is wrong). Conversations that fill
`data.max_length` are not scored: cut there, their last reply may be missing. The score is a mean over the split's
scored conversations, summed across DDP ranks before dividing, like every other metric here.
`nlp-predict` writes `response`: the reply to a conversation that ends with the user's turn.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric

from nlp_template.data.chat import last_reply
from nlp_template.models.base import STAGES
from nlp_template.models.causal_lm import CausalLM
from nlp_template.models.generation import generate_ids


class ChatLM(CausalLM):
    """A causal language model trained on conversations, scored on its replies.

    Args:
        exact_match: score greedy replies at validation and test (one generation per conversation).
        **kwargs: the arguments of `CausalLM` (backbone, config, optimizer, peft, ...).
    """

    prediction_key = "response"

    def __init__(self, exact_match: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exact_match = exact_match
        self.matches = torch.nn.ModuleDict({stage: MeanMetric() for stage in STAGES})

    def evaluate(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        """The token-weighted loss and, with `exact_match`, whether each last reply is reproduced exactly."""
        super().evaluate(batch, stage)
        if not self.exact_match:
            return
        eos = self.network.config.eos_token_id
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for ids, labels, length in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), lengths, strict=True):
            if length >= self.hparams.block_size:
                continue  # cut by data.max_length: its last reply may be missing (an earlier one would be scored)
            reply = last_reply(labels)
            target = ids[reply.start : reply.stop]
            if eos in target:  # the reply ends at its end-of-turn token; what the template adds after is not scored
                target = target[: target.index(eos) + 1]
            answer = generate_ids(self.network, ids[: reply.start], len(target), self.hparams.pad_token_id)
            self.matches[stage].update(float(answer == target))
        self.log(f"{stage}/exact_match", self.matches[stage], on_step=False, on_epoch=True, prog_bar=stage == "val")
