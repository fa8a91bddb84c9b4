"""Gradients through time: how far back the loss at one step reaches into the past.

For windows of text, ‖∂L_T/∂h_t‖ for t = T, T−1, …, T−steps: the gradient of the loss at the last
step T (predicting the token after it) with respect to the hidden state the network carried from
step t to step t+1, over all layers, and for an LSTM its memory cell c too. At t = T the state is
what the output layer reads (the top layer's h). This is the signal backpropagation through time
brings back k = T − t steps: where it shrinks towards zero the network cannot learn from that far
back (vanishing gradients); where it grows, the updates explode and clipping steps in.

nn.RNN/LSTM/GRU run all steps in one kernel and hide the per-step states from autograd, so the
network is unrolled here one cell call per step with the same weights (`models.layer_step`), and
every carried state is its own tensor in the graph. Measured in eval mode (no dropout) and fp32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtext.cells import PAIRED
from seqtext.config import TrainConfig
from seqtext.data import encode_lines, encode_stream, lm_windows, read_texts
from seqtext.errors import CorpusError
from seqtext.limits import MAX_CLIP
from seqtext.models import RNNLanguageModel, detach_state, layer_step, parameter_groups
from seqtext.runs.loading import Loaded, as_loaded
from seqtext.runs.reading import read_train_config
from seqtext.runtime import eval_mode
from seqtext.schema import check_finite, check_range
from seqtext.tokenizer import PAD_ID
from seqtext.training.gradnorms import group_norms

WARMUP = 100  # stream windows: tokens read first, without gradient, so the state is warm as in training
CHUNK = 16  # windows unrolled together
# Every step back is a state kept in the unrolled graph (16 windows × layers × width floats each), and
# every window is a row of token ids: bounds that keep a probe within a few GB and a few minutes.
MAX_STEPS_BACK = 4_096
MAX_PROBES = 10_000  # --windows, --batches


@dataclass(frozen=True)
class ProbeWindows:
    """Rows of token ids to unroll: row b ends at input position last[b] (T) and is read from position 0;
    the first `warm` positions only warm the state up (no gradient is taken there)."""

    inputs: Tensor  # (N, W)
    targets: Tensor  # (N, W)
    last: Tensor  # (N,)
    warm: int
    steps: int


def probe_windows(
    texts: list[str], tokenizer: Any, *, stream: bool, steps: int | None, default: int, count: int, source: str
) -> ProbeWindows:
    """`count` windows spread evenly over the text, read the way the model was trained.

    A stream gives windows of steps + 1 tokens after a warm-up of up to WARMUP tokens; a line model
    reads whole lines from <bos>, so only lines that reach `steps` back from their <eos> count.
    `steps` None: `default`, for lines at most as far as the median line reaches.
    """
    default = min(default, MAX_STEPS_BACK)  # a run's --bptt may be longer than the unrolled graph can be
    if stream:
        ids = encode_stream(tokenizer, texts)
        steps = default if steps is None else steps
        if len(ids) < steps + 2:
            raise CorpusError(f"{source} gives {len(ids):,} tokens; {steps} steps back need at least {steps + 2:,}")
        warm = min(WARMUP, len(ids) - steps - 2)
        width = warm + steps + 1  # inputs per row; targets are the same tokens shifted by one
        starts = torch.linspace(0, len(ids) - width - 1, count).round().long().unique()
        rows = torch.stack([ids[s : s + width + 1] for s in starts.tolist()])
        last = torch.full((len(rows),), width - 1)
        return ProbeWindows(rows[:, :-1], rows[:, 1:], last, warm, steps)
    lines = encode_lines(tokenizer, texts)
    if not lines:
        raise CorpusError(f"{source} has no non-empty line to read")
    reach = sorted(len(line) - 2 for line in lines)  # steps back from the <eos> prediction to <bos>
    steps = max(1, min(default, reach[len(reach) // 2])) if steps is None else steps
    long_enough = [line for line in lines if len(line) - 2 >= steps]
    if not long_enough:
        raise CorpusError(f"no line of {source} reaches {steps} steps back (the longest reaches {reach[-1]})")
    picked = [long_enough[i] for i in torch.linspace(0, len(long_enough) - 1, count).round().long().unique().tolist()]
    ids = torch.full((len(picked), max(map(len, picked))), PAD_ID, dtype=torch.long)
    for row, line in enumerate(picked):
        ids[row, : len(line)] = torch.tensor(line)
    last = torch.tensor([len(line) - 2 for line in picked])
    return ProbeWindows(ids[:, :-1], ids[:, 1:], last, 0, steps)


def state_gradient_norms(model: RNNLanguageModel, windows: ProbeWindows) -> Tensor:
    """‖∂L_T/∂h_{T−k}‖ for every window and k = 0 … steps, (N, steps + 1), in eval mode."""
    if bool((windows.last - windows.warm < windows.steps).any()):
        raise ValueError("every window must reach `steps` back from its last position")
    device = next(model.parameters()).device
    with eval_mode(model), torch.enable_grad():
        parts = []
        for start in range(0, len(windows.inputs), CHUNK):
            rows = slice(start, start + CHUNK)
            parts.append(
                _chunk_norms(
                    model,
                    windows.inputs[rows].to(device),
                    windows.targets[rows].to(device),
                    windows.last[rows].to(device),
                    windows.warm,
                    windows.steps,
                )
            )
    return torch.cat(parts).cpu()


def _chunk_norms(
    model: RNNLanguageModel, inputs: Tensor, targets: Tensor, last: Tensor, warm: int, steps: int
) -> Tensor:
    """One batch of windows: unroll step by step, take the last step's loss, read the gradients back."""
    cell, layers, lstm = model.config.cell, model.config.layers, model.config.cell in PAIRED
    batch = inputs.size(0)
    if warm:
        with torch.no_grad():
            _, state = model.rnn(model.embed(inputs[:, :warm]))  # (L, B, H), or (h, c)
    else:
        h = torch.zeros(layers, batch, model.config.hidden_dim, device=inputs.device, dtype=model.embed.weight.dtype)
        state = (h, torch.zeros_like(h)) if lstm else h
    per_layer = [(state[0][i], state[1][i]) if lstm else state[i] for i in range(layers)]
    x = model.embed(inputs[:, warm:]).detach()  # (B, W, E): the embedding is not on the path through time
    tops, carried = [], []  # per step: the top layer's output (read by the head), the state copies (read by t+1)
    for t in range(x.size(1)):
        step_input = x[:, t]
        new = []
        for layer in range(layers):
            s = layer_step(model.rnn, cell, layer, step_input, per_layer[layer])
            step_input = s[0] if lstm else s  # the layer above reads h of this step
            new.append(s)
        tops.append(step_input)
        # The next step reads a copy, so the gradient w.r.t. the copy is what flows back through time
        # alone (not up through the layers above at the same step).
        per_layer = [tuple(v.clone() for v in s) if lstm else s.clone() for s in new]
        carried.append([v for s in per_layer for v in (s if lstm else (s,))])
    top = torch.stack(tops, dim=1)  # (B, W, H)
    rows, end = torch.arange(batch, device=inputs.device), last - warm  # T, counted from the first unrolled step
    features = model.drop(top[rows, end])
    features = model.proj(features) if model.proj is not None else features
    loss = F.cross_entropy(model.head(features), targets[rows, last], reduction="sum")  # rows are independent
    flat = [v for step in carried for v in step]  # W steps × (layers, and h and c for an LSTM), each (B, H)
    grads = torch.autograd.grad(loss, [top, *flat], materialize_grads=True)  # the last step's copies: zeros
    per_step = torch.stack(grads[1:]).view(len(carried), len(carried[0]), batch, -1)  # (W, S, B, H)
    squares = per_step.pow(2).sum(dim=(1, 3)).T  # (B, W): squared norm of the gradient at each carried state
    norms = torch.empty(batch, steps + 1, device=inputs.device, dtype=top.dtype)
    norms[:, 0] = grads[0][rows, end].norm(dim=-1)
    for k in range(1, steps + 1):
        norms[:, k] = squares[rows, end - k].sqrt()
    return norms.detach()


