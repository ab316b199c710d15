"""Bad-input catalogue table: sequence-to-sequence data (aligned text files, source/target rows) and settings.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

import json

from catalogue import Case

TRANSLATION = ["experiment=translation_tiny", "trainer.max_epochs=1", "extras.print_config=false"]
PAIRS = [f"sentence {i}" for i in range(20)], [f"Satz {i}" for i in range(20)]

FILES = {
    "s2s_short.en": "".join(f"{line}\n" for line in PAIRS[0]),
    "s2s_short.de": "".join(f"{line}\n" for line in PAIRS[1][:-1]),  # one line short
    "s2s_gap.en": "".join(f"{line}\n" for line in PAIRS[0]),
    "s2s_gap.de": "".join(("\n" if i == 6 else f"{line}\n") for i, line in enumerate(PAIRS[1])),  # line 7 blank
    "s2s_holes.jsonl": "".join(
        json.dumps({"source": s, "target": None if i in (2, 11) else t}) + "\n"
        for i, (s, t) in enumerate(zip(*PAIRS, strict=True))
    ),  # fmt: skip
    "s2s_layout.jsonl": "".join(
        json.dumps({"translation": {"en": s, "de": t}}) + "\n" for s, t in zip(*PAIRS, strict=True)
    ),  # fmt: skip
}

# fmt: off
CASES = [
    Case("seq2seq-files-not-aligned", "train",
         [*TRANSLATION, "data=parallel_files", "data.source.train={tmp}/s2s_short"],
         r"^train files are not aligned: .*s2s_short.en has 20 lines, .*s2s_short.de has 19; each line must be the"
         r" translation of the same line of the other file$"),
    Case("seq2seq-line-blank-on-one-side", "train",
         [*TRANSLATION, "data=parallel_files", "data.source.train={tmp}/s2s_gap"],
         r"^train files .*s2s_gap.en and .*s2s_gap.de: line\(s\) 7 are blank on one side only; fill in or remove"
         r" the line on both sides$"),
    Case("seq2seq-missing-target", "train",
         [*TRANSLATION, "data=translation_files", "data.source.train={tmp}/s2s_holes.jsonl"],
         r"^train split has 2 row\(s\) with a missing source or target at row\(s\) 3, 12 \(1 = first row\); fill them"
         r" in or leave them out with data.drop_missing_labels=true$"),
    Case("seq2seq-translation-language-missing", "train",
         [*TRANSLATION, "data=translation_files", "data.source.train={tmp}/s2s_layout.jsonl",
          "data.translation_column=translation", "data.source_lang=en", "data.target_lang=fr"],
         r"^train row 1: the translation has no 'fr' \(it has \['de', 'en'\]\); set data.source_lang and"
         r" data.target_lang$"),
    Case("seq2seq-unknown-metric", "train", [*TRANSLATION, "model.metric=chrf"],
         r"^model.metric=chrf is not one of bleu, rougeL$"),
]
# fmt: on
