"""`GraphModule`: a task's network as a graph exporters understand: named tensors in, named tensors out.

`graph_runtime()` tells a network which runtime its graph is being captured for, where the best form differs: the
recurrent classifier keeps `nn.LSTM` for ONNX (traced into ONNX's own LSTM operator) but computes its steps in a loop
for ExecuTorch, which has no LSTM operator (`masked_rnn.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_RUNTIME: ContextVar[str | None] = ContextVar("graph_runtime", default=None)


@contextmanager
def capturing_for(runtime: str) -> Iterator[None]:
    """Mark the graph captured inside as one for `runtime` (e.g. `executorch`; `exporters.write_executorch`)."""
    token = _RUNTIME.set(runtime)
    try:
        yield
    finally:
        _RUNTIME.reset(token)


def graph_runtime() -> str | None:
    """The runtime a graph is being captured for (`capturing_for`), or None: training, eager inference, ONNX."""
    return _RUNTIME.get()


class GraphModule(torch.nn.Module):
    """The network with positional tensor inputs (in `INPUT_NAMES` order) and the output fields `output_names`.

    Which outputs a task exports is the task's business (`TaskModule.graph_outputs`: `logits` for classifiers and
    taggers, `start_logits`/`end_logits` for question answering); this wrapper only reads them off the network's
    output by name, so a new task needs no new wrapper.
    """

    def __init__(
        self, network: torch.nn.Module, input_names: list[str], output_names: tuple[str, ...],
        input_axes: tuple[str, ...] = ("batch", "sequence"),
    ) -> None:  # fmt: skip
        super().__init__()
        self.input_axes = tuple(input_axes)  # every input has these (dynamic) axes; the last is the sequence
        self.network = network
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        # Exporters put a module back in the mode they found it in: a wrapper left in training mode would switch the
        # network's dropout on after the export (the reference outputs would then be noise).
        self.eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The named outputs; `token_type_ids` only for networks exported with them (see `graph_inputs`)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        output = self.network(**{name: inputs[name] for name in self.input_names})
        return tuple(getattr(output, name) for name in self.output_names)
