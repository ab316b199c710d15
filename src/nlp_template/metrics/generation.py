"""Corpus metrics of generated text whose states are sums, so they are exact under DDP: BLEU and ROUGE.

- BLEU is torchmetrics' `SacreBLEUScore` (13a tokenization, the sacreBLEU reference implementation's numbers without
  the package): its states are n-gram match and length counts, summed over ranks.
- ROUGE is `SummedRouge` below. torchmetrics' `ROUGEScore` keeps a list with one tensor per sentence and gathers it
  element by element across ranks, one collective per sentence; ranks holding different numbers of sentences then
  issue different numbers of collectives (a hang, or scores paired with the wrong keys). Here each batch adds its
  sentences' F-measures to a sum and its sentence count to a count: two tensors, one all-reduce. Its normalizer
  keeps letters of every script (`rouge-score` and torchmetrics keep `[a-z0-9]` only, dropping umlauts and all
  non-Latin text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torchmetrics import Metric

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


def normalize(text: str) -> str:
    """Lower-cased words of any script (Python's Unicode word characters), everything else a space."""
    return re.sub(r"[^\w]+", " ", text.lower())


class SummedRouge(Metric):
    """Mean ROUGE-1/2/L F-measure over sentences (0-1), from summed states.

    `update(preds, target)` takes generated texts and, per text, a list with its reference (the `SacreBLEUScore`
    argument layout; the first reference is used).
    """

    full_state_update = False

    def __init__(self, keys: Sequence[str] = ROUGE_KEYS) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.add_state("total", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str], target: Sequence[Sequence[str]]) -> None:
        """Add each generated text's F-measures against its reference."""
        from torchmetrics.functional.text import rouge_score

        for prediction, references in zip(preds, target, strict=True):
            scores = rouge_score(prediction, references[0], rouge_keys=self.keys, normalizer=normalize)
            self.total += torch.stack([scores[f"{key}_fmeasure"] for key in self.keys]).to(self.total)
            self.count += 1

    def compute(self) -> dict[str, torch.Tensor]:
        """`{key}_fmeasure` per ROUGE key: the mean over every sentence seen (on every rank)."""
        means = self.total / self.count.clamp(min=1)
        return {f"{key}_fmeasure": means[index] for index, key in enumerate(self.keys)}


def text_metric(name: str) -> Metric:
    """The corpus metric `bleu` or `rougeL` (which also reports ROUGE-1 and ROUGE-2)."""
    from torchmetrics.text import SacreBLEUScore

    return SacreBLEUScore(tokenize="13a") if name == "bleu" else SummedRouge()
