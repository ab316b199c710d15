"""Proof that an export gives the same answers as the checkpoint, and what it costs: difference, size, latency.

- `held_out_batch`: the first examples of the run's test split (validation if it has none), padded by the run's
  own collator, so the check runs on real token ids, real padding and a shape the graph was not captured on (where
  all examples have the same length, as language-model blocks do, every other row's tail is masked as padding).
- `compare`: the maximum absolute difference between the exported model's outputs and PyTorch's on that batch;
  above the tolerance the export fails.
- `latency_table`: median milliseconds per batch of 1 and of 32 examples, PyTorch eager vs the exported runtime,
  on this machine's CPU (same threads for both; see `torch.get_num_threads()` in the report).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlp_template.inference.exporters import repeat_to
from nlp_template.utils.errors import UserInputError


def held_out_batch(datamodule: Any, size: int) -> dict[str, torch.Tensor]:
    """`size` examples of the test (else validation) split, collated as in training, without labels."""
    datamodule.prepare_data()
    batch = datamodule.collate_inputs(datamodule.held_out_features(size))  # model inputs only, padded as in training
    mask = batch["attention_mask"]
    if bool(mask.all()) and mask.shape[-1] > 1:  # equal lengths (language-model blocks): pad every other row's tail
        mask[1::2, ..., mask.shape[-1] // 2 :] = 0  # so the check covers the padded path real inputs take
    return batch


def compare(reference: tuple[torch.Tensor, ...], exported: list[np.ndarray], tolerance: float, what: str) -> float:
    """The maximum absolute difference over all outputs; fails above `tolerance` (the export is not trustworthy)."""
    if len(reference) != len(exported):
        raise UserInputError(f"{what} returns {len(exported)} outputs where PyTorch returns {len(reference)}")
    difference = max(
        float(np.max(np.abs(ours.float().numpy() - theirs.astype(np.float32))))
        for ours, theirs in zip(reference, exported, strict=True)
    )
    if not difference <= tolerance:  # also catches NaN
        raise UserInputError(f"{what} differs from PyTorch by {difference:.2e} (> tolerance {tolerance:g}) on the"
                             " held-out batch, so it was removed; try another format or onnx_exporter")  # fmt: skip
    return difference


def median_ms(function: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Median wall time of `function()` in milliseconds over `repeats` calls, after `warmup` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def latency_table(
    pytorch: Callable[[dict], Any], exported: Callable[[dict], Any], batch: dict[str, torch.Tensor],
    batch_sizes: list[int], repeats: int,
) -> list[dict[str, float]]:  # fmt: skip
    """Median latency (ms) of PyTorch and of the export per batch size, and the speed-up of the export."""
    rows = []
    for size in batch_sizes:
        sized = repeat_to(batch, size)
        eager = median_ms(lambda inputs=sized: pytorch(inputs), repeats)
        static = median_ms(lambda inputs=sized: exported(inputs), repeats)
        rows.append({"batch_size": size, "sequence_length": int(sized["input_ids"].shape[-1]), "pytorch_ms": eager,
                     "export_ms": static, "speedup": eager / static})  # fmt: skip
    return rows


def size_mb(paths: list[Path]) -> float:
    """Total size in MB (10^6 bytes) of files, and of all files under directories."""
    files = [file for path in paths for file in ([path] if path.is_file() else path.rglob("*")) if file.is_file()]
    return sum(file.stat().st_size for file in files) / 1e6


def format_report(report: dict[str, Any]) -> str:
    """The report as a few readable lines (the full one is `export_report.json`)."""
    lines = [f"{report['format']} export of {report['task']}: {report['export_mb']:.1f} MB (weights in PyTorch: "
             f"{report['weights_mb']:.1f} MB)"]  # fmt: skip
    if "max_abs_diff" in report:
        lines.append(f"max |logits - PyTorch| on {report['verified_on']}: {report['max_abs_diff']:.2e}")
    for row in report.get("latency", []):
        lines.append(f"batch {row['batch_size']:>3} x {row['sequence_length']} tokens: PyTorch {row['pytorch_ms']:.2f}"
                     f" ms, export {row['export_ms']:.2f} ms ({row['speedup']:.2f}x)")  # fmt: skip
    return "\n".join(lines)
