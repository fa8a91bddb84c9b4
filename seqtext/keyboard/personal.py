"""The keyboard's personal model: the words and word pairs its user has typed, mixed into the ranking.

A real keyboard learns its user's names, places and expressions. This is a small personal n-gram:
how often each word was typed, and which word followed which (Witten-Bell interpolation of the two).
The completer mixes it linearly with the language model's next-word probability,

    p(w) = (1 − λ) · p_model(w) + λ · p_personal(w),   λ = PERSONAL_WEIGHT (chosen by measurement,
                                                       scripts/bench_keyboard.py --personal)

and a word the user typed is offered even when the model's vocabulary lacks it ("Zorbaxa").

The data is the user's, so it lives apart from the model: one plain JSON file (default
`default_user_data()`, under the user's data directory), inspectable and editable by hand,
written atomically after each learned line, and removed by `forget()`. A damaged file is refused
with a one-line error and left exactly as it is; the model is never touched.
"""

from __future__ import annotations

import heapq
import json
import re
import unicodedata
from bisect import bisect_left, insort
from collections import Counter
from pathlib import Path
from typing import Any

from seqtext import jsonfiles
from seqtext.errors import ConfigError, CorpusError
from seqtext.files import check_output_file, replacing
from seqtext.keyboard.words import WORD, fold
from seqtext.schema import shown

FORMAT, VERSION = "seqtext-personal", 1
PERSONAL_WEIGHT = 0.1  # λ: the largest gain costing Tatoeba ≤ 0.5 pts, scripts/bench_keyboard.py --personal
MAX_WORDS, MAX_PAIRS = 20_000, 100_000  # beyond these the rarest entries are dropped (a keyboard-sized dictionary)
MAX_FILE_BYTES = 64 * 2**20  # a personal file this big is not ours: refuse it before reading
MAX_COUNT = 2**53  # a count beyond it (no one types a word 10^16 times) would lose its exactness as a float
SPARE = 3  # candidates beyond k taken from each side, so a personal word can outrank the model's k-th
JOINED = re.compile(r"\s+")  # only whitespace between two words: the first is the second's context
HIGHEST = "\U0010ffff"
FIX = "move it away, choose another file with --user-data, or start afresh with --forget"


