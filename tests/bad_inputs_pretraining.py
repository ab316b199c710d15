"""Bad-input catalogue table: masked-LM pretraining and multiple-choice data and settings.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import json

from catalogue import Case

MLM = ["experiment=mlm_tiny", "trainer.max_epochs=1", "extras.print_config=false"]
CHOICES = ["experiment=choices_tiny", "trainer.max_epochs=1", "extras.print_config=false", "data=choice_files"]


def _choices(rows: int = 12, count=lambda i: 3, label=lambda i: i % 3, ending=lambda i, j: f"ending {j}") -> str:
    """JSONL rows with a context, a question, `count(i)` endings and `label(i)`."""
    return "".join(
        json.dumps({"context": f"context {i}", "question": "which?", "endings": [ending(i, j) for j in range(count(i))],
                    "label": label(i)}) + "\n"
        for i in range(rows)
    )  # fmt: skip


FILES = {
    "mc_counts.jsonl": _choices(count=lambda i: 2 if i in (4, 9) else 3, label=lambda i: 0),
    "mc_range.jsonl": _choices(label=lambda i: 3 if i == 5 else i % 3),
    "mc_empty.jsonl": _choices(ending=lambda i, j: "  " if (i, j) == (7, 1) else f"ending {j}"),
    "mlm_corpus.txt": "".join(f"line {i} of the corpus\n" for i in range(50)),
}

# fmt: off
CASES = [
    Case("mc-choice-count-differs", "train", [*CHOICES, "data.source.train={tmp}/mc_counts.jsonl"],
         r"^train split: rows 5, 10 have 2 choices where the others have 3; every row needs the same number of"
         r" endings$"),
    Case("mc-label-out-of-range", "train", [*CHOICES, "data.source.train={tmp}/mc_range.jsonl"],
         r"^train split: rows 6 have a label outside 0..2 \(e.g. 3\); data.label_column must hold the index of the"
         r" right ending$"),
    Case("mc-empty-ending", "train", [*CHOICES, "data.source.train={tmp}/mc_empty.jsonl"],
         r"^train split: rows 8 have an empty ending; fill them in or remove those rows$"),
    Case("mlm-tokenizer-without-mask", "train",
         [*MLM, "data=mlm_text_files", "data.source.train={tmp}/mlm_corpus.txt", "data.tokenizer_type=bpe",
          "data.vocab_size=300"],
         r"^masked language modelling needs a tokenizer with mask_token, cls_token, sep_token; this one has none\."
         r" Train a WordPiece one"),
    Case("mlm-probability-out-of-range", "train", [*MLM, "data.mlm_probability=15"],
         r"^data.mlm_probability must be between 0 and 1 \(e.g. 0.15\), got 15"),
]
# fmt: on
