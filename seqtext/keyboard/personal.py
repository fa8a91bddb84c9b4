"""The keyboard's personal model: the words and word pairs its user has typed, mixed into the ranking.

A real keyboard learns its user's names, places and expressions. This is a small personal n-gram:
how often each word was typed, and which word followed which (Witten-Bell interpolation of the two).
The completer mixes it linearly with the language model's next-word probability,

    p(w) = (1 − λ) · p_model(w) + λ · p_personal(w),   λ = PERSONAL_WEIGHT (chosen by measurement,
                                                       scripts/bench_keyboard.py --personal)

and a word the user typed is offered even when the model's vocabulary lacks it ("Zorbaxa").

The data is the user's, so it lives apart from the model: one plain JSON file (default
`default_user_data()`, under the user's data directory), inspectable and editable by hand, and
removed by `forget()`; seqtext.keyboard.userdata reads and writes it. A learned line is written at
once, or within `save_delay` seconds of the previous write when lines come faster (a pipe, a busy
server): a kill, even SIGKILL, loses at most the lines of that last delay. Each write merges what
this model learned since its last write into what is on disk, so several processes learning into
one file lose nothing. A damaged file is refused with a one-line error and left exactly as it is;
the model is never touched.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
import unicodedata
from bisect import bisect_left, insort
from collections import Counter
from pathlib import Path

from seqtext.errors import SeqtextError
from seqtext.keyboard.userdata import MAX_COUNT, Counts, UserData, default_user_data, forget_file
from seqtext.keyboard.words import WORD, fold

__all__ = ["PersonalModel", "default_user_data", "forget_file", "mix", "words_with_context"]

PERSONAL_WEIGHT = 0.1  # λ: the largest gain costing Tatoeba ≤ 0.5 pts, scripts/bench_keyboard.py --personal
MAX_WORDS, MAX_PAIRS = 20_000, 100_000  # beyond these the rarest entries are dropped (a keyboard-sized dictionary)
SAVE_DELAY = 1.0  # seconds: `seqtext complete` and `seqtext serve` write a learned line at most this late
SPARE = 3  # candidates beyond k taken from each side, so a personal word can outrank the model's k-th
JOINED = re.compile(r"\s+")  # only whitespace between two words: the first is the second's context
HIGHEST = "\U0010ffff"


def words_with_context(line: str) -> list[tuple[str, str]]:
    """(previous word folded, word) for each word of a line; '' when the line or a sentence starts
    (anything but whitespace between two words breaks the context)."""
    pairs, previous, end = [], "", 0
    for match in WORD.finditer(line):
        if previous and not JOINED.fullmatch(line[end : match.start()]):
            previous = ""
        pairs.append((previous, match.group()))
        previous, end = fold(match.group()), match.end()
    return pairs


class PersonalModel:
    """Counts of the words the user typed and of which word followed which, with a prefix index.

    `path` None keeps everything in memory. With a path, `learn(..., save=True)` writes the file: at
    once when `save_delay` is 0 or the last write is at least `save_delay` seconds old, otherwise by a
    timer when it is (rewriting the whole file for every line would slow a pipe of many lines).
    `save()` writes at once; call it before exiting (a pending timer also writes at exit). Safe to use
    from several threads (a server's model thread and the timer's).
    """

    def __init__(self, path: Path | None = None, *, save_delay: float = 0.0) -> None:
        self.path = path
        self.file = UserData(path) if path is not None else None
        self.save_delay = save_delay
        self._seen = self.file.stamp() if self.file is not None else None  # the file as last read or written
        self.words, self.follows = self.file.read() if self.file is not None else (Counter(), {})
        self._new: Counts = (Counter(), {})  # learned since the last write: what the next write adds to the file
        self._lock = threading.RLock()  # the counts, shared by the caller's thread and the timer's
        self._timer: threading.Timer | None = None
        self._saved_at = -float("inf")  # time.monotonic() of the last write
        self._failed: SeqtextError | None = None  # the timer's write failed: raised at the next learn()
        self._reindex()

    # --- writing --------------------------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Refuse, before the user types anything, a user-data file that could not be written."""
        if self.file is not None:
            self.file.check_writable()

    def save(self) -> None:
        """Write what was learned since the last write, merged into what is on disk now; no path: nothing to do.

        On failure (a full disk, a file on disk damaged since) the file is left as it was, and what was
        learned stays in memory for the next write."""
        with self._lock:
            self._failed = None
            self._stop_timer()
            if self.file is None or not self._new[0]:
                return
            (self.words, self.follows), self._seen = self.file.update(self._merged)
            self._new = (Counter(), {})
            self._saved_at = time.monotonic()
            self._reindex()

    def refresh(self) -> None:
        """Take in what other processes wrote to the file since this one last read or wrote it (a stat when
        nothing changed): two keyboards on one file offer each other's words. A file damaged meanwhile is
        left to the next write to refuse; until then suggestions use what was read before."""
        if self.file is None:
            return
        with self._lock:
            stamp = self.file.stamp()
            if stamp == self._seen:
                return
            self._seen = stamp
            try:
                disk = self.file.read()
            except SeqtextError:
                return
            self.words, self.follows = self._merged(disk)
            self._reindex()

    def _merged(self, disk: Counts) -> Counts:
        """What is on disk plus what this model learned since its last write, within the budget."""
        words, follows = disk
        _add(words, self._new[0])
        for previous, followers in self._new[1].items():
            _add(follows.setdefault(previous, Counter()), followers)
        return pruned(words, follows)

    def _save_soon(self) -> None:
        if self.file is None:
            return
        wait = self._saved_at + self.save_delay - time.monotonic()
        if wait <= 0:
            self.save()
        elif self._timer is None:
            self._timer = threading.Timer(wait, self._save_from_timer)
            self._timer.start()  # not a daemon: a pending write still happens when the interpreter exits

    def _save_from_timer(self) -> None:
        with self._lock:
            try:
                self.save()
            except SeqtextError as exc:  # told at the next learn(); what was learned stays in memory
                self._failed = exc

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def forget(self) -> None:
        """Forget everything learned, and remove the file (even a damaged one: the user asked)."""
        with self._lock:
            self._stop_timer()
            self.words, self.follows, self._new = Counter(), {}, (Counter(), {})
            self._reindex()
            if self.file is not None:
                self.file.remove()
                self._seen = self.file.stamp()

    # --- learning ------------------------------------------------------------------------------------------------
    def learn(self, text: str, save: bool = True) -> None:
        """Learn each line of `text` as finished text: its words, and each word after the one before it;
        with save, write them (see the class)."""
        with self._lock:
            if self._failed is not None:
                failed, self._failed = self._failed, None
                raise failed
            new_words, new_follows = self._new
            for line in unicodedata.normalize("NFC", text).splitlines():
                for previous, word in words_with_context(line):
                    if word not in self.words:
                        self._folded[word] = fold(word)
                        insort(self._keys, (self._folded[word], word))
                    _add(self.words, {word: 1})
                    _add(self.follows.setdefault(previous, Counter()), {word: 1})
                    self._update_best(word)
                    if self.file is not None:
                        new_words[word] += 1
                        new_follows.setdefault(previous, Counter())[word] += 1
            if over_budget(self.words, self.follows):
                self.words, self.follows = pruned(self.words, self.follows)
                self._reindex()
            if over_budget(new_words, new_follows):
                self._new = pruned(new_words, new_follows)
            if save:
                self._save_soon()

    def _reindex(self) -> None:
        self._folded = {w: fold(w) for w in self.words}  # folded once, not on every keystroke
        self._keys = sorted((key, w) for w, key in self._folded.items())  # a folded prefix is one bisect range
        self._total = sum(self.words.values())
        self._best: dict[str, list[str]] = {}  # folded prefix → its most frequent words (filled on demand)

    def _update_best(self, word: str) -> None:
        """Keep the cached per-prefix top lists right after one more count of `word` (no rescan)."""
        self._total += 1
        key = self._folded[word]
        for i in range(len(key) + 1):
            best = self._best.get(key[:i])
            if best is None:
                continue
            if word not in best:
                best.append(word)
            best.sort(key=lambda w: (-self.words[w], w))
            del best[SPARE + 3 :]

    # --- suggesting ----------------------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self.words)

    def prob(self, word: str, previous: str) -> float:
        """p(word | previous word): Witten-Bell interpolation of the pair and the word counts."""
        unigram = self.words.get(word, 0) / self._total if self._total else 0.0
        follows = self.follows.get(previous)
        if not follows:
            return unigram
        seen, kinds = sum(follows.values()), len(follows)
        return (follows.get(word, 0) + kinds * unigram) / (seen + kinds)

    def candidates(self, context: str, partial: str, n: int) -> list[tuple[str, float]]:
        """Up to n learned words whose folded form starts with the folded `partial`, most likely first."""
        with self._lock:  # a write by the timer replaces the counts and the index
            if not self.words:
                return []
            previous = _context_word(context)
            key = fold(partial)
            found = set(self._most_frequent(key))
            for word in self.follows.get(previous, {}):
                if self._folded[word].startswith(key):
                    found.add(word)
            found.discard(partial)  # what is already typed is no suggestion
            scored = [(word, self.prob(word, previous)) for word in found]
            return heapq.nsmallest(n, scored, key=lambda item: (-item[1], item[0]))

    def _most_frequent(self, key: str) -> list[str]:
        best = self._best.get(key)
        if best is None:
            lo = bisect_left(self._keys, (key,))
            hi = bisect_left(self._keys, (key + HIGHEST,), lo)
            words = (w for _, w in self._keys[lo:hi])
            best = self._best[key] = heapq.nsmallest(SPARE + 3, words, key=lambda w: (-self.words[w], w))
        return best


