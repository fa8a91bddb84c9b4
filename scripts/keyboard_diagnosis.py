"""Per-word diagnosis for scripts/bench_keyboard.py: which validation words the recurrent model gets
at the first query and the n-gram misses (and the reverse), split by what explains them.

Each word gets the first cause that applies, in this order:
- oov: the word is outside the recurrent model's vocabulary (neither "▁word" nor "word" is a token);
- near_repeat: its line repeats a training line up to one word (same words, one replaced or none);
- first_word: the first word of its line (only punctuation such as ¿ ¡ before it);
- after_punctuation: the character before it (spaces skipped) is punctuation (a comma, a colon, …);
- name: capitalised in the middle of a sentence;
- rare: seen fewer than RARE times in the training text (a rare word or a rare inflection);
- other.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from seqtext.keyboard.completion import partial_word
from seqtext.keyboard.ngram import NgramModel

WORD = re.compile(r"\w+")
CAUSES = ("oov", "near_repeat", "first_word", "after_punctuation", "name", "rare", "other")
RARE = 5
HIGHEST = "\U0010ffff"


class NgramSuggester:
    """The n-gram alone as a keyboard: the words with the typed prefix, ranked by p(word | line so far)."""

    def __init__(self, model: NgramModel) -> None:
        self.model = model
        pairs = sorted((w, i) for i, w in enumerate(model.vocab) if WORD.fullmatch(w))
        self.words = [w for w, _ in pairs]
        self.ids = torch.tensor([i for _, i in pairs], dtype=torch.long)

    def __call__(self, typed: str, k: int = 3) -> list[str]:
        partial = partial_word(typed)
        line = typed[: len(typed) - len(partial)]
        dist = self.model.dist(self.model.history(line[line.rfind("\n") + 1 :]))
        lo = bisect_left(self.words, partial)
        hi = bisect_left(self.words, partial + HIGHEST, lo)
        if lo == hi:
            return []
        top = dist[self.ids[lo:hi]].topk(min(k + 1, hi - lo)).indices.tolist()
        return [w for w in (self.words[lo + i] for i in top) if w != partial][:k]


def _key(words: Sequence[str]) -> int:
    return hash(" ".join(words))


def repeat_index(train_lines: Sequence[str]) -> set[int]:
    """Hashes of every training line's words, and of each with one word replaced by a wildcard."""
    keys: set[int] = set()
    for line in train_lines:
        words = WORD.findall(line.lower())
        keys.add(_key(words))
        for i in range(len(words)):
            keys.add(_key([*words[:i], "*", *words[i + 1 :]]))
    return keys


def nearly_repeats(line: str, index: set[int]) -> bool:
    """True when the line's words equal a training line's, up to one replaced word."""
    words = WORD.findall(line.lower())
    if _key(words) in index:
        return True
    return any(_key([*words[:i], "*", *words[i + 1 :]]) in index for i in range(len(words)))


def cause_of(line: str, start: int, word: str, known: set[str], counts: Counter, repeats: bool) -> str:
    """Why a word might be easy for one model and hard for the other (the first cause that applies)."""
    before = line[:start].rstrip()
    if word not in known:
        return "oov"
    if repeats:
        return "near_repeat"
    if not WORD.search(before):
        return "first_word"
    if before and not WORD.match(before[-1]):
        return "after_punctuation"
    if word[:1].isupper():
        return "name"
    if counts[word] < RARE:
        return "rare"
    return "other"


def diagnose(
    systems: dict[str, Callable[[str, int], list[str]]],
    lines: Sequence[str],
    train_lines: Sequence[str],
    known: set[str],
    k: int = 3,
) -> dict:
    """Counts, per cause, of the validation words that each of two systems gets in its k suggestions
    at the first query (before the word's first letter) while the other does not."""
    (a, suggest_a), (b, suggest_b) = systems.items()
    counts = Counter(w for line in train_lines for w in WORD.findall(line))
    index = repeat_index(train_lines)
    table = {cause: Counter() for cause in CAUSES}
    for line in lines:
        repeats = nearly_repeats(line, index)
        for match in WORD.finditer(line):
            start, word = match.start(), match.group()
            hit_a = word in suggest_a(line[:start], k)[:k]
            hit_b = word in suggest_b(line[:start], k)[:k]
            row = table[cause_of(line, start, word, known, counts, repeats)]
            row["words"] += 1
            row[
                {(True, True): "both", (True, False): f"{a}_only", (False, True): f"{b}_only"}.get(
                    (hit_a, hit_b), "neither"
                )
            ] += 1
    columns = ("words", f"{a}_only", f"{b}_only", "both", "neither")
    result = {cause: {c: table[cause][c] for c in columns} for cause in CAUSES}
    total = {c: sum(result[cause][c] for cause in CAUSES) for c in columns}
    head = (
        f"| cause | words | {a} gets, {b} misses | {b} gets, {a} misses | both | neither |\n|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {cause} | " + " | ".join(f"{result[cause][c]:,}" for c in columns) + " |\n" for cause in (*CAUSES,)
    )
    body += "| total | " + " | ".join(f"{total[c]:,}" for c in columns) + " |\n"
    return {"k": k, "first_query": True, "causes": result, "total": total, "table_md": head + body}
