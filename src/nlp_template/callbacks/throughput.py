"""`ThroughputMonitor`: samples/s, real and padded tokens/s, padding, step time, peak memory and MFU per interval.

FLOPs are counted for the shapes that actually run: the network's forward and backward pass on one example of length
L is counted with `torch.utils.flop_counter` on a copy of the network built on the meta device (no memory, no
compute), and a batch of B examples of padded length L costs B times that. Variable lengths (dynamic padding, token
budgets) are therefore accounted exactly instead of assumed from a fixed shape.
MFU divides achieved FLOP/s by the device's peak for the training dtype (Lightning's table of GPUs); on CPUs and
unknown devices it is left out unless `peak_flops` is given.
"""

from __future__ import annotations

import copy
import logging
import resource
import statistics
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.throughput import get_available_flops
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)


class ThroughputMonitor(L.Callback):
    """Log `perf/*` every `log_every_n_steps` training batches; `summary()` gives medians as `throughput/*`.

    Args:
        log_every_n_steps: batches per measurement interval.
        peak_flops: the device's peak FLOP/s for MFU; None looks it up for known GPUs.
    """

    def __init__(self, log_every_n_steps: int = 20, peak_flops: float | None = None) -> None:
        self.log_every_n_steps = log_every_n_steps
        self.peak_flops = peak_flops
        self.intervals: list[dict[str, float]] = []
        self._flops_per_length: dict[int, int] = {}
        self._quadratic: tuple[float, float, float] | tuple[()] | None = None
        self._meta_network: torch.nn.Module | None = None
        self._counts_flops = True  # false for networks the meta-device count cannot run (e.g. packed RNNs)
        self._outputs: tuple[str, ...] = ("logits",)  # the network outputs the backward pass starts from
        self._reset()

    def _reset(self) -> None:
        self._start: float | None = None
        self._steps = self._samples = self._padded = self._flops = 0
        self._real: torch.Tensor | int = 0  # stays on the device until the interval ends (no sync per step)

    # ------------------------------------------------------------------------------------------------------ FLOPs
    def flops_per_example(self, network: torch.nn.Module, length: int) -> int:
        """Forward + backward FLOPs of one example of `length` tokens.

        A transformer's FLOPs are exactly quadratic in the length (linear layers ~ L, attention ~ L^2), so three
        counted lengths give the curve and a fourth checks it; if the check fails (another kind of network), every
        length is counted on its own. Either way each count is of the real network's operations.
        """
        if not self._counts_flops:
            return 0
        if self._quadratic is None:
            try:
                self._quadratic = self._fit_quadratic(network)
            except Exception as error:  # noqa: BLE001 - any failure only means "no FLOP figures"
                log.info("FLOPs not counted for %s (%s); TFLOP/s and MFU left out", type(network).__name__, error)
                self._counts_flops = False
                return 0
        if self._quadratic:
            a, b, c = self._quadratic
            return round(a * length * length + b * length + c)
        if length not in self._flops_per_length:
            self._flops_per_length[length] = self._count(network, length)
        return self._flops_per_length[length]

    def _count(self, network: torch.nn.Module, length: int) -> int:
        if self._meta_network is None:
            self._meta_network = _meta_copy(network)
        ids = torch.zeros(1, length, dtype=torch.long, device="meta")
        # Anomaly detection (debug=fdr) would inspect values, which meta tensors do not have.
        with torch.autograd.set_detect_anomaly(False), FlopCounterMode(display=False) as counter:
            output = self._meta_network(input_ids=ids)  # no mask: a real one would need values (.item())
            # Every output the task exports (`logits`; `start_logits` + `end_logits` for question answering).
            sum(getattr(output, name).float().sum() for name in self._outputs).backward()
        return counter.get_total_flops()

    def _fit_quadratic(self, network: torch.nn.Module) -> tuple[float, float, float] | tuple[()]:
        lengths = (16, 32, 64)
        a, b, c = np.polyfit(lengths, [self._count(network, n) for n in lengths], 2)
        check = self._count(network, 48)
        return (a, b, c) if abs(a * 48 * 48 + b * 48 + c - check) <= 1e-6 * check else ()

    # -------------------------------------------------------------------------------------------------- callbacks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Find the device's peak FLOP/s for the training dtype (None when unknown) and the task's outputs."""
        self._outputs = tuple(getattr(pl_module, "graph_outputs", self._outputs))
        if self.peak_flops is None:
            dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(str(trainer.precision).split("-")[0])
            self.peak_flops = get_available_flops(pl_module.device, dtype or torch.float32)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Count the batch's examples, tokens and FLOPs; start the clock at the first batch of an interval."""
        if self._start is None:
            _synchronize(pl_module.device)
            self._start = time.perf_counter()
        mask = batch["attention_mask"]  # (examples, [choices,] tokens): multiple choice runs choices x sequences
        length, sequences = mask.shape[-1], mask.numel() // mask.shape[-1]
        self._samples += mask.shape[0]
        self._padded += mask.numel()
        self._real = self._real + mask.sum()
        self._flops += sequences * self.flops_per_example(pl_module.network, length)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Close the interval every `log_every_n_steps` batches and log its rates."""
        self._steps += 1
        if self._steps < self.log_every_n_steps:
            return
        _synchronize(pl_module.device)
        seconds = time.perf_counter() - self._start
        real = float(self._real)
        interval = {
            "samples_per_sec": self._samples / seconds,
            "real_tokens_per_sec": real / seconds,
            "padded_tokens_per_sec": self._padded / seconds,
            "padding_fraction": 1 - real / self._padded,
            "step_time_sec": seconds / self._steps,
            "peak_memory_gb": _peak_memory_gb(pl_module.device),
        }
        if self._counts_flops:
            interval["tflops_per_sec"] = self._flops / seconds / 1e12
        if self.peak_flops and self._counts_flops:
            interval["mfu"] = self._flops / seconds / self.peak_flops
        self.intervals.append(interval)
        pl_module.log_dict({f"perf/{k}": v for k, v in interval.items()}, on_step=True, on_epoch=False)
        self._reset()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Drop a partial interval: the validation loop runs between its batches."""
        self._reset()

    def summary(self) -> dict[str, float]:
        """Medians over the logged intervals (the first one, with warm-up, is left out when there are others)."""
        intervals = self.intervals[1:] if len(self.intervals) > 1 else self.intervals
        if not intervals:
            return {}
        return {f"throughput/{key}": statistics.median(i[key] for i in intervals) for key in intervals[0]}


def _meta_copy(network: torch.nn.Module) -> torch.nn.Module:
    """The same architecture on the meta device: no weights are allocated or copied."""
    config = getattr(network, "config", None)
    if config is not None:
        # No pad id: without a mask, transformers checks the ids for padding (`.item()`), which meta tensors lack.
        config = copy.deepcopy(config)
        config.pad_token_id = None
        with torch.device("meta"):
            return type(network)(config)
    return copy.deepcopy(network).to("meta")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux: the process's peak RSS