def curve_summary(norms: Tensor) -> dict[str, list[float]]:
    """Mean, standard deviation and the 10th, 50th and 90th percentiles over windows, per step back."""
    q = torch.quantile(norms, torch.tensor([0.1, 0.5, 0.9]), dim=0)
    return {
        "steps_back": list(range(norms.size(1))),
        "mean": norms.mean(0).tolist(),
        "std": norms.std(0, unbiased=False).tolist(),
        "p10": q[0].tolist(),
        "median": q[1].tolist(),
        "p90": q[2].tolist(),
    }


def parameter_gradients(
    model: RNNLanguageModel, windows: Any, *, batches: int, clip: float, seed: int = 0
) -> dict[str, Any]:
    """The training loss's gradient norm per parameter group on `batches` training-style batches, in
    train mode (dropout drawn from its own seeded generator), and the share --clip would clip."""
    groups, seen = parameter_groups(model), []
    was_training, state = model.training, None
    device = next(model.parameters()).device
    model.train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(seed)
        for window in islice(windows.epoch(0, seed=None), batches):
            model.zero_grad(set_to_none=True)
            nll, state = model.nll(
                window.inputs.to(device), window.targets.to(device), state if window.carry else None, PAD_ID
            )
            state = detach_state(state)
            nll.mean().backward()
            seen.append(group_norms(groups))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    names = [*groups, "total"]
    return {
        "batches": len(seen),
        "clip": clip,
        "clipped": sum(n["total"] > clip for n in seen) / len(seen) if clip else 0.0,
        "norms": {
            name: {"mean": sum(n[name] for n in seen) / len(seen), "max": max(n[name] for n in seen)} for name in names
        },
    }


