"""int8 ONNX exports (`nlp-export format=onnx quantize=int8`): smaller and faster on CPU, kept only if still as good.

onnxruntime's dynamic quantization stores the weights of the MatMul layers as int8 and quantizes their inputs at
run time, so no calibration data is needed. Only MatMul (and the recurrent layers' weights, where the graph has
LSTM/GRU nodes): the embedding tables (Gather) stay fp32, since quantizing them costs accuracy and saves no time.
onnxruntime's shape inference (`quant_pre_process`) runs first, as its docs recommend.

int8 logits cannot match PyTorch to the fp32 tolerance, so the check is the task's own metric on the test split:
the fp32 graph and the int8 graph are each run through the task's evaluation (`trainer.test` with the graph in the
network's place, `exported.GraphNetwork`), and the int8 export is refused when the metric gets worse by more than
`max_metric_drop` (in the metric's units: 0.01 is one point of accuracy or F1).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx

from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)
QUANTIZED_OPS = ("MatMul", "LSTM", "GRU")  # weights stored as int8; Gather (embeddings) stays fp32
INTEGER_OPS = ("MatMulInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul")  # what quantized weights run as


def quantize_int8(fp32: Path, int8: Path) -> int:
    """Write the dynamically quantized `int8` graph of `fp32`; returns how many integer nodes it has."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, int8 = fp32.resolve(), int8.resolve()
    # onnxruntime's shape inference writes scratch files (`sym_shape_infer_temp.onnx`, `<uuid>.data`) into the working
    # directory: run it in a temporary one, so nothing lands in the user's folder.
    with tempfile.TemporaryDirectory() as tmp, working_directory(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32), str(prepared))
        except Exception as error:  # symbolic shape inference does not know every graph; quantization works without
            log.info("onnxruntime's quantization preprocessing skipped (%s: %s)", type(error).__name__, error)
            prepared = fp32
        ops = {node.op_type for node in onnx.load(str(prepared), load_external_data=False).graph.node}
        quantize_dynamic(str(prepared), str(int8), weight_type=QuantType.QInt8,
                         op_types_to_quantize=[op for op in QUANTIZED_OPS if op in ops])  # fmt: skip
    nodes = sum(node.op_type in INTEGER_OPS for node in onnx.load(str(int8), load_external_data=False).graph.node)
    if not nodes:
        raise UserInputError("quantize=int8 found no MatMul or recurrent weights to quantize in this graph; export"
                             " without quantize")  # fmt: skip
    return nodes


@contextlib.contextmanager
def working_directory(path: str) -> Iterator[None]:
    """Run the block in `path` (`contextlib.chdir` from Python 3.11 on; this project supports 3.10)."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def guarded_metric(run_config: Any, metric: str | None, mode: str | None) -> tuple[str, str]:
    """The test metric the int8 check compares and whether higher (`max`) or lower (`min`) is better.

    Default: the run's monitored metric (`monitor.metric`, stored in the checkpoint) on the test split.
    """
    monitor = run_config.get("monitor") or {}
    monitored = (monitor.get("metric") or "").replace("val/", "test/", 1)
    name = metric or monitored
    if not name:
        raise UserInputError("quantize=int8 compares a test metric before and after, and this checkpoint does not say"
                             " which metric its run monitored: set metric=test/<name> (e.g. test/acc)")  # fmt: skip
    if mode is None and name == monitored:
        mode = monitor.get("mode")
    if mode not in ("max", "min"):  # never guessed: a wrong direction would keep an int8 graph that got worse
        raise UserInputError(f"metric_mode must be max (higher is better) or min (lower is better) for {name}, got"
                             f" {mode!r}; e.g. metric={name} metric_mode=max")  # fmt: skip
    return name, mode


def test_metrics(model: Any, datamodule: Any, network: Any) -> dict[str, float]:
    """The task's test metrics with `network` (an exported graph) in place of the task module's own network."""
    import lightning as L

    original, compiled = model.network, model._compiled
    model.network = network
    object.__setattr__(model, "_compiled", None)  # a run trained with model.compile would run its compiled network
    try:
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        results = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    finally:
        model.network = original
        object.__setattr__(model, "_compiled", compiled)
    if "test/loss" in results:  # a graph outputs no loss: a loss here means PyTorch ran, not the graph
        raise RuntimeError("the int8 check evaluated the PyTorch network instead of the exported graph")
    return {key: float(value) for key, value in results.items()}


def metric_check(name: str, mode: str, before: dict, after: dict, max_drop: float) -> dict[str, Any]:
    """The metric before/after quantization and the drop; refused (one line) when it drops by more than `max_drop`."""
    if name not in before or not all(math.isfinite(values[name]) for values in (before, after) if name in values):
        computed = sorted(key for key, value in before.items() if math.isfinite(value))
        raise UserInputError(f"quantize=int8 checks {name}, which the exported graph cannot give on the test split (a"
                             f" graph outputs no loss); choose one it gives with metric=... ({computed})")  # fmt: skip
    drop = (before[name] - after[name]) if mode == "max" else (after[name] - before[name])
    facts = {"metric": name, "mode": mode, "fp32": before[name], "int8": after[name], "drop": drop,
             "max_metric_drop": max_drop}  # fmt: skip
    if drop > max_drop:
        raise UserInputError(f"quantize=int8 makes {name} worse by {drop:.4f} ({before[name]:.4f} -> {after[name]:.4f}"
                             f" on the test split), more than max_metric_drop={max_drop:g}, so the export was removed;"
                             " export without quantize, or allow more with max_metric_drop=...")  # fmt: skip
    return facts
