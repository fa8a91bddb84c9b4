"""Build a run's n-gram after training: count the training text, prune to the size budget, save it
beside the model, and choose the mixing weight that gives the validation words the highest likelihood.

The order asked for is the highest one tried: pruning a 4-gram into the budget can cost more than its
longer contexts bring, while the 3-gram may fit whole. Both are built and the one whose mix gives
the validation words the higher likelihood is kept. With a lexicon (--lexicon), its share is then
chosen the same way, on the validation words, the words that only it knows included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from seqtext.keyboard.completion import WORD, Completer
from seqtext.keyboard.lexicon import LEXICON_FILE, Lexicon
from seqtext.keyboard.memory import MEMORY_FILE, build_memory, save_memory, vocabulary
from seqtext.keyboard.ngram import NgramModel, build_ngram
from seqtext.keyboard.ngramfile import NGRAM_FILE, save_ngram
from seqtext.limits import KEYBOARD_MB, MEMORY_BUCKETS
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
    oov_weights: tuple[float, ...] = ()  # the n-gram's share for the words the model lacks (empty: weights)
    memory_weights: tuple[float, ...] = ()  # the sentence memory's share by bucket (empty: no memory)
    memory_mb: float = 0.0
    fitted_lines: int = 0  # the validation lines the weights were chosen on (the first ones; the rest held out)


def keyboard_files_mb(run: Path, ngram: bool = True) -> float:
    """Size of what the keyboard loads from a run: weights, tokenizer, configs, lexicon, (ngram) n-gram if any."""
    names = ["model.safetensors", "tokenizer.json", "config.json", "train_config.json", LEXICON_FILE, MEMORY_FILE]
    names += [NGRAM_FILE] * ngram
    return sum((run / n).stat().st_size for n in names if (run / n).is_file()) / 1e6


def ngram_budget(run: Path, ngram_mb: float | None) -> int:
    """Bytes the n-gram may take: --ngram-mb, else what keeps the keyboard within KEYBOARD_MB (≥ 1 MB).
    An n-gram already there (an interrupted build, redone on --resume) is to be replaced: it does not count."""
    if ngram_mb is not None:
        return int(ngram_mb * 1e6)
    return int(max(MIN_NGRAM_MB, KEYBOARD_MB - keyboard_files_mb(run, ngram=False)) * 1e6)


def fitted_lines(lines: Sequence[str], words: int = VALID_WORDS) -> int:
    """How many of the validation lines the weights are chosen on: whole lines, until `words` words.
    The lines after them are held out (scripts/bench_keyboard.py --held-out measures on those)."""
    seen = 0
    for i, line in enumerate(lines):
        seen += len(WORD.findall(line))
        if seen >= words:
            return i + 1
    return len(lines)


def word_probs(completer: Completer, lines: Sequence[str]) -> dict[str, Tensor]:
    """For each word of the fitted lines where the typist starts it (the words some part knows): p_model,
    p_ngram, the longest context order the n-gram knows there, p_lexicon, whether the model lacks the word,
    P_ngram − P_model of all the words it lacks there, the memory's bucket (-1: none) and p_memory."""
    mixer = completer.mixer
    assert mixer is not None
    index = {w: i for i, w in enumerate(mixer.words)}
    rows: list[tuple[float, ...]] = []
    for line in lines[: fitted_lines(lines)]:
        for match in WORD.finditer(line):
            u = index.get(match.group())
            if u is None:
                continue  # no part knows it: the same for every weight
            context = line[: match.start()]
            marked = context.endswith(" ")
            probs = completer.reader.read(context[:-1] if marked else context).dist
            part, matched = mixer.ngram_part(context)
            model, lacks = mixer.model_part(probs, part, marked), mixer.lacks[marked]
            bucket, remembered = -1, 0.0
            found = mixer.memory.next_tokens(context) if mixer.memory is not None else None
            if found is not None:
                bucket, total, follow = found
                remembered = follow.get(mixer.ngram.ids.get(match.group(), -1), 0) / total
            gap = float(part[lacks].sum()) - float(model[lacks].sum())
            if u < mixer.known:
                p_model, p_ngram, lacked = model[u], part[u], lacks[u]
            else:  # a lexicon word: neither model gives it any
                p_model, p_ngram, lacked = 0.0, 0.0, True
            rows.append((p_model, p_ngram, matched, mixer.lexicon[u], lacked, gap, bucket, remembered))  # type: ignore[arg-type]
    columns = list(zip(*rows, strict=True)) or [()] * 8
    names = ("model", "ngram", "orders", "lexicon", "lacks", "gap", "buckets", "memory")
    wholes = {"orders", "buckets"}
    return {
        name: torch.tensor([float(v) for v in column], dtype=torch.float64).long()
        if name in wholes
        else torch.tensor([float(v) for v in column], dtype=torch.float64)
        for name, column in zip(names, columns, strict=True)
    }


