"""Recurrent networks. Token ids in, logits out; no tokenizer, no text, no files (the classifier: classifiers.py).

Shape legend: B batch, T time steps, E embed_dim, H hidden_dim, L layers, V vocab_size, C classes.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqtext.cells import GATE_BLOCKS, PAIRED, RECURRENT, State, layer_step, make_rnn
from seqtext.config import ClassifierConfig, LMConfig
from seqtext.runtime import UninitialisedOnMeta
from seqtext.wordinput import CharAwareEmbedding


class RNNLanguageModel(nn.Module):
    """Embedding → dropout → RNN/LSTM/GRU stack → dropout → (projection) → vocabulary logits."""

    kind = "lm"

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.embed: nn.Embedding | CharAwareEmbedding = (
            CharAwareEmbedding(config.vocab_size, config.embed_dim, config.char_vocab)
            if config.char_input
            else nn.Embedding(config.vocab_size, config.embed_dim)
        )
        self.rnn = make_rnn(
            config.cell, config.embed_dim, config.hidden_dim, config.layers, config.dropout, False, config.weight_drop
        )
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
        features, state = self.features(ids, state)
        return self.head(features), state  # (B, T, V)

    def features(self, ids: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """(B, T) ids → what the head reads at each step, (B, T, E or H), and the new state."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)  # (B, T, E)
        return out, state

    def nll(self, ids: Tensor, targets: Tensor, state: State | None, pad_id: int) -> tuple[Tensor, State]:
        """Negative log-likelihood (fp32) of every target that is not padding, (N,), and the new state.

        The head runs only at real targets, and the cross-entropy in the logits' own precision:
        under bf16 autocast it would first copy the (N, V) logits to fp32, and at word level that
        copy and its backward cost more than the head's matmul. Both together made word-level
        training 1.4× faster; the per-token error, ~1e-2 nats, averages out.
        """
        features, state = self.features(ids, state)
        real = targets != pad_id
        logits = self.head(features[real])  # (N, V)
        with torch.autocast(logits.device.type, enabled=False):
            nll = F.cross_entropy(logits, targets[real], reduction="none")
        return nll.float(), state

    def read(self, ids: Tensor, state: State | None = None, chunk: int = 1024) -> tuple[Tensor, State]:
        """Read (B, T) ids and return only the logits after the last one, (B, V), and the new state.

        Text of any length: the RNN reads it in chunks and the head runs once, so a 100k-token
        prompt needs no (T, V) logits. Used where only the next token matters (completion).
        """
        if 1 <= ids.size(1) <= STEPPED_READ and not self.training:
            for t in range(ids.size(1)):
                last, state = self._step(ids[:, t], state)
        else:
            out = torch.empty(0)
            for start in range(0, ids.size(1), chunk):
                out, state = self.rnn(self.drop(self.embed(ids[:, start : start + chunk])), state)  # (B, t, H)
            last = self.drop(out[:, -1])  # (B, H)
        if self.proj is not None:
            last = self.proj(last)  # (B, E)
        return self._head_of_rows(last), state  # type: ignore[return-value]

    def read_rows(self, rows: list[list[int]], state: State) -> tuple[Tensor, State]:
        """Read a few tokens for each of B rows, each from its own state, as one batch (inference).

        rows: each row's ids (at least one, at most STEPPED_READ), longest first; state: (L, B, H) in
        the same order. Returns the logits after each row's last token, (B, V), and each row's new
        state. A row whose ids end early drops out of the batch, so its state is exactly its own.
        """
        lengths = [len(ids) for ids in rows]
        assert lengths == sorted(lengths, reverse=True) and lengths[-1] >= 1
        device, tensors = self.embed.weight.device, state_tensors(state)
        last: list[Tensor] = []  # rows' top-layer outputs, in the order they finish
        for t in range(lengths[0]):
            active = sum(1 for n in lengths if n > t)  # the first `active` rows still have a token
            ids = torch.tensor([row[t] for row in rows[:active]], device=device)
            out, stepped = self._step(ids, state_from_tensors([s[:, :active] for s in tensors]))
            pairs = zip(state_tensors(stepped), tensors, strict=True)
            tensors = [torch.cat([new, old[:, active:]], dim=1) for new, old in pairs]
            finished = sum(1 for n in lengths[:active] if n == t + 1)  # the last rows of the active ones
            if finished:
                last.insert(0, out[active - finished :])
        features = torch.cat(last)  # (B, H), back in row order: the shortest rows finished first
        if self.proj is not None:
            features = self.proj(features)  # (B, E)
        return self._head_of_rows(features), state_from_tensors(tensors)

    def _head_of_rows(self, rows: Tensor) -> Tensor:
        """The head for a few rows at inference, (B, E or H) → (B, V), from a transposed copy of its weight.

        For one row, x @ Wᵀ with W stored (V, E) took 2.2 ms on one CPU thread for a 20k × 160 head;
        the same product from a contiguous (E, V) copy took 0.26 ms: most of a keystroke's model step.
        The copy is remade whenever the weight changes (training between reads).
        """
        weight = self.head.weight
        if self.training or torch.is_grad_enabled() or rows.size(0) > 8 or torch.is_autocast_enabled(rows.device.type):
            return self.head(rows)
        key = (weight.data_ptr(), -1 if weight.is_inference() else weight._version)  # inference tensors have none
        if getattr(self, "_head_t", (None,))[0] != key:
            self._head_t = (key, weight.detach().t().contiguous())
        return torch.addmm(self.head.bias, rows, self._head_t[1])

    def _step(self, ids: Tensor, state: State | None) -> tuple[Tensor, State]:
        """One token per row (B,) → top-layer output (B, H), with the same weights as self.rnn.

        For a single step, oneDNN's nn.LSTM costs about 3× the plain cell functions, and a keystroke
        is a single step.
        """
        x = self.embed(ids)  # (B, E)
        if state is None:
            state = zero_state_like(self, ids.size(0), ids.device)
        lstm = self.config.cell in PAIRED
        hs, cs = [], []
        for layer in range(self.config.layers):
            if lstm:
                x, c = layer_step(self.rnn, self.config.cell, layer, x, (state[0][layer], state[1][layer]))
                cs.append(c)
            else:
                x = layer_step(self.rnn, self.config.cell, layer, x, state[layer])
            hs.append(x)
        return x, ((torch.stack(hs), torch.stack(cs)) if lstm else torch.stack(hs))


