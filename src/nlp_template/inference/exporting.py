"""Exporting a checkpoint (`nlp-export`, `nlp-train export_best=...`): the library behind both.

- `hf`: a Hugging Face model directory: `config.json` (with `id2label`/`label2id` where the task has labels),
  `model.safetensors` and the run's tokenizer. It loads offline with `AutoModelFor...from_pretrained(dir)` and
  `transformers.pipeline(task, model=dir)` (the task's `pipeline_task`), and serves as `model.backbone` of a new
  training run. A network that is not a Hugging Face model (the recurrent classifier) is refused in one line.
- `onnx` (`model.onnx`) and `torchscript` (`model.pt`): the task's `GraphModule` as a static graph with dynamic batch
  and sequence axes (`exporters.py`), the tokenizer beside it and `export_info.json` (inputs, outputs, the task's
  `export_info()`, the data module's `inference_settings()`). Each is
  verified on a held-out batch of the run's data against PyTorch (maximum absolute difference; the export fails
  above `tolerance`) and timed against PyTorch for batch 1 and 32 on the CPU (`export_check.py`).
- `executorch` (`model.pte`): the same graph lowered for ExecuTorch's runtime (phones, edge devices) with the XNNPACK
  CPU delegate; its dynamic axes are bounded (`executorch.max_batch_size`, the run's `max_length`; one row for a graph
  with a loop, such as the recurrent classifier's time steps). Verified and timed the same way, with ExecuTorch's
  Python runtime, which feeds bigger batches in chunks.
- `peft` (runs trained with `model.peft`): the adapter directory (`adapter_config.json`, adapter weights, the
  tokenizer) that `peft.PeftModel.from_pretrained(base_model, dir)` loads. The other formats merge the adapters into
  the weights first (`merge_and_unload`): the same outputs from a plain network.

Every export but `peft` also holds `task_config.pt` (the run config and task settings, no weights): `nlp-serve
export_dir=...` rebuilds the task around the exported network from it (`exported.py`).
Every export writes `export_report.json` (sizes, difference, latency) last; a failed export leaves no directory.
An existing non-empty output directory is kept unless `overwrite=true`, which replaces only an earlier export.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedModel

from nlp_template.inference import export_check as check
from nlp_template.inference import exporters, quantize
from nlp_template.inference.checkpoints import TrainedRun, load_run
from nlp_template.inference.exported import REPORT, GraphNetwork, write_task_config
from nlp_template.models.adapters import is_peft
from nlp_template.utils.config import CONFIG_DIR
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
FORMATS = ("hf", "onnx", "torchscript", "executorch", "peft")


def export_config(**overrides: Any) -> DictConfig:
    """The settings of `conf/export.yaml` (without its Hydra defaults) with `overrides`: export from Python."""
    settings = OmegaConf.load(CONFIG_DIR / "export.yaml")
    settings.pop("defaults", None)
    return OmegaConf.merge(settings, overrides)


def export(cfg: DictConfig) -> Path:
    """Write the checkpoint's model in `cfg.format` to `cfg.output`, with its report; returns the directory."""
    if cfg.format not in FORMATS:
        raise UserInputError(f"unknown export format '{cfg.format}'; use one of {list(FORMATS)}")
    if cfg.get("quantize") not in (None, "int8"):
        raise UserInputError(f"unknown quantize={cfg.quantize}; use quantize=int8 (with format=onnx) or leave it null")
    if cfg.get("quantize") and cfg.format != "onnx":
        raise UserInputError(f"quantize=int8 quantizes ONNX graphs (onnxruntime); use format=onnx, not {cfg.format}")
    run = load_run(cfg.ckpt_path)
    trained_adapters = is_peft(run.model.network)
    if cfg.format == "peft" and not trained_adapters:
        raise UserInputError("format=peft writes the adapters of a run trained with model.peft; this run trained every"
                             " weight: use format=hf")  # fmt: skip
    if cfg.format != "peft":
        run.model.merge_adapters()  # LoRA folded into the weights: a plain network with the same outputs
    if cfg.format == "hf" and not isinstance(run.model.network, PreTrainedModel):
        raise UserInputError(f"{type(run.model).__name__} is not a Hugging Face model: format=hf cannot export it;"
                             " use format=onnx or format=torchscript")  # fmt: skip
    output = _prepare_output(Path(cfg.output), cfg.overwrite)
    try:
        report = _write(cfg, run, output)
    except BaseException:  # no half-written export left behind (a later run would take it for a finished one)
        shutil.rmtree(output, ignore_errors=True)
        raise
    log.info("Exported to %s\n%s", output, check.format_report(report))
    return output


