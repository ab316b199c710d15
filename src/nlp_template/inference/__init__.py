"""From a trained checkpoint to predictions and deployable files.

`checkpoints.load_run` (a checkpoint back to its run: config, task module, data module, tokenizer), `inputs` (the
records `nlp-predict` reads), `exporting` (hf / onnx / torchscript, shared by `nlp-export` and `export_best`),
`exporters` (the static graphs) and `export_check` (proof that an export answers like the checkpoint).
"""
