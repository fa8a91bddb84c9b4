"""Recurrent cells: torch's RNN, LSTM and GRU, the coupled input-forget gate LSTM, and weight drop.

- `cifg`, the coupled input-forget gate LSTM (Greff et al. 2017, "LSTM: A Search Space Odyssey"; the cell of
  production phone keyboards, Hard et al. 2018): the input gate is 1 − the forget gate, so a layer has three
  gate blocks instead of four: a quarter fewer recurrent weights and products per step, and in the Odyssey's
  trials no loss of quality. Its weights are named and laid out as torch's LSTM, with the blocks
  (forget, cell, output); since 1 − σ(z) = σ(−z), it is exactly an LSTM whose input-gate rows are its
  forget-gate rows negated (`as_lstm`), which is how ONNX export and other LSTM-only code run it.
- Weight drop (DropConnect on the hidden-to-hidden matrices, Merity et al. 2018, AWD-LSTM): in training, each
  forward pass drops a fresh random share of the recurrent weights (scaled as inverted dropout), the same
  mask at every time step of the pass; inference uses the weights as they are.

Shape legend: B batch, T time steps, H hidden size, L layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

State = Tensor | tuple[Tensor, Tensor]  # RNN/GRU: h (L, B, H); LSTM and CIFG: (h, c), both (L, B, H)
PAIRED = frozenset({"lstm", "cifg"})  # the cells whose state is (h, c)
GATE_BLOCKS = {"rnn": 1, "gru": 3, "lstm": 4, "cifg": 3}  # rows of weight_hh_l{k} per hidden unit


def cifg_cell(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor):
    """One step of a CIFG layer, as torch.lstm_cell: x (B, in), (h, c) each (B, H) → the new (h, c)."""
    h, c = state
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 3H): forget, cell, output
    return cifg_update(gates, c)


def cifg_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """A CIFG layer's new (h, c) from its gate pre-activations (B, 3H): forget, cell, output."""
    f, g, o = gates.chunk(3, dim=-1)
    f = torch.sigmoid(f)
    c = f * c + (1 - f) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


CELL_STEPS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell, "cifg": cifg_cell}


def layer_step(rnn: nn.Module, cell: str, layer: int, x: Tensor, state: State) -> State:
    """One time step of one layer of `rnn`, with its weights: input (B, in) and the layer's state
    (h, or (h, c) for an LSTM or CIFG, each (B, H)) → the layer's new state. Autograd sees every step."""
    weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return CELL_STEPS[cell](x, state, *weights)


def as_lstm(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor) -> list[Tensor]:
    """A CIFG layer's weights as the LSTM it equals (torch's gate order: input, forget, cell, output): the
    input gate σ(−z_f) = 1 − σ(z_f) takes the forget rows negated."""
    return [torch.cat([-w.chunk(3)[0], *w.chunk(3)]) for w in (w_ih, w_hh, b_ih, b_hh)]


def drop_weight(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: `weight` with a random share p of its entries zeroed (the rest scaled by 1/(1−p)) in training."""
    return F.dropout(weight, p, training) if p > 0 else weight


class WeightDropped:
    """Weight drop for torch's fused RNN, LSTM and GRU: their forward reads `_flat_weights`, so the dropped
    recurrent matrices stand in there for one call and the parameters (their names, the saved format) stay."""

    weight_drop = 0.0

    def forward(self, x, state=None):
        if not (self.training and self.weight_drop > 0):
            return super().forward(x, state)  # type: ignore[misc]
        kept = list(self._flat_weights)
        for i, name in enumerate(self._flat_weights_names):
            if name.startswith("weight_hh"):
                self._flat_weights[i] = drop_weight(kept[i], self.weight_drop, True)
        try:
            return super().forward(x, state)  # type: ignore[misc]
        finally:
            self._flat_weights[:] = kept


class RNN(WeightDropped, nn.RNN):
    """torch's Elman RNN, with weight drop."""


class LSTM(WeightDropped, nn.LSTM):
    """torch's LSTM, with weight drop."""


class GRU(WeightDropped, nn.GRU):
    """torch's GRU, with weight drop."""


class CoupledLSTM(nn.Module):
    """A batch-first stack of CIFG layers (see the module); forward as nn.LSTM's: x (B, T, in) → (B, T, H), (h, c).

    Parameters as nn.LSTM's (weight_ih_l{k} (3H, in), weight_hh_l{k} (3H, H), bias_ih_l{k}, bias_hh_l{k}),
    initialised as torch initialises an LSTM. The input products of a whole window run as one matrix product;
    the recurrent one runs step by step.
    """

    def __init__(self, input_dim: int, hidden_dim: int, layers: int, dropout: float = 0.0, weight_drop: float = 0.0):
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout, self.weight_drop = hidden_dim, layers, dropout, weight_drop
        for layer in range(layers):
            width = input_dim if layer == 0 else hidden_dim
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(3 * hidden_dim, width)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(3 * hidden_dim, hidden_dim)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(3 * hidden_dim)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(3 * hidden_dim)))
        bound = 1 / math.sqrt(hidden_dim)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        batch = x.size(0)
        if state is None:
            zeros = torch.zeros(self.num_layers, batch, self.hidden_size, device=x.device, dtype=x.dtype)
            state = (zeros, zeros)
        hs, cs = [], []
        for layer in range(self.num_layers):
            if layer:  # dropout between layers, as torch's stacks apply it
                x = F.dropout(x, self.dropout, self.training)
            w_ih, w_hh, b_ih, b_hh = (
                getattr(self, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            w_hh = drop_weight(w_hh, self.weight_drop, self.training)
            inputs = F.linear(x, w_ih, b_ih + b_hh)  # (B, T, 3H): every step's input product at once
            h, c = state[0][layer], state[1][layer]
            outputs = []
            for t in range(x.size(1)):
                h, c = cifg_update(inputs[:, t] + F.linear(h, w_hh), c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)  # (B, T, H)
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))


TORCH_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
RECURRENT = (nn.RNNBase, CoupledLSTM)  # the recurrent stacks, whose parameters are per layer (…_l{k})


def make_rnn(
    cell: str,
    input_dim: int,
    hidden_dim: int,
    layers: int,
    dropout: float,
    bidirectional: bool = False,
    weight_drop: float = 0.0,
) -> nn.Module:
    """A batch-first recurrent stack; dropout between layers only (torch warns on one layer)."""
    between = dropout if layers > 1 else 0.0
    if cell == "cifg":
        if bidirectional:
            raise ValueError("the cifg cell reads forward only")
        return CoupledLSTM(input_dim, hidden_dim, layers, between, weight_drop)
    rnn = TORCH_CELLS[cell](
        input_dim, hidden_dim, layers, batch_first=True, bidirectional=bidirectional, dropout=between
    )
    rnn.weight_drop = weight_drop
    return rnn
