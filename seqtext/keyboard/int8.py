"""The keyboard's model steps in int8: torch's dynamic quantization (x86 backend) of the LSTM gates and the head.

A keystroke that ends a word runs one LSTM step and the head for one row: two matrix-vector
products whose weights (20k × 160 head, 2048 × 672 gates for the keyboard preset: 18 MB in fp32)
are read from memory at every keystroke, so their time is memory traffic. In int8 they are a quarter
of the bytes. Weights are quantized per output row, activations per call and per row (dynamic
quantization; a row's answer does not depend on the rows batched with it). On an AVX2 CPU the int8
products took about half the fp32 time with warm caches, and a keystroke's CPU time at p99 fell by
about a third (one thread, exploratory). The keystroke savings are measured against fp32
(docs/keyboard.md): int8 is the default because they agree within 0.2 points; `int8=False`
(`--no-int8`) turns it off. A server batching many typists keeps fp32: a batch reads the weights once.

Runs word-level LSTM and CIFG (coupled-gate LSTM) language models where torch has its x86 (fbgemm) quantized
engine; `supported` says why not.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from seqtext.cells import PAIRED, cifg_update
from seqtext.models import RNNLanguageModel, State, zero_state_like

ENGINES = ("x86", "fbgemm")  # torch's quantized engines for x86 CPUs (fbgemm, and x86 which picks fbgemm or onednn)


def supported(model: RNNLanguageModel) -> str | None:
    """None when Int8Steps can run this model, else why not (in words)."""
    engine = torch.backends.quantized.engine  # x86 by default on x86 CPUs
    if not isinstance(model, RNNLanguageModel):  # e.g. a stand-in that runs an exported graph
        return f"it is a {type(model).__name__}, not seqtext's RNNLanguageModel"
    if model.config.level != "word":  # a character model's beam search steps the model itself
        return f"it is a {model.config.level}-level model, not word-level"
    if model.config.cell not in PAIRED:
        return f"its cell is {model.config.cell}, not lstm or cifg"
    if model.embed.weight.device.type != "cpu":
        return "it is not on the CPU"
    if engine not in ENGINES:
        return f"torch's quantized engine is {engine}, not x86"
    try:  # torch has announced that its quantized tensors will go: a torch without them types in fp32
        torch.ops.quantized.linear_prepack, torch.ops.quantized.linear_dynamic  # noqa: B018
    except (AttributeError, RuntimeError):
        return "this torch has no quantized linear kernels"
    return None


def _packed(weight: Tensor, bias: Tensor | None) -> Any:
    """A weight (out, in) quantized to int8 per output row and packed for torch's quantized linear."""
    weight = weight.detach().float()
    scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
    with warnings.catch_warnings():  # torch warns that quantized tensors will go; its int8 kernels are here now
        warnings.simplefilter("ignore")
        zero_points = torch.zeros_like(scales, dtype=torch.long)
        quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.detach().float())


def _rowwise(packed: Any, rows: Tensor) -> Tensor:
    """rows (B, in) → (B, out) through a packed int8 weight, each row quantized on its own: a row's answer
    must not depend on the rows beside it (keystrokes answered together get the answers given alone)."""
    rows = rows.float().contiguous()
    if rows.size(0) == 1:
        return torch.ops.quantized.linear_dynamic(rows, packed, True)
    return torch.cat([torch.ops.quantized.linear_dynamic(row, packed, True) for row in rows.split(1)])


def _linear(layer: torch.nn.Linear) -> Callable[[Tensor], Tensor]:
    """The layer in int8: rows (B, in) → (B, out)."""
    packed = _packed(layer.weight, layer.bias)
    return lambda rows: _rowwise(packed, rows)


class Int8Steps:
    """A language model's single steps and head at inference, in int8 (see the module); read_rows as the model's.

    Built from the model's weights as they are when built: build another after changing them.
    """

    def __init__(self, model: RNNLanguageModel) -> None:
        why = supported(model)
        if why is not None:
            raise ValueError(f"Int8Steps cannot run this model: {why}")
        self.model, self.config = model, model.config
        self.embed, self.training = model.embed, False
        rnn = model.rnn
        self.gates = [  # one product per layer: [x, h] · [W_ih W_hh]ᵀ + b_ih + b_hh
            _packed(
                torch.cat([getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")], dim=1),
                getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}"),
            )
            for layer in range(self.config.layers)
        ]
        self.head = _linear(model.head)
        self.proj = None if model.proj is None else _linear(model.proj)  # hidden → embedding size (tied weights)

    def read(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Read (B, T) ids step by step in int8 → the logits after the last one (B, V) and the new state: a
        long text read at once leaves the state its keystrokes one by one would (the cache changes no answer)."""
        for t in range(ids.size(1)):
            last, state = self._step(ids[:, t], state)
        if self.proj is not None:
            last = self.proj(last)
        return self._head_of_rows(last), state  # type: ignore[return-value]

    def read_rows(self, rows: list[list[int]], state: State) -> tuple[Tensor, State]:
        """RNNLanguageModel.read_rows with these steps and head: the same batching, in int8."""
        return RNNLanguageModel.read_rows(self, rows, state)  # type: ignore[arg-type]  # it uses only what this has

    def _step(self, ids: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One token per row (B,) → top-layer output (B, H) and the new state, as RNNLanguageModel._step."""
        x = self.embed(ids)  # (B, E)
        if state is None:
            state = zero_state_like(self.model, ids.size(0), ids.device)
        hs, cs = [], []
        for layer, packed in enumerate(self.gates):
            h, c = state[0][layer], state[1][layer]  # type: ignore[index]
            gates = _rowwise(packed, torch.cat([x, h], dim=1))  # (B, 4H); a CIFG's (B, 3H), without i
            if self.config.cell == "cifg":
                x, c = cifg_update(gates, c)
            else:
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                x = torch.sigmoid(o) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))

    def _head_of_rows(self, rows: Tensor) -> Tensor:
        """The head for a few rows, (B, E or H) → (B, V)."""
        return self.head(rows)
