"""Export entry point: `nlp-export ckpt_path=PATH format=hf|onnx|torchscript [output=DIR]` (or `python -m ...`).

- `hf`: a Hugging Face model directory: `config.json` (with `id2label`/`label2id` for classifiers and taggers),
  `model.safetensors` and the run's tokenizer. It loads offline with `AutoModelFor...from_pretrained(dir)` and
  `transformers.pipeline(task, model=dir)`, and serves as `model.backbone` of a new training run. The recurrent
  classifier is not a Hugging Face model: `hf` refuses it in one line.
- `onnx` (`model.onnx`) and `torchscript` (`model.pt`): the network as a static graph with dynamic batch and
  sequence axes (`exporters.py`), the tokenizer beside it and `export_info.json` (inputs, label names). Each is
  verified on a held-out batch of the run's data against PyTorch (maximum absolute difference; the export fails
  above `tolerance`) and timed against PyTorch for batch 1 and 32 on the CPU (`export_check.py`).

Every export writes `export_report.json` (sizes, difference, latency) last; a failed export leaves no directory.
An existing non-empty output directory is kept unless `overwrite=true`, which replaces only an earlier export.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from nlp_template import export_check as check
from nlp_template import exporters
from nlp_template.data.tokenizer import load_pretrained_tokenizer
from nlp_template.eval import checkpoint_datamodule, load_task_module, tokenizer_location
from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import UserInputError, exit_on_user_error, one_line_config_errors
from nlp_template.utils.run import apply_extras

log = logging.getLogger(__name__)
register_resolvers()
FORMATS = ("hf", "onnx", "torchscript")
REPORT = "export_report.json"  # written last: its presence marks a finished export
# What `transformers.pipeline` calls each task.
PIPELINE_TASKS = {"TextClassifier": "text-classification", "TokenClassifier": "token-classification",
                  "CausalLM": "text-generation"}  # fmt: skip


def export(cfg: DictConfig) -> Path:
    """Write the checkpoint's model in `cfg.format` to `cfg.output`, with its report; returns the directory."""
    if cfg.format not in FORMATS:
        raise UserInputError(f"unknown export format '{cfg.format}'; use one of {list(FORMATS)}")
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    run_cfg, model = load_task_module(ckpt_path)
    model.eval()
    if cfg.format == "hf" and not isinstance(model.network, PreTrainedModel):
        raise UserInputError(f"{type(model).__name__} is not a Hugging Face model: format=hf cannot export it; use"
                             " format=onnx or format=torchscript")  # fmt: skip
    output = _prepare_output(Path(cfg.output), cfg.overwrite)
    try:
        report = _write(cfg, run_cfg, model, ckpt_path, output)
    except BaseException:  # no half-written export left behind (a later run would take it for a finished one)
        shutil.rmtree(output, ignore_errors=True)
        raise
    log.info("Exported to %s\n%s", output, check.format_report(report))
    return output


def _write(cfg: DictConfig, run_cfg: DictConfig, model: Any, ckpt_path: Path, output: Path) -> dict:
    """The tokenizer, the model in `cfg.format` and `export_report.json`; returns the report."""
    tokenizer = load_pretrained_tokenizer(tokenizer_location(model.hparams.tokenizer_path, ckpt_path))
    tokenizer.save_pretrained(str(output))
    report = {"format": cfg.format, "task": type(model).__name__, "ckpt_path": str(ckpt_path.resolve()),
              "weights_mb": exporters.parameter_bytes(model.network) / 1e6}  # fmt: skip
    if cfg.format == "hf":
        model.network.save_pretrained(str(output), safe_serialization=True)
        report.update(export_mb=check.size_mb([output]), pipeline_task=PIPELINE_TASKS.get(report["task"]))
    else:
        # Graphs in fp32, whatever the network was restored in (a bf16/fp16 backbone config restores in that dtype):
        # CPU runtimes want fp32, and the 1e-4 check is an fp32 tolerance.
        model.network.float()
        report.update(_export_graph(cfg, run_cfg, model, ckpt_path, output))
    (output / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _export_graph(cfg: DictConfig, run_cfg: DictConfig, model: Any, ckpt_path: Path, output: Path) -> dict:
    """ONNX or TorchScript: write the graph, verify it on held-out data, time it; returns the report's facts."""
    batch = check.held_out_batch(checkpoint_datamodule(run_cfg, model, ckpt_path), cfg.verify_examples)
    names = exporters.graph_inputs(batch, model.network)
    module = exporters.LogitsModule(model.network, names)
    example = exporters.example_inputs(batch, names)
    if cfg.format == "onnx":
        path = exporters.write_onnx(module, example, output, cfg.onnx_exporter)
    else:
        path = exporters.write_torchscript(module, example, output)
    exported = exporters.load_runner(path, names)

    def pytorch(inputs: dict) -> torch.Tensor:
        with torch.inference_mode():
            return module(*(inputs[name] for name in names))

    shape = "x".join(map(str, batch["input_ids"].shape))
    # Above the tolerance this fails, and `export` removes the directory: a model that gives other answers must not
    # be picked up by mistake.
    difference = check.compare(pytorch(batch), exported(batch), cfg.tolerance, f"the {cfg.format} export")
    files = [file for file in output.iterdir() if file.name.startswith("model.")]  # model.onnx(.data), model.pt
    info = {"inputs": names, "output": "logits", "id2label": model.hparams.get("id2label"),
            "max_length": run_cfg.data.get("max_length") or run_cfg.data.get("block_size")}  # fmt: skip
    (output / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
    facts = {"file": path.name, "export_mb": check.size_mb(files),
             "max_abs_diff": difference, "tolerance": cfg.tolerance, "verified_on": f"held-out batch {shape}",
             "threads": torch.get_num_threads()}  # fmt: skip
    if cfg.latency.repeats > 0:
        facts["latency"] = check.latency_table(pytorch, exported, batch, list(cfg.latency.batch_sizes),
                                               cfg.latency.repeats)  # fmt: skip
    return facts


def _prepare_output(output: Path, overwrite: bool) -> Path:
    """An empty directory to export into; `overwrite` replaces an earlier export, never any other directory."""
    if output.is_file() or (output.is_dir() and any(output.iterdir())):
        if not overwrite:
            raise UserInputError(f"output exists: {output}; choose another output=... or set overwrite=true")
        if not (output / REPORT).is_file():  # overwrite=true on `.` or a run directory must not wipe it
            raise UserInputError(f"output {output} is not an earlier export (it has no {REPORT}); overwrite=true only"
                                 " replaces exports: choose a new or empty directory")  # fmt: skip
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    return output


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    apply_extras(cfg)
    print(f"Exported to {export(cfg)}")


if __name__ == "__main__":
    main()
