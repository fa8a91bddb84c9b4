"""Interpolated modified Kneser-Ney word n-grams (Chen & Goodman 1998), pruned to a size budget.

Tokens are words and single punctuation marks (`\\w+|[^\\w\\s]`), each line from `<s>` to `</s>`.
The top order counts n-grams; lower orders count the distinct words seen before them (continuation
counts), except for n-grams that start with `<s>`, which nothing can precede. Each order has three
discounts (for counts 1, 2 and 3+) from its count-of-counts. Every context h of order n stores

    p(w | h) = alpha(h, w) + gamma(h) · p(w | h without its first word),   sum over w = 1,

with the unigram level interpolated with the uniform distribution. Pruning drops the rarest
n-grams (by raw count, longest first) and gives their mass to gamma, so every distribution still
sums to 1. The model gives a dense next-word distribution over its vocabulary for a history in a
few vector operations, which the keyboard mixes with the recurrent model's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

TOKEN = re.compile(r"\w+|[^\w\s]")  # a word or one punctuation mark
BOS, EOS = "<s>", "</s>"
ENTRY_BYTES = 4 + 2  # a word id (int32) and its alpha (float16)
CONTEXT_BYTES = 2 + 4  # gamma (float16) and an offset (int32), besides 4 bytes per context word


def tokens_of(text: str) -> list[str]:
    """The n-gram's tokens of a piece of text (no <s> or </s>)."""
    return TOKEN.findall(text)


