"""`masked_rnn`: an `nn.LSTM`/`nn.GRU` over padded batches with a mask instead of packed sequences, for exports.

`torch.export` cannot capture `pack_padded_sequence` (its sizes depend on the data), and its own decomposition of
`nn.LSTM` unrolls the time steps, which fixes the sequence length in the graph. This computes the same numbers as the
packed RNN from the layer's own weights:

- each step is `nn.LSTMCell`/`nn.GRUCell` arithmetic; at a padded position the state stays what it was, so the
  forward direction's final state is the one at each sequence's last real token, and the backward direction (which
  meets the padding first) starts from zeros at that token, as packing does;
- outputs at padded positions are zeros, like `pad_packed_sequence`'s.

Under `torch.export` the steps run in `torch.scan`, a loop the graph keeps (one step's operations, any length):
ExecuTorch runs `scan` with a dynamic sequence length; it does not run `while_loop`, and an unrolled graph takes
minutes to lower. Outside an export a Python loop runs the same step (eager `scan` would compile).
ExecuTorch 1.5 keeps a scan's carried state at its planned size, so the batch of such a program is static (one row;
`exporters.write_executorch`).
"""

from __future__ import annotations

import torch
from torch import nn

from nlp_template.utils.errors import UserInputError

State = tuple[torch.Tensor, torch.Tensor]


def masked_rnn(rnn: nn.LSTM | nn.GRU, inputs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list]:
    """Outputs `(batch, sequence, directions * hidden)` and the top layer's final state per direction.

    `rnn` is batch-first; `mask` is 1 at real positions, which come first in each row (right padding).
    """
    supported = isinstance(rnn, (nn.LSTM, nn.GRU)) and rnn.batch_first and not getattr(rnn, "proj_size", 0)
    if not supported:  # other arithmetic (nn.RNN, projections) would silently give other numbers
        raise UserInputError("masked_rnn computes batch-first nn.LSTM (without proj_size) and nn.GRU; export this"
                             " network with format=onnx")  # fmt: skip
    directions = 2 if rnn.bidirectional else 1
    finals: list[torch.Tensor] = []
    for layer in range(rnn.num_layers):
        if layer:
            inputs = nn.functional.dropout(inputs, rnn.dropout, rnn.training)  # between layers, as nn.LSTM does
        runs = [_direction(rnn, inputs, mask, f"_l{layer}" + ("_reverse" if reverse else ""), bool(reverse))
                for reverse in range(directions)]  # fmt: skip
        inputs = torch.cat([outputs for outputs, _ in runs], dim=-1)
        finals = [final for _, final in runs]
    return inputs, finals


def _direction(rnn: nn.LSTM | nn.GRU, inputs: torch.Tensor, mask: torch.Tensor, suffix: str,
               reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One layer in one direction: its outputs (batch first) and its final hidden state."""
    # Transposed once here: inside the loop `linear` would copy the transposed weight at every step (ExecuTorch runs
    # the loop's body with its portable kernels, outside the XNNPACK delegate).
    weight_hh = getattr(rnn, f"weight_hh{suffix}").t().contiguous()
    bias_hh = getattr(rnn, f"bias_hh{suffix}", None)
    # The input projection of every step at once (one matrix product); the recurrence only adds the hidden one.
    # Time-major copies (not views): `scan` slices its inputs along the first axis.
    projected = nn.functional.linear(inputs, getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"bias_ih{suffix}", None))
    steps = projected.transpose(0, 1).clone()
    keep = mask.transpose(0, 1).unsqueeze(-1).bool().clone()
    if reverse:
        steps, keep = steps.flip(0), keep.flip(0)
    lstm = isinstance(rnn, nn.LSTM)

    def step(state: State, inputs_t: tuple[torch.Tensor, torch.Tensor]) -> tuple[State, torch.Tensor]:
        (hidden, cell), (projected_t, keep_t) = state, inputs_t
        if lstm:
            new_hidden, new_cell = _lstm_step(projected_t, hidden, cell, weight_hh, bias_hh)
            cell = torch.where(keep_t, new_cell, cell)
        else:
            new_hidden = _gru_step(projected_t, hidden, weight_hh, bias_hh)
        hidden = torch.where(keep_t, new_hidden, hidden)  # a padded step leaves the state as it was
        # `cell.clone()`: a GRU passes `cell` on untouched, and scan forbids a carry that aliases its input.
        return (hidden, cell.clone()), torch.where(keep_t, hidden, 0.0)

    zeros = inputs.new_zeros(inputs.shape[0], rnn.hidden_size)
    if torch.compiler.is_exporting():
        from torch._higher_order_ops.scan import scan  # a prototype API: imported only where a graph is captured

        (hidden, _), outputs = scan(step, (zeros, zeros.clone()), (steps, keep))
    else:
        state, collected = (zeros, zeros), []
        for index in range(steps.shape[0]):
            state, output = step(state, (steps[index], keep[index]))
            collected.append(output)
        hidden, outputs = state[0], torch.stack(collected)
    if reverse:
        outputs = outputs.flip(0)
    return outputs.transpose(0, 1), hidden


def _recurrent(hidden: torch.Tensor, weight_hh_t: torch.Tensor, bias_hh: torch.Tensor | None) -> torch.Tensor:
    """The hidden state's projection with the transposed recurrent weight."""
    projected = hidden @ weight_hh_t
    return projected if bias_hh is None else projected + bias_hh


def _lstm_step(projected: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, weight_hh: torch.Tensor,
               bias_hh: torch.Tensor | None) -> State:  # fmt: skip
    """`nn.LSTMCell`: gates in PyTorch's order (input, forget, cell, output)."""
    input_gate, forget_gate, candidate, output_gate = (projected + _recurrent(hidden, weight_hh, bias_hh)).chunk(4, -1)
    cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(cell), cell


def _gru_step(projected: torch.Tensor, hidden: torch.Tensor, weight_hh: torch.Tensor,
              bias_hh: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """`nn.GRUCell`: gates in PyTorch's order (reset, update, new); the reset gate scales the hidden projection."""
    reset_x, update_x, new_x = projected.chunk(3, -1)
    reset_h, update_h, new_h = _recurrent(hidden, weight_hh, bias_hh).chunk(3, -1)
    reset, update = torch.sigmoid(reset_x + reset_h), torch.sigmoid(update_x + update_h)
    new = torch.tanh(new_x + reset * new_h)
    return (1 - update) * new + update * hidden
