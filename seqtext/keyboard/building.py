"""Build a run's n-gram after training: count the training text, prune to the size budget, save it
beside the model, and choose the mixing weight that gives the validation words the highest likelihood.

The order asked for is the highest one tried: pruning a 4-gram into the budget can cost more than its
longer contexts bring, while the 3-gram may fit whole. Both are built and the one whose mix gives
the validation words the higher likelihood is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from seqtext.config import KEYBOARD_MB
from seqtext.keyboard.completion import WORD, Completer
from seqtext.keyboard.ngram import NgramModel, build_ngram
from seqtext.keyboard.ngramfile import NGRAM_FILE, save_ngram
from seqtext.runs.loading import load
from seqtext.runs.saving import update_model_config

WEIGHTS = tuple(i / 20 for i in range(1, 20))  # the n-gram's share, tried on the validation words
MIN_NGRAM_MB = 1.0
MIN_BUCKET = 300  # validation words an order needs for a weight of its own
VALID_WORDS = 10_000  # enough for a weight per order (each ≥ MIN_BUCKET words); about 10 s of model steps


@dataclass(frozen=True)
class NgramSummary:
    """What was built: order, size on disk, the chosen weights and the validation figures behind them."""

    order: int
    mb: float
    weights: tuple[float, ...]  # the n-gram's share, by the longest context order it knows (1 … order)
    valid_words: int
    words_by_order: tuple[int, ...]  # validation words whose longest known context is of each order
    nats_per_word: dict[float, float]  # mean −log p(word) of the validation words with one weight for all
    nats_per_word_chosen: float  # the same with the chosen weights
    nats_by_order: dict[int, float]  # each order tried: its mix's nats per validation word, chosen weights


def keyboard_files_mb(run: Path) -> float:
    """Size of what the keyboard loads from a run: weights, tokenizer, configs and the n-gram if any."""
    names = ("model.safetensors", "tokenizer.json", "config.json", "train_config.json", NGRAM_FILE)
    return sum((run / n).stat().st_size for n in names if (run / n).is_file()) / 1e6


def ngram_budget(run: Path, ngram_mb: float | None) -> int:
    """Bytes the n-gram may take: --ngram-mb, else what keeps the keyboard within KEYBOARD_MB (≥ 1 MB)."""
    if ngram_mb is not None:
        return int(ngram_mb * 1e6)
    return int(max(MIN_NGRAM_MB, KEYBOARD_MB - keyboard_files_mb(run)) * 1e6)


def word_probs(completer: Completer, lines: Sequence[str], limit: int = VALID_WORDS) -> tuple[Tensor, Tensor, Tensor]:
    """For each word of `lines` where the typist starts it: p_model, p_ngram and the longest context
    order the n-gram knows there (the completer's mixer parts)."""
    mixer = completer.mixer
    assert mixer is not None
    index = {w: i for i, w in enumerate(mixer.words)}
    model, ngram, orders = [], [], []
    for line in lines:
        for match in WORD.finditer(line):
            u = index.get(match.group())
            if u is None:
                continue  # neither model knows it: the same for every weight
            context = line[: match.start()]
            marked = context.endswith(" ")
            probs = completer.reader.read(context[:-1] if marked else context).dist
            part, matched = mixer.ngram_part(context)
            model.append(float(mixer.model_part(probs, part, marked)[u]))
            ngram.append(float(part[u]))
            orders.append(matched)
            if len(model) >= limit:
                break
        if len(model) >= limit:
            break
    return torch.tensor(model, dtype=torch.float64), torch.tensor(ngram, dtype=torch.float64), torch.tensor(orders)


def _nats(model: Tensor, ngram: Tensor, weight: float | Tensor) -> float:
    """Mean −log p(word) of the mix with the n-gram's share `weight` (one for all, or one per word)."""
    return float(-torch.log((1 - weight) * model + weight * ngram + 1e-12).mean())


def choose_weights(completer: Completer, lines: Sequence[str], order: int) -> dict:
    """The n-gram share (of WEIGHTS) for each longest known context order that gives the validation
    words the highest mean log-likelihood; an order with fewer than MIN_BUCKET words takes the overall best."""
    model, ngram, orders = word_probs(completer, lines)
    if not len(model):
        return {"weights": (0.5,) * order, "nats": {}, "words": 0, "by_order": (0,) * order, "chosen": math.nan}
    nats = {w: _nats(model, ngram, w) for w in WEIGHTS}
    overall = min(nats, key=nats.__getitem__)
    weights, counts = [], []
    for n in range(1, order + 1):
        at = orders == n
        counts.append(int(at.sum()))
        best = overall
        if counts[-1] >= MIN_BUCKET:
            best = min(WEIGHTS, key=lambda w: _nats(model[at], ngram[at], w))
        weights.append(best)
    mixed = _nats(model, ngram, torch.tensor(weights, dtype=torch.float64)[orders - 1])
    return {"weights": tuple(weights), "nats": nats, "words": len(model), "by_order": tuple(counts), "chosen": mixed}


def build_run_ngram(
    run: Path, train_texts: Sequence[str], valid_texts: Sequence[str], order: int, ngram_mb: float | None
) -> NgramSummary:
    """Build, weigh and save the n-gram of a finished word-level run (of `order` or the order below,
    whichever mixes better on the validation text); its config gets the weights."""
    lm = load(run)
    lines = [line for text in train_texts for line in text.split("\n")]
    valid_lines = [line for text in valid_texts for line in text.split("\n") if line.strip()]
    budget = ngram_budget(run, ngram_mb)
    completer = Completer(lm, ngram=False)
    tried: dict[int, tuple[NgramModel, dict]] = {}
    for n in range(order - 1 if order >= 3 else order, order + 1):
        model = build_ngram(lines, n, budget_bytes=budget)
        completer.use_ngram(model, (0.5,) * model.order)
        tried[n] = (model, choose_weights(completer, valid_lines, model.order))
    best = min(tried, key=lambda n: (tried[n][1]["chosen"] if tried[n][1]["words"] else 0.0, -n))
    model, chosen = tried[best]
    save_ngram(run, model, lm.tokenizer)
    update_model_config(run, replace(lm.config, ngram_weights=chosen["weights"]))
    return NgramSummary(
        order=model.order,
        mb=(run / NGRAM_FILE).stat().st_size / 1e6,
        weights=chosen["weights"],
        valid_words=chosen["words"],
        words_by_order=chosen["by_order"],
        nats_per_word={w: round(n, 5) for w, n in chosen["nats"].items()},
        nats_per_word_chosen=round(chosen["chosen"], 5),
        nats_by_order={n: round(c["chosen"], 5) for n, (_, c) in tried.items()},
    )