def _nats(p: Tensor) -> float:
    """Mean −log p(word)."""
    return float(-torch.log(p + 1e-12).mean())


def _best(candidates: Sequence[float], mixed: Callable[[float], Tensor]) -> float:
    """The candidate weight whose mix gives the words the lowest mean −log p."""
    return min(candidates, key=lambda w: _nats(mixed(w)))


def _linear(candidates: Sequence[float], first: Tensor, second: Tensor) -> float:
    """The candidate w of the best (1 − w) · first + w · second."""
    return _best(candidates, lambda w: (1 - w) * first + w * second)


def _oov_mix(model: Tensor, ngram: Tensor, lacks: Tensor, gap: Tensor, weight: float, oov: float) -> Tensor:
    """The mix with the share `oov` for the words the model lacks, renormalised (seqtext.keyboard.mixing)."""
    plain = (1 - weight) * model + weight * ngram
    return torch.where(lacks, (1 - oov) * model + oov * ngram, plain) / (1 + (oov - weight) * gap)


def choose_weights(completer: Completer, lines: Sequence[str], order: int) -> dict:
    """The n-gram share (of WEIGHTS) for each longest known context order that gives the validation
    words the highest mean log-likelihood; an order with fewer than MIN_BUCKET words takes the overall best.
    Then, order by order, the share for the words the model lacks (where MIN_BUCKET of them are seen; else
    one share fitted on all of them);
    with a memory, its share for each bucket (MIN_BUCKET words; fewer: the share of all its words); with
    a lexicon in the mix, then its share (of LEXICON_WEIGHTS), on every word that any part knows."""
    f = word_probs(completer, lines)
    known = (f["model"] + f["ngram"]) > 0  # the words only the lexicon knows weigh its share alone
    k = {name: column[known] for name, column in f.items()}
    model, ngram, orders = k["model"], k["ngram"], k["orders"]
    if not len(model):
        none = {"weights": (0.5,) * order, "nats": {}, "words": 0, "by_order": (0,) * order, "chosen": math.nan}
        return none | {"lexicon_weight": 0.0, "lexicon_words": 0, "oov_weights": (), "memory_weights": ()}
    nats = {w: _nats((1 - w) * model + w * ngram) for w in WEIGHTS}  # one weight for all
    overall = min(nats, key=nats.__getitem__)
    weights, oov_weights, counts = [], [], []
    for n in range(1, order + 1):
        at = orders == n
        counts.append(int(at.sum()))
        best = overall
        if counts[-1] >= MIN_BUCKET:
            best = _linear(WEIGHTS, model[at], ngram[at])
        weights.append(best)
    # The words the model lacks: a share of their own, order by order where MIN_BUCKET of them are seen, else
    # one for every order (fitted on all of them, where MIN_BUCKET are), else the order's own
    w = torch.tensor(weights, dtype=torch.float64)
    lacks, every = k["lacks"] > 0, w[orders - 1]
    pooled = None
    if int(lacks.sum()) >= MIN_BUCKET:
        pooled = min(WEIGHTS, key=lambda o: _nats(_oov_mix(model, ngram, lacks, k["gap"], every, o)))
    for n in range(1, order + 1):
        at = orders == n
        parts = model[at], ngram[at], lacks[at], k["gap"][at], weights[n - 1]
        if int(parts[2].sum()) >= MIN_BUCKET:
            oov_weights.append(min(WEIGHTS, key=lambda o: _nats(_oov_mix(*parts, o))))
        else:
            oov_weights.append(weights[n - 1] if pooled is None else pooled)
    w = w[f["orders"] - 1]
    o = torch.tensor(oov_weights, dtype=torch.float64)[f["orders"] - 1]
    mixed = _oov_mix(f["model"], f["ngram"], f["lacks"] > 0, f["gap"], w, o)  # 0 for the lexicon's own words
    memory_weights: tuple[float, ...] = ()
    if completer.mixer is not None and completer.mixer.memory is not None:
        mixed, memory_weights = _memory_weights(mixed, f["memory"], f["buckets"], known)
    chosen = {"weights": tuple(weights), "nats": nats, "words": len(model), "by_order": tuple(counts)}
    chosen |= {"oov_weights": tuple(oov_weights) if oov_weights != weights else (), "memory_weights": memory_weights}
    chosen |= {"chosen": _nats(mixed[known]), "lexicon_weight": 0.0, "lexicon_words": 0}
    if completer.mixer is not None and completer.mixer.lexicon_weight:
        mu = _linear(LEXICON_WEIGHTS, mixed, f["lexicon"])
        chosen |= {"lexicon_weight": mu, "lexicon_words": int((~known).sum())}
    return chosen