@dataclass(frozen=True)
class GradientReport:
    """What `seqtext gradients` reports for one run on one text."""

    run: str
    model: dict[str, Any]  # cell, level, layers, hidden_dim, embed_dim
    data: str
    windows: int
    warmup: int
    through_time: dict[str, list[float]]  # steps_back, mean, std, p10, median, p90
    ratio: float  # mean ‖∂L_T/∂h_{T−steps}‖ ÷ mean ‖∂L_T/∂h_T‖
    parameters: dict[str, Any]  # batches, batch_size, bptt, clip, clipped, norms {group: {mean, max}}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gradients(
    source: Loaded | str | Path,
    data: str | Path,
    *,
    steps: int | None = None,
    windows: int = 64,
    batches: int = 16,
    clip: float | None = None,
    text_column: str | None = None,
) -> GradientReport:
    """Gradients through time of a language model on `data`, and its parameter-gradient norms.

    steps None: the run's --bptt (for a line model at most the median line). Batches use the run's
    --bptt and --batch-size; clip None: the run's --clip.
    """
    for flag, value, high in (("--windows", windows, MAX_PROBES), ("--batches", batches, MAX_PROBES)):
        check_range(flag.removeprefix("--"), value, 1, high)
    if steps is not None:
        check_range("steps", steps, 1, MAX_STEPS_BACK)
    if clip is not None:
        check_range("clip", check_finite("--clip", clip), 0, MAX_CLIP)
    lm = as_loaded(source, "lm", "gradients")
    recipe = read_train_config(lm.path) or TrainConfig()
    texts = read_texts(data, text_column)
    stream = lm.config.sample_by == "stream"
    try:
        probe = probe_windows(
            texts, lm.tokenizer, stream=stream, steps=steps, default=recipe.bptt, count=windows, source=str(data)
        )
    except CorpusError as exc:
        raise CorpusError(f"{exc}; lower --steps or give more text") from exc
    norms = state_gradient_norms(lm.model, probe)
    curve = curve_summary(norms)
    batched = lm_windows(texts, lm.tokenizer, stream=stream, bptt=recipe.bptt, batch_size=recipe.batch_size)
    limit = recipe.clip if clip is None else clip
    figures = parameter_gradients(lm.model, batched, batches=batches, clip=limit)
    config = lm.config
    return GradientReport(
        run=str(lm.path),
        model={k: getattr(config, k) for k in ("cell", "level", "layers", "hidden_dim", "embed_dim")},
        data=str(data),
        windows=len(norms),
        warmup=probe.warm,
        through_time=curve,
        ratio=curve["mean"][-1] / curve["mean"][0] if curve["mean"][0] > 0 else math.nan,
        parameters={"batch_size": recipe.batch_size, "bptt": recipe.bptt, **figures},
    )
