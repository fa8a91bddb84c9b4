"""Build a run's n-gram after training: count the training text, prune to the size budget, save it
beside the model, and choose the mixing weight that gives the validation words the highest likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from seqtext import checkpoint
from seqtext.config import KEYBOARD_MB
from seqtext.keyboard.completion import WORD, Completer
from seqtext.keyboard.ngram import NgramModel, build_ngram
from seqtext.keyboard.ngramfile import NGRAM_FILE, save_ngram

WEIGHTS = tuple(i / 20 for i in range(1, 20))  # the n-gram's share, tried on the validation words
MIN_NGRAM_MB = 1.0
VALID_WORDS = 20_000  # enough to tell the weights apart within a few hundredths; a few seconds of model steps


@dataclass(frozen=True)
class NgramSummary:
    """What was built: order, size on disk, the chosen weight and the validation figures behind it."""

    order: int
    mb: float
    weight: float
    valid_words: int
    nats_per_word: dict[float, float]  # mean −log p(word) of the validation words, per weight tried


def keyboard_files_mb(run: Path) -> float:
    """Size of what the keyboard loads from a run: weights, tokenizer, configs and the n-gram if any."""
    names = ("model.safetensors", "tokenizer.json", "config.json", NGRAM_FILE)
    return sum((run / n).stat().st_size for n in names if (run / n).is_file()) / 1e6


def ngram_budget(run: Path, ngram_mb: float | None) -> int:
    """Bytes the n-gram may take: --ngram-mb, else what keeps the keyboard within KEYBOARD_MB (≥ 1 MB)."""
    if ngram_mb is not None:
        return int(ngram_mb * 1e6)
    return int(max(MIN_NGRAM_MB, KEYBOARD_MB - keyboard_files_mb(run)) * 1e6)


def word_probs(
    completer: Completer, lines: Sequence[str], limit: int = VALID_WORDS
) -> tuple[torch.Tensor, torch.Tensor]:
    """p_model and p_ngram of each word of `lines` where the typist starts it (the completer's mixer parts)."""
    mixer = completer.mixer
    assert mixer is not None
    index = {w: i for i, w in enumerate(mixer.words)}
    model, ngram = [], []
    for line in lines:
        for match in WORD.finditer(line):
            u = index.get(match.group())
            if u is None:
                continue  # neither model knows it: the same for every weight
            context = line[: match.start()]
            marked = context.endswith(" ")
            probs = completer._read(context[:-1] if marked else context).dist
            part = mixer.ngram_part(context)
            model.append(float(mixer.model_part(probs, part, marked)[u]))
            ngram.append(float(part[u]))
            if len(model) >= limit:
                return torch.tensor(model), torch.tensor(ngram)
    return torch.tensor(model, dtype=torch.float64), torch.tensor(ngram, dtype=torch.float64)


def choose_weight(completer: Completer, lines: Sequence[str]) -> tuple[float, dict[float, float], int]:
    """The n-gram share (of WEIGHTS) that gives the validation words the highest mean log-likelihood."""
    model, ngram = word_probs(completer, lines)
    if not len(model):
        return 0.5, {}, 0
    nats = {w: float(-torch.log((1 - w) * model.double() + w * ngram.double() + 1e-12).mean()) for w in WEIGHTS}
    return min(nats, key=nats.__getitem__), nats, len(model)


def build_run_ngram(
    run: Path, train_texts: Sequence[str], valid_texts: Sequence[str], order: int, ngram_mb: float | None
) -> NgramSummary:
    """Build, save and weigh the n-gram of a finished word-level run; its config gets the weight."""
    lm = checkpoint.load(run)
    lines = [line for text in train_texts for line in text.split("\n")]
    model: NgramModel = build_ngram(lines, order, budget_bytes=ngram_budget(run, ngram_mb))
    save_ngram(run, model, lm.tokenizer)
    completer = Completer(lm, ngram=False)
    completer.use_ngram(model, 0.5)
    valid_lines = [line for text in valid_texts for line in text.split("\n") if line.strip()]
    weight, nats, words = choose_weight(completer, valid_lines)
    checkpoint.update_model_config(run, replace(lm.config, ngram_weight=weight))
    mb = (run / NGRAM_FILE).stat().st_size / 1e6
    return NgramSummary(order, mb, weight, words, {w: round(n, 5) if math.isfinite(n) else n for w, n in nats.items()})
