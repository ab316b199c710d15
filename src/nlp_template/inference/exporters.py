"""Static-graph exports of a task's network: ONNX (onnxruntime), TorchScript (`torch.jit.load`), ExecuTorch (`.pte`).

Both take the task's `GraphModule` (`models/graph.py`): the network with named tensor inputs (`input_ids`,
`attention_mask`, and `token_type_ids` where the model was trained with them) and the outputs the task names
(`TaskModule.graph_outputs`, e.g. `logits`, or `start_logits` and `end_logits`). Every input axis stays dynamic
(`TaskModule.graph_axes`: batch and sequence, and the choices of multiple choice): the graph is captured on a padded
2 x 8 example and `export_check.py` verifies it on a held-out batch of another shape. The one exception: an
ExecuTorch program with a loop (the recurrent classifier's time steps) has a static batch of one row, captured on
the padded row (`write_executorch`).

ONNX uses `torch.export` (the exporter PyTorch recommends) and falls back to the TorchScript-based exporter for
what `torch.export` cannot capture yet, such as `pack_padded_sequence` in the recurrent classifier.
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nlp_template.models.graph import INPUT_NAMES, GraphModule, capturing_for
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.hub import first_line

log = logging.getLogger(__name__)
ONNX_EXPORTERS = ("auto", "dynamo", "torchscript")
# Where torch's layers and functions live (not its tracing machinery), for naming the operation an export fails in.
LIBRARY_CODE = ("nn", "functional.py", "_refs", "_decomp")
# Above this, ONNX weights go to a side file (`model.onnx.data`): a single protobuf file cannot exceed 2 GB.
EXTERNAL_DATA_BYTES = 1_800_000_000


def graph_inputs(batch: dict[str, torch.Tensor], network: torch.nn.Module) -> list[str]:
    """The inputs the exported graph takes: those of the training batches that the network's forward names."""
    # The recurrent network swallows token_type_ids in **kwargs without reading them; a graph input nobody reads is
    # dropped by the exporters, and feeding it would then be rejected by the runtime.
    accepted = inspect.signature(network.forward).parameters
    names = [name for name in INPUT_NAMES if name in batch and name in accepted]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise UserInputError(f"exports need input_ids and attention_mask batches; this model's batches have {names}")
    return names


