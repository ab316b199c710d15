"""Bad-input catalogue table: `nlp-serve` refusing to start (docs/reliability.md, "Serving").

What a running server answers to bad requests (4xx JSON, one line, still serving) is tested in `tests/test_serve.py`.
Run with `pytest tests/test_bad_input.py -k "serve-"`; the format is described in `tests/catalogue.py`.
"""

from __future__ import annotations

from catalogue import Case

FILES: dict = {
    "adapters/export_report.json": '{"format": "peft"}',
    "old_onnx/export_report.json": '{"format": "onnx"}',
    "old_onnx/model.onnx": b"\x08\x07",
}

# fmt: off
CASES = [
    Case("serve-nothing-to-serve", "serve", [],
         r"^give what to serve: ckpt_path=\.\.\. \(an nlp-train checkpoint\) or export_dir=\.\.\. \(an nlp-export"
         r" directory: hf, onnx, torchscript or executorch\), not both$"),
    Case("serve-port-out-of-range", "serve", ["ckpt_path={ckpt}", "port=70000"], r"^port must be at most 65535"),
    Case("serve-checkpoint-missing", "serve", ["ckpt_path={tmp}/nowhere.ckpt"], r"^checkpoint not found: .*nowhere"),
    Case("serve-not-an-export", "serve", ["export_dir={tmp}/broken_model"],
         r"broken_model is not an nlp-export directory \(it has no export_report.json\)"),
    Case("serve-export-report-unreadable", "serve", ["export_dir={export}"],
         r"export_report.json is not an export report nlp-export wrote .*; export the checkpoint again$"),
    Case("serve-adapter-export", "serve", ["export_dir={tmp}/adapters"],
         r"holds LoRA adapters without their base model; serve a format=hf export \(adapters merged\)"),
    Case("serve-export-without-task-config", "serve", ["export_dir={tmp}/old_onnx"],
         r"has no task_config.pt \(exported by an older nlp-export\): export the checkpoint again$"),
]
# fmt: on