def mix(
    model: list[tuple[str, float, float]], learned: list[tuple[str, float, float]], weight: float, k: int
) -> list[tuple[str, float]]:
    """The k best of two candidate lists of (shown word, rank discount, probability), mixed linearly:
    p = (1 − weight)·discount·p_model + weight·discount·p_personal, best first, each with that p (what it ranks by)."""
    mixed: dict[str, float] = {}  # shown word → its (discounted) mixed probability
    for share, candidates in ((1 - weight, model), (weight, learned)):
        for word, discount, p in candidates:
            mixed[word] = mixed.get(word, 0.0) + share * discount * p
    return sorted(mixed.items(), key=lambda item: (-item[1], item[0]))[:k]


def _context_word(context: str) -> str:
    """The folded word just before the word being typed, '' when a line or sentence starts there."""
    pairs = words_with_context(context + " x")  # a stand-in for the word being typed
    return pairs[-1][0]


def _add(counts: Counter[str], new: dict[str, int]) -> None:
    """counts += new, each count kept at most MAX_COUNT (what the file may hold: a float's exact integers)."""
    for word, count in new.items():
        counts[word] = min(counts[word] + count, MAX_COUNT)


def over_budget(words: Counter[str], follows: dict[str, Counter[str]]) -> bool:
    return len(words) > MAX_WORDS or sum(map(len, follows.values())) > MAX_PAIRS


def pruned(words: Counter[str], follows: dict[str, Counter[str]]) -> Counts:
    """Within the budget, the counts themselves; beyond it, the most frequent words and pairs, 9/10 of
    the budget (so pruning is rare, not every line)."""
    if not over_budget(words, follows):
        return words, follows
    kept = dict(heapq.nlargest(MAX_WORDS * 9 // 10, words.items(), key=lambda item: (item[1], item[0])))
    pairs = [(c, h, w) for h, f in follows.items() for w, c in f.items() if w in kept]
    kept_follows: dict[str, Counter[str]] = {}
    for c, h, w in heapq.nlargest(MAX_PAIRS * 9 // 10, pairs):
        kept_follows.setdefault(h, Counter())[w] = c
    return Counter(kept), kept_follows