def example_inputs(batch: dict[str, torch.Tensor], names: list[str]) -> tuple[torch.Tensor, ...]:
    """Two rows, up to 8 positions of a real batch, the second one padded, to capture the graph on.

    Neither axis is 1 (which `torch.export` would specialise; `write_executorch` takes the padded row alone where it
    wants a static batch of one) nor the shape of the verification batch, and the padding matters: traced on an
    all-ones mask, a transformer drops its masking code as a constant branch.
    """
    length = min(8, batch["input_ids"].shape[-1])
    example = {name: value[..., :length].clone() for name, value in repeat_to(batch, 2).items() if name in names}
    if length > 1:
        example["attention_mask"][1, ..., max(1, length // 2) :] = 0
    return tuple(example[name] for name in names)


def repeat_to(batch: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """A batch of exactly `size` rows (cycling through the given rows when there are fewer)."""
    rows = torch.arange(size) % next(iter(batch.values())).shape[0]
    return {key: value[rows] for key, value in batch.items()}


def parameter_bytes(module: torch.nn.Module) -> int:
    """The size of a module's weights in memory."""
    return sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())


def write_onnx(module: GraphModule, example: tuple[torch.Tensor, ...], directory: Path, exporter: str) -> Path:
    """Write `model.onnx` with dynamic batch and sequence axes; `exporter` is auto, dynamo or torchscript."""
    if exporter not in ONNX_EXPORTERS:
        raise UserInputError(f"unknown onnx exporter '{exporter}'; use one of {list(ONNX_EXPORTERS)}")
    path = directory / "model.onnx"
    axes = {name: dict(enumerate(module.input_axes)) for name in module.input_names}
    external = parameter_bytes(module) > EXTERNAL_DATA_BYTES
    common = {"input_names": module.input_names, "output_names": module.output_names, "external_data": external}
    if exporter in ("auto", "dynamo"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shapes = tuple(axes[name] for name in module.input_names)  # positional inputs: shapes as a tuple
                torch.onnx.export(module, example, str(path), dynamo=True, verbose=False, dynamic_shapes=shapes,
                                  **common)  # fmt: skip
            return path
        except Exception as error:  # torch.export covers most but not all models (e.g. packed sequences)
            if exporter == "dynamo":
                raise UserInputError(f"torch.export cannot capture this model for ONNX ({_first_line(error)}); try"
                                     " onnx_exporter=torchscript or format=torchscript") from error  # fmt: skip
            log.info("torch.export could not capture the model (%s); using the TorchScript-based ONNX exporter",
                     _first_line(error))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = {name: {0: "batch"} for name in module.output_names}
        torch.onnx.export(module, example, str(path), dynamo=False, dynamic_axes={**axes, **outputs}, **common)
    return path


def write_torchscript(module: GraphModule, example: tuple[torch.Tensor, ...], directory: Path) -> Path:
    """Trace the module on the example and save `model.pt` (`torch.jit.load` runs it without this project)."""
    path = directory / "model.pt"
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings: the verification on another shape is the real check
            traced = torch.jit.trace(module, example)
    except Exception as error:
        raise UserInputError(f"tracing the model for TorchScript failed ({_first_line(error)}); try format=onnx or"
                             " format=hf") from error  # fmt: skip
    traced.save(str(path))
    return path


def write_executorch(module: GraphModule, example: tuple[torch.Tensor, ...], directory: Path,
                     max_sizes: dict[str, int], max_other: int) -> tuple[Path, int]:  # fmt: skip
    """Lower the module to ExecuTorch (`model.pte`, XNNPACK delegate) with dynamic axes bounded by `max_sizes`.

    ExecuTorch plans its memory ahead of time, so every dynamic axis needs an upper bound: the batch size and the
    run's `max_length` in `max_sizes`, `max_other` for any other axis (`conf/export.yaml`, `executorch`). A graph
    with a loop (`torch.scan`: the recurrent classifier's time steps, `models/masked_rnn.py`) gets a batch of one
    row: ExecuTorch 1.5 keeps a loop's carried state at its planned size, so a smaller batch would not fit it; the
    runner (`load_runner`) feeds larger batches row by row. A model `torch.export` cannot capture, or ExecuTorch
    cannot lower, is refused in one line naming the call that failed. Returns the file and the batch bound.
    """
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as error:
        raise UserInputError(f"format=executorch needs ExecuTorch ({error}): pip install -e '.[mobile]'") from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = max_sizes["batch"]
        program = _capture(module, example, max_sizes, max_other) if batch > 1 else None
        if program is None or any(node.target is torch.ops.higher_order.scan for node in program.graph.nodes):
            example, batch = tuple(value[-1:] for value in example), 1  # the padded row: masking stays in the graph
            program = _capture(module, example, {**max_sizes, "batch": 1}, max_other)
        try:
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        except Exception as error:
            message = f"ExecuTorch cannot lower this model: {failing_call(error)}; use format=onnx"
            raise UserInputError(message) from error
    path = directory / "model.pte"
    path.write_bytes(lowered.buffer)
    return path, batch


def _capture(module: GraphModule, example: tuple[torch.Tensor, ...], max_sizes: dict[str, int],
             max_other: int) -> torch.export.ExportedProgram:  # fmt: skip
    """`torch.export` with each axis dynamic up to its bound; an axis bounded at 1 stays static."""
    from torch.export import Dim, export

    bounds = {axis: max_sizes.get(axis, max_other) for axis in module.input_axes}
    dims = {axis: Dim(axis, min=1, max=bound) for axis, bound in bounds.items() if bound > 1}
    shapes = tuple({index: dims[axis] for index, axis in enumerate(module.input_axes) if axis in dims}
                   for _ in module.input_names)  # fmt: skip
    try:
        with capturing_for("executorch"):
            return export(module, example, dynamic_shapes=shapes, strict=False)
    except Exception as error:
        raise UserInputError(f"torch.export cannot capture this model for ExecuTorch: {failing_call(error)};"
                             " use format=onnx (it falls back to TorchScript tracing)") from error  # fmt: skip


def failing_call(error: BaseException) -> str:
    """Which call of the model failed, and where in the library: for a one-line refusal that names the operation.

    The innermost frame outside torch is the model's own code (this project's or transformers'): its line is the
    call that failed, e.g. `rnn_classifier.py:83 outputs, final = self.rnn(packed)`; the innermost frame of torch's
    layers or functions (not of its tracing machinery) says in which operation, e.g. `torch/nn/modules/rnn.py`.
    """
    while error.__cause__ is not None:
        error = error.__cause__
    frames = traceback.extract_tb(error.__traceback__)
    torch_dir = f"{os.sep}torch{os.sep}"
    ours = [frame for frame in frames if torch_dir not in frame.filename]
    library = [frame for frame in frames if any(f"{torch_dir}{part}" in frame.filename for part in LIBRARY_CODE)]
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} `{(ours[-1].line or '').strip()}` " if ours else ""
    if library:
        inner = library[-1]
        where += f"in {inner.filename.split(torch_dir, 1)[1]} ({inner.name}) "
    return f"{where}failed with {type(error).__name__}: {first_line(error)[:200]}"


def load_runner(
    path: Path, names: list[str], threads: int | None = None
) -> Callable[[dict[str, torch.Tensor]], list[np.ndarray]]:
    """A function from a batch of tensors to the exported model's outputs (numpy, in order): `.onnx`/`.pt`/`.pte`.

    `threads`: onnxruntime's intra-op threads (None: its default, one per core); TorchScript uses torch's setting.
    """
    if path.suffix == ".pte":
        return _executorch_runner(path, names)
    if path.suffix == ".onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda batch: session.run(None, {name: batch[name].numpy() for name in names})
    loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = loaded(*(batch[name] for name in names))
        return [output.numpy() for output in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]

    return run


def _executorch_runner(path: Path, names: list[str]) -> Callable[[dict[str, torch.Tensor]], list[np.ndarray]]:
    """ExecuTorch's Python runtime (the program a phone runs), fed batches above the program's bound in chunks."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    bound = method.metadata.input_tensor_meta(0).sizes()[0]  # the planned (largest) batch

    def run(batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        rows = batch[names[0]].shape[0]
        chunks = [method.execute([batch[name][start : start + bound].contiguous() for name in names])
                  for start in range(0, rows, bound)]  # fmt: skip
        if len(chunks) == 1:
            return [output.numpy() for output in chunks[0]]
        return [torch.cat([chunk[index] for chunk in chunks]).numpy() for index in range(len(chunks[0]))]

    return run


def _first_line(error: BaseException) -> str:
    """The innermost cause's first line: exporters wrap the real reason in several layers of advice."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {first_line(error)[:200]}"