def _write(cfg: DictConfig, run: TrainedRun, output: Path) -> dict:
    """The tokenizer, the model in `cfg.format` and `export_report.json`; returns the report."""
    model, datamodule = run.model, run.datamodule()  # one data module: its tokenizer, and the held-out batch
    datamodule.load_tokenizer().save_pretrained(str(output))
    # `task` only describes the export for people reading the report; nothing decides anything from it.
    report = {"format": cfg.format, "task": type(model).__name__, "ckpt_path": str(run.ckpt_path.resolve()),
              "weights_mb": exporters.parameter_bytes(model.network) / 1e6}  # fmt: skip
    if cfg.format != "peft":  # what `nlp-serve export_dir=...` rebuilds the task from (inference/exported.py)
        write_task_config(run.ckpt_path, output)
    if cfg.format in ("hf", "peft"):  # peft: adapter_config.json + adapter weights, for PeftModel.from_pretrained
        model.network.save_pretrained(str(output), safe_serialization=True)
        report.update(export_mb=check.size_mb([output]), pipeline_task=model.pipeline_task)
    else:
        # Graphs in fp32, whatever the network was restored in (a bf16/fp16 backbone config restores in that dtype):
        # CPU runtimes want fp32, and the 1e-4 check is an fp32 tolerance.
        model.network.float()
        report.update(_export_graph(cfg, model, datamodule, output, run.config))
    (output / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _export_graph(cfg: DictConfig, model: Any, datamodule: Any, output: Path, run_config: DictConfig) -> dict:
    """ONNX or TorchScript: write the graph, verify it on held-out data, time it; returns the report's facts.

    With `quantize=int8` the verified fp32 graph is quantized and replaced by the int8 one if the test metric holds.
    """
    batch = check.held_out_batch(datamodule, cfg.verify_examples)
    names = exporters.graph_inputs(batch, model.network)
    module = model.graph_module(names)
    example = exporters.example_inputs(batch, names)
    if cfg.format == "onnx":
        path = exporters.write_onnx(module, example, output, cfg.onnx_exporter)
    elif cfg.format == "executorch":
        settings = datamodule.inference_settings()
        longest = settings.get("max_length") or settings.get("block_size") or cfg.executorch.max_length
        sizes = {"batch": cfg.executorch.max_batch_size, "sequence": int(longest)}
        path, bound = exporters.write_executorch(module, example, output, sizes, cfg.executorch.max_other)
    else:
        path = exporters.write_torchscript(module, example, output)
    exported = exporters.load_runner(path, names)

    def pytorch(inputs: dict) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return module(*(inputs[name] for name in names))

    shape = "x".join(map(str, batch["input_ids"].shape))
    # Above the tolerance this fails, and `export` removes the directory: a model that gives other answers must not
    # be picked up by mistake.
    difference = check.compare(pytorch(batch), exported(batch), cfg.tolerance, f"the {cfg.format} export")
    quantized = {}
    if cfg.get("quantize"):
        quantized, exported = _quantize(cfg, model, datamodule, path, names, run_config, (pytorch, exported, batch))
        quantized["fp32_max_abs_diff"] = difference  # the fp32 graph verified within `tolerance` before quantizing
    files = [file for file in output.iterdir() if file.name.startswith("model.")]  # model.onnx(.data)/.pt/.pte
    info = {"inputs": names, "outputs": list(module.output_names), **model.export_info(),
            **datamodule.inference_settings()}  # fmt: skip
    if cfg.format == "executorch":  # the program refuses larger batches: its runner feeds bigger ones in chunks
        info["max_batch_size"] = bound
    (output / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
    facts = {"file": path.name, "export_mb": check.size_mb(files),
             "max_abs_diff": difference, "tolerance": cfg.tolerance, "verified_on": f"held-out batch {shape}",
             "threads": torch.get_num_threads()}  # fmt: skip
    if cfg.latency.repeats > 0:
        facts["latency"] = check.latency_table(pytorch, exported, batch, list(cfg.latency.batch_sizes),
                                               cfg.latency.repeats)  # fmt: skip
    return {**facts, **quantized}


def _quantize(cfg: DictConfig, model: Any, datamodule: Any, path: Path, names: list[str], run_config: DictConfig,
              reference: tuple) -> tuple[dict, Callable]:  # fmt: skip
    """Replace the fp32 `model.onnx` by its int8 quantization if the test metric holds (`quantize.py`).

    Returns the report's facts and the int8 graph's runner (timed next).
    """
    pytorch, fp32, batch = reference
    name, mode = quantize.guarded_metric(run_config, cfg.get("metric"), cfg.get("metric_mode"))
    int8_path = path.with_name("model.int8.onnx")
    nodes = quantize.quantize_int8(path, int8_path)
    config = getattr(model.network, "config", None)
    int8 = exporters.load_runner(int8_path, names)  # loaded once: evaluated, compared and timed
    networks = {precision: GraphNetwork(runner, names, list(model.graph_outputs), config)
                for precision, runner in (("fp32", fp32), ("int8", int8))}  # fmt: skip
    before, after = (quantize.test_metrics(model, datamodule, networks[key]) for key in ("fp32", "int8"))
    facts = quantize.metric_check(name, mode, before, after, cfg.max_metric_drop)
    difference = check.compare(pytorch(batch), int8(batch), math.inf, "the int8 export")  # the metric judges it
    facts.update(fp32_mb=check.size_mb([path]), int8_mb=check.size_mb([int8_path]), integer_nodes=nodes,
                 max_abs_diff=difference)  # fmt: skip
    if cfg.latency.repeats > 0:
        facts["fp32_latency"] = check.latency_table(pytorch, fp32, batch, list(cfg.latency.batch_sizes),
                                                    cfg.latency.repeats)  # fmt: skip
    int8_path.replace(path)  # the export's model.onnx is the int8 graph
    (path.parent / f"{path.name}.data").unlink(missing_ok=True)  # the fp32 weights' side file (models over 1.8 GB)
    log.info("int8: %s %.4f -> %.4f (drop %.4f <= %g), %.1f MB -> %.1f MB", name, facts["fp32"], facts["int8"],
             facts["drop"], cfg.max_metric_drop, facts["fp32_mb"], facts["int8_mb"])  # fmt: skip
    # Top-level `max_abs_diff` describes the file in the directory (int8); the verified fp32 graph's is kept beside.
    return {"quantize": "int8", "int8": facts, "max_abs_diff": difference}, int8


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
