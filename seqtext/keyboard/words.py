"""Words as the keyboard sees them: the spec's word (a maximal run of \\w), the partial word being
typed, accent and case folding, and a sorted index that finds every word with a given prefix.
Shared by the engine (completion.py), the n-gram mix and the personal model.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

WORD = re.compile(r"\w+")  # the spec's word: a maximal run of \w (Unicode letters, digits, _)
HIGHEST = "\U0010ffff"  # sorts after every character: [prefix, prefix + HIGHEST) is one bisect range
INEXACT_DISCOUNT = 0.1  # a match found only by ignoring accents/case ranks as if 10× less likely


@dataclass(frozen=True)
class Completion:
    """One suggestion: the whole word, and the probability that it is the next word (the model's, or
    its mix with the run's n-gram), which suggestions are ranked by.

    A word found only by ignoring accents or case ("nino" → "niño") is shown with INEXACT_DISCOUNT
    times its probability, and ranks by that: typing "m" is evidence against "Mary", so "mi" at 0.02
    comes before "Mary" at 0.12 × 0.1 = 0.012, and the probabilities shown are in the order shown.
    """

    word: str
    prob: float


def partial_word(typed: str) -> str:
    """The word being typed at the end of the text ('' after a space): its trailing run of \\w.

    Scans back from the end, so it costs the length of the word, not of the text (a regex search
    for \\w*\\Z would try every position of a long line).
    """
    start = len(typed)
    while start > 0 and (typed[start - 1].isalnum() or typed[start - 1] == "_"):  # exactly re's \w
        start -= 1
    return typed[start:]


def fold(text: str) -> str:
    """Lower case without accents, as a hurried typist types: 'Niño' → 'nino', 'Qué' → 'que'."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).lower()


def match_case(word: str, typed: str) -> str:
    """Show a word in the case the typist chose: 'Pe' → 'Perro', 'PE' → 'PERRO'."""
    if len(typed) > 1 and typed.isupper():
        return word.upper()
    if typed[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


def joins(char: str) -> bool:
    """True for characters that continue a word (so a tokenizer would merge across them)."""
    return bool(WORD.match(char)) or unicodedata.combining(char) > 0


class WordIndex:
    """Vocabulary words sorted by a key, so the words with a given key prefix are one bisect range."""

    def __init__(self, entries: list[tuple[str, str, int]]) -> None:  # (key, word, token id)
        entries.sort()
        self.keys = [key for key, _, _ in entries]
        self.words = [word for _, word, _ in entries]
        self.ids = torch.tensor([i for _, _, i in entries], dtype=torch.long)

    def best(self, probs: Tensor, prefix: str, n: int) -> list[tuple[str, float]]:
        """The n most likely words whose key starts with prefix, with their probabilities, best first. Of
        equally likely words, those first in key order: which of them are kept never depends on topk's
        order of ties, so every engine (a batch, the page's keyboard) keeps the same ones."""
        lo = bisect_left(self.keys, prefix)
        hi = bisect_left(self.keys, prefix + HIGHEST, lo)
        if lo == hi:
            return []
        values = probs[self.ids[lo:hi]]
        if hi - lo <= n:  # every word of the range is kept
            return self._ranked(lo, zip(values.tolist(), range(hi - lo), strict=True))
        top = values.topk(n)
        last = top.values[-1]
        if int((values >= last).sum()) == n:  # no word outside the top n ties with the last of them (the usual case)
            return self._ranked(lo, zip(top.values.tolist(), top.indices.tolist(), strict=True))
        above = (values > last).nonzero().flatten()
        tied = (values == last).nonzero().flatten()[: n - len(above)]
        kept = [*zip(values[above].tolist(), above.tolist(), strict=True), *((float(last), i) for i in tied.tolist())]
        return self._ranked(lo, kept)

    def _ranked(self, lo: int, kept: Iterable[tuple[float, int]]) -> list[tuple[str, float]]:
        """(word, probability) of the kept (probability, position from lo), best first, ties in key order."""
        return [(self.words[lo + i], p) for p, i in sorted(kept, key=lambda pair: (-pair[0], pair[1]))]


def word_indexes(words: Iterable[tuple[str, int]]) -> tuple[WordIndex, WordIndex]:
    """The exact index of (word, id) pairs, and the folded one (accents and case ignored: fold)."""
    pairs = list(words)
    return WordIndex([(w, w, i) for w, i in pairs]), WordIndex([(fold(w), w, i) for w, i in pairs])


class FixedWordIndex:
    """A WordIndex whose words have the same probabilities after every context (the lexicon's words: their
    share of the keyboard's mix never depends on the text), so the best words of a prefix are found once
    and kept: a keystroke then costs a dictionary lookup, not a pass over a large range of words."""

    def __init__(self, index: WordIndex, probs: Tensor, kept: int = 4096) -> None:
        self.index, self.probs, self.kept = index, probs, kept
        self._found: OrderedDict[tuple[str, int], list[tuple[str, float]]] = OrderedDict()

    def best(self, prefix: str, n: int) -> list[tuple[str, float]]:
        """WordIndex.best for these fixed probabilities (the answers of the `kept` latest prefixes remembered)."""
        key = (prefix, n)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self.index.best(self.probs, prefix, n)
            if len(self._found) > self.kept:
                self._found.popitem(last=False)
        else:
            self._found.move_to_end(key)
        return found