def _memory_weights(mixed: Tensor, memory: Tensor, buckets: Tensor, known: Tensor) -> tuple[Tensor, tuple[float, ...]]:
    """The memory's share for each bucket (of WEIGHTS, or 0), and the mix with it."""
    matched = (buckets >= 0) & known
    pooled = _linear((0.0, *WEIGHTS), mixed[matched], memory[matched]) if matched.any() else 0.0
    shares = []
    for b in range(MEMORY_BUCKETS):
        at = (buckets == b) & known
        shares.append(_linear((0.0, *WEIGHTS), mixed[at], memory[at]) if int(at.sum()) >= MIN_BUCKET else pooled)
    nu = torch.tensor([0.0, *shares], dtype=torch.float64)[buckets + 1]
    return (1 - nu) * mixed + nu * memory, tuple(shares)


def build_run_ngram(
    run: Path,
    train_texts: Sequence[str],
    valid_texts: Sequence[str],
    order: int,
    ngram_mb: float | None,
    lexicon: Lexicon | None = None,
    memory: bool = False,
) -> NgramSummary:
    """Build, weigh and save the n-gram of a finished word-level run (of `order` or the order below,
    whichever mixes better on the validation text); its config gets the weights (and the share of
    `lexicon`, already saved in the run, when given). memory: also the memory of the training lines
    (saved first: the n-gram's budget is what it leaves), kept when some bucket gives it a share."""
    lm = load(run)
    lines = [line for text in train_texts for line in text.split("\n")]
    valid_lines = [line for text in valid_texts for line in text.split("\n") if line.strip()]
    remembered = build_memory(lines, vocabulary(lines)) if memory else None
    if remembered is not None:
        save_memory(run, remembered)
    budget = ngram_budget(run, ngram_mb)
    completer = Completer(lm, ngram=False, int8=False)
    tried: dict[int, tuple[NgramModel, dict]] = {}
    for n in range(order - 1 if order >= 3 else order, order + 1):
        model = build_ngram(lines, n, budget_bytes=budget)
        shares = (0.5,) * MEMORY_BUCKETS if remembered is not None else ()
        completer.use_ngram(model, (0.5,) * model.order, lexicon, 0.5 * (lexicon is not None), (), remembered, shares)
        tried[n] = (model, choose_weights(completer, valid_lines, model.order))
    best = min(tried, key=lambda n: (tried[n][1]["chosen"] if tried[n][1]["words"] else 0.0, -n))
    model, chosen = tried[best]
    save_ngram(run, model, lm.tokenizer)
    if remembered is not None and not any(chosen["memory_weights"]):
        (run / MEMORY_FILE).unlink()  # no bucket gives it a share: the keyboard loads nothing it does not use
        chosen["memory_weights"] = ()
    config = replace(
        lm.config,
        ngram_weights=chosen["weights"],
        lexicon_weight=chosen["lexicon_weight"],
        ngram_oov_weights=chosen["oov_weights"],
        memory_weights=chosen["memory_weights"],
    )
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
        oov_weights=chosen["oov_weights"],
        memory_weights=chosen["memory_weights"],
        memory_mb=(run / MEMORY_FILE).stat().st_size / 1e6 if chosen["memory_weights"] else 0.0,
        fitted_lines=fitted_lines(valid_lines),
    )
