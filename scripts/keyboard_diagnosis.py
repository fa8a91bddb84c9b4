"""Per-word diagnosis for scripts/bench_keyboard.py: which validation words the recurrent model gets
at the first query and the n-gram misses (and the reverse), split by what explains them; and where
two keyboards' keystrokes differ, word by word, by frequency band, vocabulary, context length and
near-repeats of a training line (`keystroke_bands`).

    python scripts/keyboard_diagnosis.py RUN [--lines N] [--held-out] [--order 3]   (the run's keyboard vs a KN n-gram)

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


def word_costs(suggest: Callable[[str, int], list[str]], lines: Sequence[str], k: int = 3) -> list[tuple[int, bool]]:
    """For every word of `lines`, as the typist of docs/keystroke-savings.md types it: the keystrokes
    it costs (i + 1 when offered after its first i characters, else one per character) and whether
    the first query offered it."""
    costs = []
    for line in lines:
        for match in WORD.finditer(line):
            start, word = match.start(), match.group()
            keys, first = len(word), False
            for i in range(len(word)):
                if word in suggest(line[: start + i], k)[:k]:
                    keys, first = i + 1, i == 0
                    break
            costs.append((keys, first))
    return costs


BANDS: dict[str, Callable[[dict], str]] = {
    "training count": lambda w: (
        next(
            name for bound, name in ((1, "0 (unseen)"), (5, "1-4"), (50, "5-49"), (500, "50-499")) if w["count"] < bound
        )
        if w["count"] < 500
        else "500+"
    ),
    "recurrent model's vocabulary": lambda w: "inside" if w["known"] else "outside",
    "words before it in the line": lambda w: (
        "0" if w["position"] == 0 else "1-2" if w["position"] <= 2 else "3-5" if w["position"] <= 5 else "6+"
    ),
    "line nearly repeats a training line": lambda w: "yes" if w["repeats"] else "no",
    "line so far starts a training line": lambda w: (
        "no (or first word)" if w["prefix"] == 0 else "1-2 words" if w["prefix"] <= 2 else "3+ words"
    ),
}


def keystroke_bands(
    systems: dict[str, Callable[[str, int], list[str]]],
    lines: Sequence[str],
    train_lines: Sequence[str],
    known: set[str],
    k: int = 3,
) -> dict:
    """Keystrokes of two keyboards word by word, summed by band of each breakdown in BANDS: where the
    first (a) saves or loses keystroke-savings points against the second (b). `points` = (keys of b −
    keys of a) ÷ all characters × 100, so the bands of a breakdown add up to a's lead in savings."""
    (a, suggest_a), (b, suggest_b) = systems.items()
    counts = Counter(w for line in train_lines for w in WORD.findall(line))
    index = repeat_index(train_lines)
    prefixes = {tuple(WORD.findall(line)[:n]) for line in train_lines for n in range(1, 9)}
    words = []
    for line in lines:
        repeats = nearly_repeats(line, index)
        before: list[str] = []
        for match in WORD.finditer(line):
            word = match.group()
            matched = 0
            while matched < min(len(before), 8) and tuple(before[: matched + 1]) in prefixes:
                matched += 1
            words.append(
                {"count": counts[word], "known": word in known, "position": len(before), "repeats": repeats}
                | {"prefix": matched if matched == len(before) else 0, "length": len(word)}
            )
            before.append(word)
    costs_a, costs_b = word_costs(suggest_a, lines, k), word_costs(suggest_b, lines, k)
    characters = sum(len(line) for line in lines if line.strip()) or 1
    result: dict[str, dict[str, dict]] = {}
    table = f"| breakdown | band | words | {a} keys | {b} keys | points ({a} − {b}) | first-query top-{k} {a} / {b} |\n"
    table += "|---|---|---|---|---|---|---|\n"
    for breakdown, band_of in BANDS.items():
        rows: dict[str, dict] = {}
        for info, (keys_a, hit_a), (keys_b, hit_b) in zip(words, costs_a, costs_b, strict=True):
            row = rows.setdefault(band_of(info), Counter())
            row.update(words=1, keys_a=keys_a, keys_b=keys_b, hits_a=hit_a, hits_b=hit_b)
        result[breakdown] = {}
        for band in sorted(rows, key=str):
            r = rows[band]
            points = 100 * (r["keys_b"] - r["keys_a"]) / characters
            result[breakdown][band] = {**dict(r), "points": round(points, 3)}
            table += (
                f"| {breakdown} | {band} | {r['words']:,} | {r['keys_a']:,} | {r['keys_b']:,} | {points:+.2f} | "
                f"{r['hits_a'] / r['words']:.3f} / {r['hits_b'] / r['words']:.3f} |\n"
            )
    return {"systems": [a, b], "k": k, "characters": characters, "bands": result, "table_md": table}


def main() -> None:
    """The run's keyboard (its model mixed with its n-gram) against an unpruned KN n-gram, band by band."""
    import argparse
    import json
    from pathlib import Path

    import seqtext
    from seqtext.keyboard.building import fitted_lines
    from seqtext.keyboard.completion import Completer
    from seqtext.keyboard.ngram import build_ngram
    from seqtext.tokenizer import SPACE_MARK

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--train", type=Path, default=Path("../shared/data/spanish/tatoeba_es_train.txt"))
    parser.add_argument("--valid", type=Path, default=Path("../shared/data/spanish/tatoeba_es_valid.txt"))
    parser.add_argument("--lines", type=int, help="only the first N validation lines")
    parser.add_argument("--held-out", action="store_true", help="only the lines after those that chose the weights")
    parser.add_argument("--order", type=int, default=3, help="the n-gram's order (3 was the best unpruned one)")
    parser.add_argument("--alone", action="store_true", help="the recurrent model without its n-gram")
    args = parser.parse_args()
    train_lines = args.train.read_text(encoding="utf-8").splitlines()
    lines = [line for line in args.valid.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = lines[fitted_lines(lines) if args.held_out else 0 :][: args.lines]
    lm = seqtext.load(args.run)
    completer = Completer(lm, ngram=not args.alone)
    ngram = NgramSuggester(build_ngram(train_lines, args.order))
    known = {t.removeprefix(SPACE_MARK) for t in lm.tokenizer.get_vocab()}
    name = "lstm" if args.alone else "keyboard"
    systems = {name: lambda t, k: [c.word for c in completer.suggest(t, k)], f"kn{args.order}": ngram}
    report = keystroke_bands(systems, lines, train_lines, known)
    print(report["table_md"])
    print(json.dumps({key: v for key, v in report.items() if key != "table_md"}, ensure_ascii=False))


if __name__ == "__main__":
    main()
