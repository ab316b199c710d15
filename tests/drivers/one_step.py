"""One optimizer step (SGD, lr 1) of a small causal LM on fixed micro-batches; writes the updated weights.

`python one_step.py MICRO_BATCHES OUT [ranks]`: MICRO_BATCHES lists, per rank, the sizes of its micro-batches taken in
order from 32 fixed sequences of different lengths (e.g. `[[32]]`, `[[4, 12, 6, 10]]`, `[[10], [22]]`); with more
than one rank, run it under `torchrun --nproc-per-node <ranks>`. With SGD at lr 1 the weights move by exactly minus
the gradient, so equal weights after the step mean equal gradients (tests/test_exact_step.py).
"""

from __future__ import annotations

import functools
import json
import os
import sys

import lightning as L
import torch

from nlp_template.models.causal_lm import CausalLM

VOCAB = 60


def sequences() -> list[torch.Tensor]:
    """32 token sequences of 3 to 40 tokens, the same in every process."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 41, (32,), generator=generator)
    return [torch.randint(1, VOCAB, (int(n),), generator=generator) for n in lengths]


def collate(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, and labels with padding as -100."""
    width = max(len(row) for row in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def micro_batches(plan: list[list[int]], rank: int) -> list[dict[str, torch.Tensor]]:
    """Rank `rank`'s micro-batches: consecutive slices of the 32 sequences, ranks one after the other."""
    rows, start = sequences(), sum(sum(sizes) for sizes in plan[:rank])
    batches = []
    for size in plan[rank]:
        batches.append(collate(rows[start : start + size]))
        start += size
    return batches


def model() -> CausalLM:
    """The same small Llama in every process (seeded), trained by plain SGD."""
    torch.manual_seed(0)
    config = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64}  # fmt: skip
    return CausalLM(config=config, vocab_size=VOCAB, pad_token_id=0, eos_token_id=1,
                    optimizer=functools.partial(torch.optim.SGD, lr=1.0))  # fmt: skip


def step(plan: list[list[int]]) -> dict[str, torch.Tensor]:
    """The weights after one optimizer step over this process's micro-batches."""
    ranks = len(plan)
    rank = int(os.environ.get("RANK", 0))
    strategy = L.pytorch.strategies.DDPStrategy(process_group_backend="gloo") if ranks > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=ranks, strategy=strategy, max_steps=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accumulate_grad_batches=len(plan[rank]), use_distributed_sampler=False)  # fmt: skip
    module = model()
    loader = torch.utils.data.DataLoader(micro_batches(plan, rank), batch_size=None)  # the batches as they are
    trainer.fit(module, train_dataloaders=loader)
    return {name: value.detach().clone() for name, value in module.network.state_dict().items()}


if __name__ == "__main__":
    plan, out = json.loads(sys.argv[1]), sys.argv[2]
    weights = step(plan)
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save(weights, out)
