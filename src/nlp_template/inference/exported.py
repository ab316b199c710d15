"""An export directory back to a task that predicts: the task module rebuilt around the exported network.

`nlp-export` writes `task_config.pt` into every hf, onnx and torchscript export: the checkpoint's run config and
the task module's hyperparameters, without weights or training state. `load_export(dir)` rebuilds the task module
from it and swaps its network for the exported one:
the Hugging Face model directory, or the graph run by onnxruntime / TorchScript (`GraphNetwork`). The task's own
encoding, batching and decoding (`predict_records`) then run unchanged, so an export answers with `nlp-predict`'s
JSON for every task, and nothing here asks which task it is.

A task that predicts by generating (`TaskModule.predicts_from_graph = False`) needs the network's `generate`, which
a graph of one forward pass does not have: its graph exports are refused in one line (its hf export serves).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import OmegaConf

from nlp_template.inference.checkpoints import TrainedRun, task_class
from nlp_template.inference.exporters import load_runner
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.resume import read_checkpoint
from nlp_template.utils.run import RUN_CONFIG_KEY

TASK_FILE = "task_config.pt"
REPORT = "export_report.json"  # written last by nlp-export: its presence marks a finished export
GRAPH_FORMATS = ("onnx", "torchscript", "executorch")  # one graph file each, named by the report's `file`
# Settings of training that the exported network no longer has: adapters are merged into its weights, and an export
# is never compiled or checkpointed.
EXPORTED_SETTINGS = {"peft": None, "compile": False, "gradient_checkpointing": False}


def write_task_config(ckpt_path: Path, output: Path) -> None:
    """Save the checkpoint's run config and task hyperparameters (no weights) as `output/task_config.pt`."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = dict(checkpoint["hyper_parameters"])
    hparams.update({key: value for key, value in EXPORTED_SETTINGS.items() if key in hparams})
    torch.save({RUN_CONFIG_KEY: checkpoint[RUN_CONFIG_KEY], "hyper_parameters": hparams}, output / TASK_FILE)


class GraphNetwork(torch.nn.Module):
    """An exported graph in a network's place: named tensors in, an output with the graph's named outputs.

    Args:
        run: the loaded graph: a batch of named tensors -> its outputs (`exporters.load_runner`).
        inputs, outputs: the graph's input and output names (`export_info.json`).
        config: the Hugging Face config of the network it was exported from (length checks read it), if any.
    """

    def __init__(self, run: Callable[[dict[str, torch.Tensor]], list[Any]], inputs: list[str], outputs: list[str],
                 config: Any = None) -> None:  # fmt: skip
        super().__init__()
        self.run = run
        self.input_names, self.output_names, self.config = list(inputs), list(outputs), config

    @classmethod
    def load(cls, path: Path, inputs: list[str], outputs: list[str], config: Any = None,
             threads: int | None = None) -> GraphNetwork:  # fmt: skip
        """The graph in `path` (`.onnx`, `.pt`, `.pte`), run with `threads` CPU threads (None: the runtime's)."""
        return cls(load_runner(path, list(inputs), threads), inputs, outputs, config)

    def forward(self, **batch: torch.Tensor) -> SimpleNamespace:
        """The graph's outputs as attributes (`.logits`, ...), as torch tensors on the CPU; `loss` is None.

        Labels in the batch are ignored: a graph computes no loss, so evaluating with it gives every metric but the
        loss (`TaskModule.log_loss`).
        """
        outputs = self.run({name: batch[name].cpu().contiguous() for name in self.input_names})
        named = zip(self.output_names, outputs, strict=True)
        return SimpleNamespace(loss=None, **{name: torch.from_numpy(output) for name, output in named})


class ExportedRun(TrainedRun):
    """A `TrainedRun` whose model is an export: `ckpt_path` is the export's `task_config.pt`."""

    def __init__(self, directory: Path, saved: dict[str, Any], report: dict[str, Any], threads: int | None) -> None:
        super().__init__(directory / TASK_FILE, OmegaConf.create(saved[RUN_CONFIG_KEY]))
        self.directory, self.report, self.format, self.threads = directory, report, report["format"], threads
        self.hparams = {**saved["hyper_parameters"], "tokenizer_path": str(directory)}  # the export's tokenizer

    @cached_property
    def model(self) -> Any:
        """The task module with the exported network, in eval mode."""
        model_class = task_class(self.config, self.directory)
        if self.format in GRAPH_FORMATS and not model_class.predicts_from_graph:
            raise UserInputError(f"{model_class.__name__} predicts by generating token by token, which the"
                                 f" {self.format} export (one forward pass) cannot do; serve its checkpoint or a"
                                 " format=hf export")  # fmt: skip
        # Built with freshly initialised weights, then the network is replaced: simple and exact (the metric states
        # and the device stay real); it costs one initialisation of the architecture at start-up.
        model = model_class(**self.hparams)
        config = getattr(model.network, "config", None)
        if self.format == "hf":
            model.network = type(model.network).from_pretrained(str(self.directory))
        else:
            info = self.export_info
            model.network = GraphNetwork.load(self.directory / self.report["file"], info["inputs"], info["outputs"],
                                              config, self.threads)  # fmt: skip
        return model.eval()

    @cached_property
    def export_info(self) -> dict[str, Any]:
        """What `nlp-export` wrote beside a graph (`export_info.json`: inputs, outputs, labels, `max_length`, ...)."""
        path = self.directory / "export_info.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def data_config(self, overrides: Any = None) -> Any:
        """The run's data config; a `max_length` beyond what the exported graph was built for is refused."""
        data_cfg = super().data_config(overrides)
        bound = self.export_info.get("max_length") if self.format == "executorch" else None
        if bound and isinstance(data_cfg.get("max_length"), int) and data_cfg.max_length > bound:
            raise UserInputError(f"data.max_length={data_cfg.max_length} is longer than the {bound} tokens this"
                                 " ExecuTorch program takes; keep the export's max_length or export again")  # fmt: skip
        return data_cfg


def load_export(directory: str | Path, threads: int | None = None) -> ExportedRun:
    """The export in `directory` (an `nlp-export` output) as a run whose model predicts with the exported network."""
    directory = Path(directory).expanduser()
    path = directory / REPORT
    if not path.is_file():
        raise UserInputError(f"{directory} is not an nlp-export directory (it has no {REPORT}); give the output=..."
                             " of nlp-export")  # fmt: skip
    try:
        report = json.loads(path.read_text())
        export_format = report.get("format")
    except (ValueError, AttributeError) as error:  # not JSON (UnicodeDecodeError is a ValueError), or not an object
        raise UserInputError(f"{path} is not an export report nlp-export wrote ({type(error).__name__}); export the"
                             " checkpoint again") from error  # fmt: skip
    if export_format not in ("hf", "peft", *GRAPH_FORMATS):
        raise UserInputError(f"{path} names the format {export_format!r}, which nlp-serve cannot load; export the"
                             " checkpoint again with this version")  # fmt: skip
    if export_format == "peft":
        raise UserInputError(f"{directory} holds LoRA adapters without their base model; serve a format=hf export"
                             " (adapters merged) or the checkpoint")  # fmt: skip
    if not (directory / TASK_FILE).is_file():
        raise UserInputError(f"{directory} has no {TASK_FILE} (exported by an older nlp-export): export the"
                             " checkpoint again")  # fmt: skip
    saved = torch.load(directory / TASK_FILE, map_location="cpu", weights_only=True)
    return ExportedRun(directory, saved, report, threads)
