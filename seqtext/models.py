"""Recurrent networks. Token ids in, logits out; no tokenizer, no text, no files.

Shape legend: B batch, T time steps, E embed_dim, H hidden_dim, L layers, V vocab_size, C classes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqtext.config import LMConfig

State = Tensor | tuple[Tensor, Tensor]  # RNN/GRU: h (L, B, H); LSTM: (h, c), both (L, B, H)
CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(
    cell: str, input_dim: int, hidden_dim: int, layers: int, dropout: float, bidirectional: bool = False
) -> nn.RNNBase:
    """A batch-first recurrent stack; dropout between layers only (torch warns on one layer)."""
    return CELLS[cell](
        input_dim,
        hidden_dim,
        layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout if layers > 1 else 0.0,
    )


class RNNLanguageModel(nn.Module):
    """Embedding → dropout → RNN/LSTM/GRU stack → dropout → (projection) → vocabulary logits."""

    kind = "lm"

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = make_rnn(config.cell, config.embed_dim, config.hidden_dim, config.layers, config.dropout)
        self.drop = nn.Dropout(config.dropout)
        # Tied weights (Press & Wolf 2016) share the embedding as the output matrix; when the hidden
        # size differs, a projection brings the RNN output down to the embedding size first.
        self.proj = (
            nn.Linear(config.hidden_dim, config.embed_dim)
            if config.tie_weights and config.hidden_dim != config.embed_dim
            else None
        )
        head_in = config.embed_dim if config.tie_weights else config.hidden_dim
        self.head = nn.Linear(head_in, config.vocab_size)
        if config.tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        return self.head(out), state  # (B, T, V)


def detach_state(state: State) -> State:
    """Cut the autograd graph between windows; otherwise backprop would run to the corpus start."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()  # type: ignore[return-value]


def state_tensors(state: State) -> list[Tensor]:
    """The tensors of a state, in a fixed order (h, then c for an LSTM)."""
    return list(state) if isinstance(state, tuple) else [state]


def state_from_tensors(tensors: list[Tensor]) -> State:
    """Inverse of state_tensors."""
    return (tensors[0], tensors[1]) if len(tensors) == 2 else tensors[0]


def select_state(state: State, rows: Tensor) -> State:
    """The state of some batch rows (used by beam search and batched inference)."""
    if isinstance(state, tuple):
        return (state[0][:, rows], state[1][:, rows])
    return state[:, rows]


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def zero_state_like(model: RNNLanguageModel, batch: int, device: torch.device) -> State:
    """The all-zero state a line starts from, matching the model's cell and size."""
    shape = (model.config.layers, batch, model.config.hidden_dim)
    h = torch.zeros(shape, device=device)
    return (h, torch.zeros_like(h)) if model.config.cell == "lstm" else h