def modified_discounts(count_of_counts: Counter) -> tuple[float, float, float]:
    """D1, D2, D3+ from how many n-grams occur once, twice, three and four times (Chen & Goodman).

    Falls back to one discount n1 / (n1 + 2 n2) (or 0.5) where the counts are too few for three.
    """
    n1, n2, n3, n4 = (count_of_counts[i] for i in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
    if n1 and n2 and n3 and n4:
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if 0 < d[0] <= 1 and 0 < d[1] <= 2 and 0 < d[2] <= 3:
            return d
    y = min(max(y, 1e-3), 1.0)
    return (y, y, y)


@dataclass
class Order:
    """One order n ≥ 2: contexts (n − 1 word ids each), their gamma, and their words with alpha."""

    contexts: Tensor  # (C, n − 1) int32, one row per context
    gamma: Tensor  # (C,) float16
    offsets: Tensor  # (C + 1,) int32: context c owns entries offsets[c]:offsets[c + 1]
    words: Tensor  # (E,) int32
    alpha: Tensor  # (E,) float16
    lookup: dict[tuple[int, ...], int] = field(default_factory=dict)  # context → row

    def __post_init__(self) -> None:
        if not self.lookup:
            self.lookup = {tuple(row): i for i, row in enumerate(self.contexts.tolist())}
        self._offsets = self.offsets.tolist()
        self._alpha = self.alpha.float()
        self._words = self.words.long()


class NgramModel:
    """A built or loaded n-gram: its vocabulary, unigram distribution and one table per order ≥ 2."""

    def __init__(self, vocab: list[str], unigram: Tensor, orders: list[Order]) -> None:
        self.vocab = vocab  # ids index this list; "<s>" is id 0 and is never predicted
        self.ids = {word: i for i, word in enumerate(vocab)}
        self.unigram = unigram.float()  # (V,)
        self.tables = orders  # tables[i] is order i + 2
        self.order = len(orders) + 1
        self._cache: dict[tuple[int, ...], tuple[Tensor, int]] = {}

    def history(self, text: str) -> tuple[int, ...]:
        """The last order − 1 token ids of a line's beginning (from <s>); an unknown word is -1."""
        if self.order == 1:
            return ()
        tokens = [BOS, *tokens_of(text)][-(self.order - 1) :]
        return tuple(self.ids.get(t, -1) for t in tokens)

    def dist(self, history: tuple[int, ...]) -> Tensor:
        """p(· | history) over the vocabulary, (V,) float32, summing to 1 (cached for recent histories)."""
        return self.dist_and_order(history)[0]

    def dist_and_order(self, history: tuple[int, ...]) -> tuple[Tensor, int]:
        """p(· | history), and the longest n-gram order whose context the model knows (1: none)."""
        history = history[len(history) - self.order + 1 :] if self.order > 1 else ()
        hit = self._cache.get(history)
        if hit is not None:
            return hit
        p, matched = self.unigram.clone(), 1
        for n, table in enumerate(self.tables, start=2):
            if len(history) < n - 1:
                break
            row = table.lookup.get(history[len(history) - n + 1 :])
            if row is None:
                continue  # an unseen context: gamma 1, no alpha (its mass is all in the lower order)
            start, end = table._offsets[row], table._offsets[row + 1]
            p *= float(table.gamma[row])
            p.index_add_(0, table._words[start:end], table._alpha[start:end])
            matched = n
        p /= p.sum()  # alpha and gamma are stored in 16 bits: renormalise away their rounding
        if len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        self._cache[history] = (p, matched)
        return p, matched

    def prob(self, word: str, text: str) -> float:
        """p(word | the line so far), 0 for a word outside the vocabulary."""
        i = self.ids.get(word)
        return 0.0 if i is None else float(self.dist(self.history(text))[i])

    def size_bytes(self) -> int:
        """What the model takes on disk (its arrays; the vocabulary as UTF-8 text)."""
        size = sum(len(w.encode("utf-8")) + 1 for w in self.vocab) + 4 * len(self.vocab)
        for n, t in enumerate(self.tables, start=2):
            size += len(t.gamma) * (CONTEXT_BYTES + 4 * (n - 1)) + 4 + len(t.words) * ENTRY_BYTES
        return size


def _count(lines: Iterable[str], order: int) -> list[Counter]:
    """raw[n][ngram] for n = 1 … order (index 0 unused); n-grams are tuples of tokens."""
    raw: list[Counter] = [Counter() for _ in range(order + 1)]
    for line in lines:
        tokens = [BOS, *tokens_of(line), EOS]
        if len(tokens) == 2:
            continue  # blank line
        for n in range(1, order + 1):
            raw[n].update(zip(*(tokens[i:] for i in range(n)), strict=False))
    del raw[1][(BOS,)]  # <s> is a context, never a predicted word
    return raw


def _adjusted(raw: list[Counter], order: int) -> list[Counter]:
    """Raw counts at the top order and for n-grams from <s>; continuation counts elsewhere."""
    adjusted: list[Counter] = [Counter() for _ in range(order + 1)]
    adjusted[order] = raw[order]
    for n in range(order - 1, 0, -1):
        cont: Counter = Counter(g[1:] for g in raw[n + 1] if g[1:] in raw[n])
        adjusted[n] = Counter({g: (c if g[0] == BOS else cont[g]) for g, c in raw[n].items()})
    return adjusted


def _threshold(raw: list[Counter], order: int, vocab_bytes: int, budget: int | None) -> tuple[int, int]:
    """What raw count an n-gram (n ≥ 2) needs to be kept so that the model fits the budget.

    Returns (t, n): n-grams seen at least t times are kept, and those seen t − 1 times up to order n
    (the shorter ones first: they are more often used).
    """
    if budget is None:
        return 1, order
    by_count = [Counter(raw[n].values()) for n in range(order + 1)]
    contexts = [Counter() for _ in range(order + 1)]  # contexts[n][c]: contexts whose best n-gram has count c
    for n in range(2, order + 1):
        best: dict[tuple, int] = {}
        for g, c in raw[n].items():
            if c > best.get(g[:-1], 0):
                best[g[:-1]] = c
        contexts[n] = Counter(best.values())

    def size(n: int, t: int) -> int:  # order n's bytes when n-grams seen at least t times are kept
        entries = sum(k for c, k in by_count[n].items() if c >= t)
        return ENTRY_BYTES * entries + (CONTEXT_BYTES + 4 * (n - 1)) * sum(k for c, k in contexts[n].items() if c >= t)

    top = max((max(by_count[n], default=1) for n in range(2, order + 1)), default=1)
    for t in range(1, top + 2):
        at_t = vocab_bytes + sum(size(n, t) for n in range(2, order + 1))
        if at_t <= budget:
            if t == 1:
                return 1, order
            longest = 1  # also the n-grams seen t − 1 times, order by order, while they fit
            for n in range(2, order + 1):
                at_t += size(n, t - 1) - size(n, t)
                if at_t > budget:
                    break
                longest = n
            return t, longest
    return top + 1, 1  # nothing above the unigrams fits


def build_ngram(lines: Sequence[str], order: int = 4, *, budget_bytes: int | None = None, discounts=None) -> NgramModel:
    """Count, discount and prune an n-gram of `order` on lines of text.

    Args:
        budget_bytes: prune until `size_bytes()` fits (None: keep everything).
        discounts: fixed (D1, D2, D3+) for every order instead of the estimated ones (for tests).
    """
    raw = _count(lines, order)
    adjusted = _adjusted(raw, order)
    vocab = [BOS, *sorted({g[0] for g in raw[1]})]
    ids = {w: i for i, w in enumerate(vocab)}
    vocab_bytes = sum(len(w.encode("utf-8")) + 1 for w in vocab) + 4 * len(vocab)
    keep_from, longest = _threshold(raw, order, vocab_bytes, budget_bytes)
    d = [discounts or modified_discounts(Counter(adjusted[n].values())) for n in range(order + 1)]

    def discount(n: int, c: int) -> float:
        return d[n][min(c, 3) - 1]

    total1 = sum(adjusted[1].values())
    unigram = torch.zeros(len(vocab), dtype=torch.float64)
    left = 1.0
    for (w,), c in adjusted[1].items():
        unigram[ids[w]] = (c - discount(1, c)) / total1
        left -= float(unigram[ids[w]])
    unigram[1:] += left / (len(vocab) - 1)  # the unigram's gamma, spread uniformly (never on <s>)
    tables = []
    for n in range(2, order + 1):
        grouped: dict[tuple, list[tuple[str, int]]] = {}
        for g, c in adjusted[n].items():
            grouped.setdefault(g[:-1], []).append((g[-1], c))
        rows, gammas, offsets, words, alphas = [], [], [0], [], []
        for context in sorted(grouped, key=lambda h: [ids[w] for w in h]):
            followers = grouped[context]
            total = sum(c for _, c in followers)
            least = keep_from - 1 if n <= longest else keep_from
            kept = [(ids[w], (c - discount(n, c)) / total) for w, c in followers if raw[n][(*context, w)] >= least]
            if not kept:
                continue  # gamma would be 1: the same as an unseen context
            kept.sort()
            rows.append([ids[w] for w in context])
            gammas.append(1.0 - sum(a for _, a in kept))  # the pruned n-grams' mass moves to gamma
            words += [i for i, _ in kept]
            alphas += [a for _, a in kept]
            offsets.append(len(words))
        tables.append(
            Order(
                contexts=torch.tensor(rows, dtype=torch.int32).reshape(len(rows), n - 1),
                gamma=torch.tensor(gammas, dtype=torch.float16),
                offsets=torch.tensor(offsets, dtype=torch.int32),
                words=torch.tensor(words, dtype=torch.int32),
                alpha=torch.tensor(alphas, dtype=torch.float16),
            )
        )
    return NgramModel(vocab, unigram.float(), tables)
