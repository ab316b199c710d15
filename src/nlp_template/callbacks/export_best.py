"""`ExportBestCheckpoint`: at the end of training, export the best checkpoint next to it (`nlp-train export_best=hf`).

The export lands in `<run dir>/checkpoints/<best checkpoint name>_<format>/`, e.g. `epoch_003_hf/`, ready for
`transformers.pipeline` (hf), onnxruntime (onnx) or `torch.jit.load` (torchscript); onnx and torchscript exports
are verified against PyTorch as `nlp-export` does (without the latency timing). An existing export of the same
checkpoint is kept. Rank 0 exports while the other ranks wait; a model the format cannot hold (e.g. the LSTM as
`hf`) or any other failure of the export is reported in the log and does not fail the finished run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from nlp_template.inference.exporting import export, export_config
from nlp_template.utils.hub import first_line

log = logging.getLogger(__name__)


class ExportBestCheckpoint(L.Callback):
    """Export the best checkpoint at the end of `fit`.

    Args:
        format: `hf`, `onnx` or `torchscript`; None turns the callback off (the default).
        tolerance: maximum absolute logit difference an onnx/torchscript export may have from PyTorch.
    """

    def __init__(self, format: str | None = None, tolerance: float = 1e-4) -> None:
        self.format = format
        self.tolerance = tolerance
        self.exported: Path | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Export the best (else the last) checkpoint of this run on rank 0; the other ranks wait for it."""
        if not self.format:
            return
        if trainer.is_global_zero:
            self._export(trainer)
        trainer.strategy.barrier("export_best")  # the ranks then validate and test together

    def _export(self, trainer: L.Trainer) -> None:
        callback = trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
        if not best:
            log.warning("Best checkpoint not exported: this run saved no checkpoint")
            return
        output = Path(best).with_name(f"{Path(best).stem}_{self.format}")
        if output.exists():
            log.info("Export kept: %s exists", output)
            return
        # conf/export.yaml's settings (one place for the defaults), without the timing: the run is over.
        cfg = export_config(ckpt_path=best, format=self.format, output=str(output), tolerance=self.tolerance,
                            latency={"repeats": 0})  # fmt: skip
        try:
            self.exported = export(cfg)
        except Exception as error:  # the run itself succeeded: say why there is no export, do not fail it
            log.warning("Best checkpoint not exported: %s", first_line(error))
