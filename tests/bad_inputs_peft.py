"""Bad-input catalogue table: parameter-efficient fine-tuning (model.peft) settings and exports.

Run with `pytest tests/test_bad_input.py -k "<id>"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

from catalogue import SAMPLE, Case

FILES: dict = {}

# fmt: off
CASES = [
    Case("peft-target-modules-match-nothing", "train",
         [*SAMPLE, "model.peft=lora", "model.peft_settings.target_modules=[attention]"],
         r"^model.peft_settings.target_modules=\['attention'\] matches no layer peft can adapt; the linear layers of"
         r" this model are named \['classifier', 'dense', 'key', 'query', 'value'\]$"),
    Case("peft-unknown-method", "train", [*SAMPLE, "model.peft=lorra"],
         r"^model.peft=lorra is not a peft method; use one of \[.*'lora'.*\] \(e.g. lora\)$"),
    Case("peft-trainable-only-checkpoints-of-a-model-from-config", "train",
         [*SAMPLE, "model.peft=lora", "checkpoint.trainable_only=true"],
         r"^checkpoint.trainable_only=true needs a pretrained model.backbone to reload the frozen weights from; this"
         r" model is built from config with random weights$"),
    Case("peft-adapter-export-of-a-full-run", "export", ["ckpt_path={ckpt}", "format=peft"],
         r"^format=peft writes the adapters of a run trained with model.peft; this run trained every weight: use"
         r" format=hf$"),
]
# fmt: on
