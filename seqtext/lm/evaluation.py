"""Language-model figures: loss, perplexity and bits per character.

Bits per character = total negative log-likelihood in bits ÷ characters of the evaluated text
(newlines included, predicted as <eos>), so character and word models compare on one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from seqtext.data import LineWindows, StreamWindows, count_characters, lm_windows
from seqtext.errors import CorpusError
from seqtext.models import RNNLanguageModel, detach_state
from seqtext.runs.loading import Loaded
from seqtext.runtime import autocast
from seqtext.tokenizer import PAD_ID

EVAL_LINES_PER_BATCH = 64
EVAL_STREAM_COLUMNS = 16  # parallel columns: each starts from a zero state (a few cold starts in 100k chars)


class Figures(Protocol):
    """Further figures reported beside the language model's own (the keyboard's)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LMMetrics:
    """Language-model figures on one text: nats per token, per-token perplexity, bits per character."""

    loss: float
    perplexity: float
    bits_per_char: float
    tokens: int
    characters: int
    keyboard: Figures | None = None  # seqtext.evaluate(..., keyboard=True): the typist simulation of the spec

    def to_dict(self) -> dict[str, Any]:
        figures = {name: value for name, value in self.__dict__.items() if name != "keyboard"}
        return {**figures, **(self.keyboard.to_dict() if self.keyboard else {})}


def eval_windows(texts: list[str], loaded_or_tokenizer: Any, *, stream: bool, bptt: int) -> StreamWindows | LineWindows:
    """Windows for evaluation: unshuffled, every token counted once."""
    tokenizer = getattr(loaded_or_tokenizer, "tokenizer", loaded_or_tokenizer)
    if stream:
        approx_tokens = sum(len(t) + 1 for t in texts)
        columns = max(1, min(EVAL_STREAM_COLUMNS, approx_tokens // (4 * bptt)))
        return lm_windows(texts, tokenizer, stream=True, bptt=bptt, batch_size=columns)
    return lm_windows(texts, tokenizer, stream=False, bptt=bptt, batch_size=EVAL_LINES_PER_BATCH)


@torch.inference_mode()
def lm_nll(
    model: RNNLanguageModel,
    windows: StreamWindows | LineWindows,
    device: torch.device,
    precision: str = "fp32",
) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and the number of predicted tokens, padding excluded."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for window in windows.epoch(0, seed=None):
        inputs, targets = window.inputs.to(device), window.targets.to(device)
        with autocast(device, precision):
            nll, new_state = model.nll(inputs, targets, state if window.carry else None, PAD_ID)  # (N,)
        state = detach_state(new_state)
        total += nll.sum().item()
        count += nll.numel()
    model.train(was_training)
    return total, count


def lm_metrics(nll: float, tokens: int, characters: int) -> LMMetrics:
    """Turn a summed NLL into the reported figures."""
    loss = nll / max(1, tokens)
    return LMMetrics(
        loss=loss,
        perplexity=math.exp(min(loss, 700.0)),
        bits_per_char=nll / math.log(2) / max(1, characters),
        tokens=tokens,
        characters=characters,
    )


def evaluate_lm(lm: Loaded, texts: list[str], *, bptt: int = 256) -> LMMetrics:
    """Evaluate a language model on documents read the way it was trained (lines or a stream)."""
    stream = lm.config.sample_by == "stream"
    windows = eval_windows(texts, lm.tokenizer, stream=stream, bptt=bptt)
    nll, tokens = lm_nll(lm.model, windows, lm.device)
    if tokens == 0:
        raise CorpusError("the evaluation text has no tokens; give a file with at least one non-empty line")
    lm.check_finite(torch.tensor(nll))  # finite but extreme weights can overflow
    return lm_metrics(nll, tokens, count_characters(texts, stream=stream))