def default_user_data() -> Path:
    """Where `seqtext complete` keeps what its user typed: personal.json in the user's data directory
    (~/.local/share/seqtext on Linux, ~/Library/Application Support/seqtext on macOS, %LOCALAPPDATA% on Windows)."""
    import platformdirs  # only here: the path is needed only when no --user-data is given

    return platformdirs.user_data_path("seqtext", appauthor=False) / "personal.json"


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

    `path` None keeps everything in memory; with a path, `learn(..., save=True)` writes it after each call.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.words: Counter[str] = Counter()
        self.follows: dict[str, Counter[str]] = {}
        if path is not None:
            self._load(path)
        self._reindex()

    # --- reading and writing ------------------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        """Read the JSON file at path (nothing there: an empty model); anything else is a one-line error."""
        try:
            if not path.exists():
                return
            if not path.is_file():
                raise CorpusError(f"user data {path} is not a regular file; {FIX}")
            if path.stat().st_size > MAX_FILE_BYTES:
                size = f"{MAX_FILE_BYTES // 2**20} MiB"
                raise CorpusError(f"user data {path} is larger than {size}, so not seqtext's; {FIX}")
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CorpusError(f"user data {path} is not UTF-8 text; it was left as it is: {FIX}") from None
        except OSError as exc:
            raise CorpusError(f"user data {path}: cannot read it ({exc.strerror}); {FIX}") from None
        try:
            data = jsonfiles.parse(text)  # strictly: no duplicate key, no number out of range, no deep nesting
        except jsonfiles.JsonError as exc:
            raise CorpusError(f"user data {path}: {exc.problem}; it was left as it is: {FIX}") from None
        self.words, self.follows = _checked(data, path)

    def to_json(self) -> dict[str, Any]:
        """The file's content: plain JSON, words sorted, so it reads (and diffs) well."""
        follows = {h: dict(sorted(f.items())) for h, f in sorted(self.follows.items())}
        return {"format": FORMAT, "version": VERSION, "words": dict(sorted(self.words.items())), "follows": follows}

    def check_writable(self) -> None:
        """Refuse, before the user types anything, a user-data file that could not be written."""
        if self.path is not None:
            check_output_file(self.path, "--user-data")

    def save(self) -> None:
        """Write the file atomically (a crash leaves the previous one); no path: nothing to do."""
        if self.path is None:
            return
        try:
            with replacing(self.path) as tmp:
                tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ConfigError(f"--user-data {self.path}: cannot write it ({why}); choose another file") from None

    def forget(self) -> None:
        """Forget everything learned, and remove the file (even a damaged one: the user asked)."""
        self.words, self.follows = Counter(), {}
        self._reindex()
        if self.path is not None:
            forget_file(self.path)

    # --- learning ------------------------------------------------------------------------------------------------
    def learn(self, text: str, save: bool = True) -> None:
        """Learn each line of `text` as finished text: its words, and each word after the one before it."""
        for line in unicodedata.normalize("NFC", text).splitlines():
            for previous, word in words_with_context(line):
                if word not in self.words:
                    self._folded[word] = fold(word)
                    insort(self._keys, (self._folded[word], word))
                self.words[word] = min(self.words[word] + 1, MAX_COUNT)  # what the file may hold
                follows = self.follows.setdefault(previous, Counter())
                follows[word] = min(follows[word] + 1, MAX_COUNT)
                self._update_best(word)
        if len(self.words) > MAX_WORDS or sum(map(len, self.follows.values())) > MAX_PAIRS:
            self._prune()
        if save:
            self.save()

    def _prune(self) -> None:
        """Keep the most frequent words and pairs, 9/10 of the budget (so pruning is rare, not every line)."""
        words, pairs_kept = MAX_WORDS * 9 // 10, MAX_PAIRS * 9 // 10
        kept = dict(heapq.nlargest(words, self.words.items(), key=lambda item: (item[1], item[0])))
        pairs = [(c, h, w) for h, f in self.follows.items() for w, c in f.items() if w in kept]
        self.words, self.follows = Counter(kept), {}
        for c, h, w in heapq.nlargest(pairs_kept, pairs):
            self.follows.setdefault(h, Counter())[w] = c
        self._reindex()

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
    p = (1 − weight)·p_model + weight·p_personal; ranked by the discounted mix, best first."""
    mixed: dict[str, list[float]] = {}  # shown word → [ranking score, probability]
    for share, candidates in ((1 - weight, model), (weight, learned)):
        for word, discount, p in candidates:
            score = mixed.setdefault(word, [0.0, 0.0])
            score[0] += share * discount * p
            score[1] += share * p
    best = sorted(mixed.items(), key=lambda item: (-item[1][0], item[0]))[:k]
    return [(word, prob) for word, (_, prob) in best]


def _context_word(context: str) -> str:
    """The folded word just before the word being typed, '' when a line or sentence starts there."""
    pairs = words_with_context(context + " x")  # a stand-in for the word being typed
    return pairs[-1][0]


def _checked(data: Any, path: Path) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """The counts of a personal file, every field checked; a bad one is a one-line error naming it."""

    def bad(what: str) -> CorpusError:
        return CorpusError(f"user data {path}: {what}; it was left as it is: {FIX}")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f'not a seqtext personal-data file (no "format": "{FORMAT}")')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad('field "version" must be a positive integer')
    if version > VERSION:
        raise CorpusError(f"user data {path} was written by a newer seqtext (version {version}); upgrade seqtext")
    unknown = set(data) - {"format", "version", "words", "follows"}
    if unknown:
        raise bad(f"unknown field {sorted(unknown)[0]!r}")
    words = _counts(data.get("words", {}), "words", bad)
    for word in words:
        if not WORD.fullmatch(word):
            raise bad(f'field "words": {word!r} is not a word')
    follows = data.get("follows", {})
    if not isinstance(follows, dict):
        raise bad('field "follows" must be an object of objects')
    pairs = {str(h): _counts(f, f"follows.{h}", bad) for h, f in follows.items()}
    for history, followers in pairs.items():
        missing = next((w for w in followers if w not in words), None)
        if missing is not None:
            raise bad(f'field "follows.{history}": {missing!r} is not in "words"')
    return Counter(words), {h: Counter(f) for h, f in pairs.items()}


def _counts(value: Any, field: str, bad: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise bad(f'field "{field}" must be an object of counts')
    for word, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
            raise bad(
                f'field "{field}": the count of {word!r} must be a whole number from 1 to {MAX_COUNT:,} '
                f"(got {shown(count)})"
            )
    return value


def forget_file(path: Path) -> None:
    """Remove the user-data file at path (`seqtext complete --forget`), damaged or not: the user asked."""
    try:
        path.unlink(missing_ok=True)
    except IsADirectoryError:
        raise ConfigError(f"--user-data {path} is a directory; give a file") from None
    except OSError as exc:
        raise ConfigError(f"--user-data {path}: cannot remove it ({exc.strerror})") from None