# Up to this many tokens, inference reads them cell step by cell step: the fused nn.LSTM's set-up cost
# about 1.5 ms per call on one CPU thread, more than a few steps (a keystroke that ends a word with
# punctuation reads two tokens: "calle" + ".").
STEPPED_READ = 8


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters by layer, in model order: embed, rnn.l0, rnn.l1 (rnn.l0_reverse), …, head.

    A tied matrix belongs to the first module that holds it (the embedding).
    """
    groups: dict[str, list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():  # named_parameters yields a shared tensor once
        if not parameter.requires_grad:
            continue
        module, _, leaf = name.partition(".")
        layer = re.search(r"_l(\d+(?:_reverse)?)$", leaf) if isinstance(getattr(model, module), RECURRENT) else None
        groups.setdefault(f"{module}.l{layer.group(1)}" if layer else module, []).append(parameter)
    return groups


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


def join_states(states: list[State]) -> State:
    """One batch of the rows of several states, in order."""
    if isinstance(states[0], tuple):
        return tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))  # type: ignore[return-value]
    return torch.cat(states, dim=1)  # type: ignore[arg-type]


def split_state(state: State) -> list[State]:
    """Each row of a batch as a state of its own (a copy: it does not keep the whole batch alive)."""
    tensors = state_tensors(state)
    return [state_from_tensors([t[:, i : i + 1].clone() for t in tensors]) for i in range(tensors[0].size(1))]


def count_parameters(model: nn.Module) -> int:
    """Distinct trainable parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def zero_state_like(model: RNNLanguageModel, batch: int, device: torch.device) -> State:
    """The all-zero state a line starts from, matching the model's cell and size."""
    shape = (model.config.layers, batch, model.config.hidden_dim)
    h = torch.zeros(shape, device=device)
    return (h, torch.zeros_like(h)) if model.config.cell in PAIRED else h


def on_meta(cls: type[nn.Module], config: LMConfig | ClassifierConfig) -> nn.Module:
    """The model with shapes but no memory ("meta" device): to count or check weights before allocating."""
    with torch.device("meta"), UninitialisedOnMeta():  # nothing to initialise, and quicker so
        return cls(config)


def implied_by_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Config fields that the tensor shapes of a weights file imply (to say which field of a config disagrees)."""
    implied: dict[str, Any] = {}
    if len(embed := shapes.get("embed.weight", ())) == 2:
        implied["vocab_size"], implied["embed_dim"] = embed
    if "embed.weight" in shapes:
        implied["char_input"] = "embed.chars.weight" in shapes
    if len(chars := shapes.get("embed.chars.weight", ())) == 2:
        implied["char_vocab"] = chars[0]
    if len(hh := shapes.get("rnn.weight_hh_l0", ())) == 2 and hh[1] > 0:
        implied["hidden_dim"] = hh[1]
        blocks = hh[0] // hh[1]  # a GRU and a CIFG both have 3 blocks: either fits such weights
        implied["cell"] = tuple(cell for cell, count in GATE_BLOCKS.items() if count == blocks) or ("?",)
    implied["layers"] = sum(1 for name in shapes if re.fullmatch(r"rnn\.weight_hh_l\d+", name))
    if any(name.endswith("_reverse") for name in shapes):
        implied["bidirectional"] = True
    return implied
