"""The typist of docs/keystroke-savings.md: type a text word by word, take a suggestion as soon as
it is offered, and count keystrokes, first-query hits and the time of every call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from seqtext.errors import ConfigError
from seqtext.keyboard.completion import WORD


@dataclass(frozen=True)
class KeyboardMetrics:
    """The typist simulation of docs/keystroke-savings.md on one text."""

    ksr: float  # keystroke savings rate: 1 − keystrokes / characters
    next_word_top1: float
    next_word_topk: float
    k: int
    latency_ms_p50: float
    latency_ms_p99: float
    keystrokes: int
    characters: int  # the lines' lengths without newlines, blank lines skipped
    words: int
    calls: int

    def to_dict(self) -> dict[str, Any]:
        figures = dict(self.__dict__)
        figures[f"next_word_top{self.k}"] = figures.pop("next_word_topk")  # next_word_top3 for k = 3
        figures["keyboard_characters"] = figures.pop("characters")  # beside the LM's characters (with newlines)
        return figures


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def simulate_typing(suggest: Callable[[str, int], Sequence[str]], lines: Iterable[str], k: int = 3) -> KeyboardMetrics:
    """Type every non-blank line as the spec's typist does, asking `suggest(typed, k)` before each
    character of each word; count keystrokes, first-query hits and the wall time of every call."""
    if k < 1:
        raise ConfigError(f"--k must be at least 1 (got {k})")
    keystrokes = characters = words = top1 = topk = 0
    latencies: list[float] = []
    for line in lines:
        if not line.strip():
            continue
        characters += len(line)
        typed_to = 0  # how much of the line is typed (a selection may also type the following space)
        for match in WORD.finditer(line):
            start, end, word = match.start(), match.end(), match.group()
            keystrokes += start - typed_to  # separators: one key each
            typed_to, words = end, words + 1
            for i in range(len(word)):
                began = time.perf_counter()
                shown = list(suggest(line[: start + i], k))[:k]
                latencies.append(time.perf_counter() - began)
                keystrokes += 1  # select the word, or type its next character
                if i == 0:
                    top1 += shown[:1] == [word]
                    topk += word in shown
                if word in shown:
                    typed_to = end + 1 if line[end : end + 1] == " " else end
                    break
        keystrokes += len(line) - typed_to
    return KeyboardMetrics(
        ksr=1 - keystrokes / characters if characters else 0.0,
        next_word_top1=top1 / words if words else 0.0,
        next_word_topk=topk / words if words else 0.0,
        k=k,
        latency_ms_p50=1000 * percentile(latencies, 50),
        latency_ms_p99=1000 * percentile(latencies, 99),
        keystrokes=keystrokes,
        characters=characters,
        words=words,
        calls=len(latencies),
    )
