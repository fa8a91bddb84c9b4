"""Build a run's n-gram after training: count the training text, prune to the size budget, save it
beside the model, and choose the mixing weight that gives the validation words the highest likelihood.

The order asked for is the highest one tried: pruning a 4-gram into the budget can cost more than its
longer contexts bring, while the 3-gram may fit whole. Both are built and the one whose mix gives
the validation words the higher likelihood is kept. With a lexicon (--lexicon), its share is then
chosen the same way, on the validation words, the words that only it knows included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from seqtext.keyboard.completion import WORD, Completer
from seqtext.keyboard.lexicon import LEXICON_FILE, Lexicon
from seqtext.keyboard.ngram import NgramModel, build_ngram
from seqtext.keyboard.ngramfile import NGRAM_FILE, save_ngram
from seqtext.limits import KEYBOARD_MB
from seqtext.runs.loading import load
from seqtext.runs.saving import update_model_config

WEIGHTS = tuple(i / 20 for i in range(1, 20))  # the n-gram's share, tried on the validation words
LEXICON_WEIGHTS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)  # the lexicon's share, tried likewise
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
    lexicon_weight: float = 0.0  # the lexicon's share (0: no lexicon)
    lexicon_words: int = 0  # validation words that only the lexicon knows


def keyboard_files_mb(run: Path, ngram: bool = True) -> float:
    """Size of what the keyboard loads from a run: weights, tokenizer, configs, lexicon, (ngram) n-gram if any."""
    names = ["model.safetensors", "tokenizer.json", "config.json", "train_config.json", LEXICON_FILE]
    names += [NGRAM_FILE] * ngram
    return sum((run / n).stat().st_size for n in names if (run / n).is_file()) / 1e6


def ngram_budget(run: Path, ngram_mb: float | None) -> int:
    """Bytes the n-gram may take: --ngram-mb, else what keeps the keyboard within KEYBOARD_MB (≥ 1 MB).
    An n-gram already there (an interrupted build, redone on --resume) is to be replaced: it does not count."""
    if ngram_mb is not None:
        return int(ngram_mb * 1e6)
    return int(max(MIN_NGRAM_MB, KEYBOARD_MB - keyboard_files_mb(run, ngram=False)) * 1e6)


def word_probs(
    completer: Completer, lines: Sequence[str], limit: int = VALID_WORDS
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For each word of `lines` where the typist starts it: p_model, p_ngram, the longest context
    order the n-gram knows there and p_lexicon (the completer's mixer parts)."""
    mixer = completer.mixer
    assert mixer is not None
    index = {w: i for i, w in enumerate(mixer.words)}
    model, ngram, orders, lexicon = [], [], [], []
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
            lexicon.append(float(mixer.lexicon[u]))
            if len(model) >= limit:
                break
        if len(model) >= limit:
            break
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    return as_tensor(model), as_tensor(ngram), torch.tensor(orders), as_tensor(lexicon)


def _nats(model: Tensor, ngram: Tensor, weight: float | Tensor) -> float:
    """Mean −log p(word) of the mix with the n-gram's share `weight` (one for all, or one per word)."""
    return float(-torch.log((1 - weight) * model + weight * ngram + 1e-12).mean())


def choose_weights(completer: Completer, lines: Sequence[str], order: int) -> dict:
    """The n-gram share (of WEIGHTS) for each longest known context order that gives the validation
    words the highest mean log-likelihood; an order with fewer than MIN_BUCKET words takes the overall best.
    With a lexicon in the mix, then its share (of LEXICON_WEIGHTS), on every word that any part knows."""
    all_model, all_ngram, all_orders, lexicon = word_probs(completer, lines)
    known = (all_model + all_ngram) > 0  # the words only the lexicon knows weigh its share alone
    model, ngram, orders = all_model[known], all_ngram[known], all_orders[known]
    if not len(model):
        none = {"weights": (0.5,) * order, "nats": {}, "words": 0, "by_order": (0,) * order, "chosen": math.nan}
        return none | {"lexicon_weight": 0.0, "lexicon_words": 0}
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
    by_word = torch.tensor(weights, dtype=torch.float64)[all_orders - 1]
    mixed = (1 - by_word) * all_model + by_word * all_ngram  # 0 for the lexicon's own words
    chosen = {"weights": tuple(weights), "nats": nats, "words": len(model), "by_order": tuple(counts)}
    chosen |= {"chosen": float(-torch.log(mixed[known] + 1e-12).mean()), "lexicon_weight": 0.0, "lexicon_words": 0}
    if completer.mixer is not None and completer.mixer.lexicon_weight:
        mu = min(LEXICON_WEIGHTS, key=lambda w: _nats(mixed, lexicon, w))
        chosen |= {"lexicon_weight": mu, "lexicon_words": int((~known).sum())}
    return chosen


def build_run_ngram(
    run: Path,
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    order: int,
    ngram_mb: float | None,
    lexicon: Lexicon | None = None,
) -> NgramSummary:
    """Build, weigh and save the n-gram of a finished word-level run (of `order` or the order below,
    whichever mixes better on the validation text); its config gets the weights (and the share of
    `lexicon`, already saved in the run, when given)."""
    lm = load(run)
    lines = [line for text in train_texts for line in text.split("\n")]
    valid_lines = [line for text in valid_texts for line in text.split("\n") if line.strip()]
    budget = ngram_budget(run, ngram_mb)
    completer = Completer(lm, ngram=False, int8=False)
    tried: dict[int, tuple[NgramModel, dict]] = {}
    for n in range(order - 1 if order >= 3 else order, order + 1):
        model = build_ngram(lines, n, budget_bytes=budget)
        completer.use_ngram(model, (0.5,) * model.order, lexicon, 0.5 if lexicon is not None else 0.0)
        tried[n] = (model, choose_weights(completer, valid_lines, model.order))
    best = min(tried, key=lambda n: (tried[n][1]["chosen"] if tried[n][1]["words"] else 0.0, -n))
    model, chosen = tried[best]
    save_ngram(run, model, lm.tokenizer)
    config = replace(lm.config, ngram_weights=chosen["weights"], lexicon_weight=chosen["lexicon_weight"])
    update_model_config(run, config)
    return NgramSummary(
        order=model.order,
        mb=(run / NGRAM_FILE).stat().st_size / 1e6,
        weights=chosen["weights"],
        valid_words=chosen["words"],
        words_by_order=chosen["by_order"],
        nats_per_word={w: round(n, 5) for w, n in chosen["nats"].items()},
        nats_per_word_chosen=round(chosen["chosen"], 5),
        nats_by_order={n: round(c["chosen"], 5) for n, (_, c) in tried.items()},
        lexicon_weight=chosen["lexicon_weight"],
        lexicon_words=chosen["lexicon_words"],
    )
