"""A lexicon beside the keyboard: words of the language that the training text never had, so that a
word no model saw ("servilleta", "arrodillaron") is still offered once its first letters are typed.

The lexicon is a list of words with their frequencies in the language at large: a word list the user
gives (one word per line, optionally a tab and a count), or the `wordfreq` package's list for a
language (`--lexicon wordfreq:es`; `pip install 'seqtext[lexicon]'`; its data is CC BY-SA 4.0, by
Robyn Speer and contributors, so lists made from it carry that licence). Training keeps the most
frequent words that no model of the run knows and saves them in the run (`lexicon.safetensors`):
typing never needs the package, a network or the original list.

In the keyboard's mix (seqtext.keyboard.mixing) these words share a weight μ (LMConfig.lexicon_weight,
chosen on the validation text), in proportion to their frequencies; every other word keeps 1 − μ of
its probability.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from seqtext.errors import CheckpointError, ConfigError, CorpusError
from seqtext.keyboard.words import WORD
from seqtext.runs import checks
from seqtext.runs.saving import lines_tensor, save_tensors
from seqtext.schema import shown

LEXICON_FILE = "lexicon.safetensors"
FORMAT = 1
KEY = "seqtext_lexicon"
MAX_WORDS = 1_000_000
MAX_WORD_CHARS = 64
FIX = "delete it to type without the lexicon, or train the run again (seqtext train lm ... --lexicon)"
WORDFREQ = "wordfreq:"


class Lexicon:
    """Words (each a spec word: a run of \\w) and their share of the lexicon's probability, (N,) summing to 1."""

    def __init__(self, words: list[str], probs: Tensor, source: str) -> None:
        self.words, self.probs, self.source = words, probs.float(), source


def _normalised(counts: dict[str, float], source: str, size: int, known: set[str]) -> Lexicon:
    """The `size` most frequent words of `counts` outside `known`, their frequencies made to sum to 1."""
    kept = sorted(
        ((c, w) for w, c in counts.items() if w not in known and WORD.fullmatch(w) and len(w) <= MAX_WORD_CHARS),
        key=lambda item: (-item[0], item[1]),
    )[:size]
    if not kept:
        raise ConfigError(f"--lexicon {source}: no word in it is new to the training text; leave --lexicon out")
    probs = torch.tensor([c for c, _ in kept], dtype=torch.float64)
    return Lexicon([w for _, w in kept], (probs / probs.sum()).float(), source)


def read_word_list(path: Path) -> dict[str, float]:
    """A word list: one word per line, optionally followed by a tab and its count (else counts fall
    with the rank, as word frequencies do: Zipf's 1 / rank)."""
    counts: dict[str, float] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"--lexicon {path}: cannot read it as UTF-8 text ({exc})") from exc
    for number, line in enumerate(lines, start=1):
        word, _, count = line.strip().partition("\t")
        if not word:
            continue
        try:
            value = float(count) if count else 1.0 / number
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise CorpusError(f"{path}, line {number}: the count after the tab must be a positive number ({count!r})")
        counts[word] = counts.get(word, 0.0) + value
    return counts


def wordfreq_counts(language: str) -> dict[str, float]:
    """Word frequencies of a language from the wordfreq package (its 'large' list where there is one)."""
    try:
        import wordfreq
    except ImportError:
        raise ConfigError(
            f"--lexicon {WORDFREQ}{language} needs the wordfreq package: pip install 'seqtext[lexicon]'"
        ) from None
    if language not in wordfreq.available_languages(wordlist="best"):
        raise ConfigError(f"--lexicon: wordfreq has no word list for language {language!r} (es, en, fr, ...)")
    return dict(wordfreq.get_frequency_dict(language, wordlist="best"))


def make_lexicon(source: str, size: int, known: set[str]) -> Lexicon:
    """The lexicon of --lexicon SOURCE ("wordfreq:LANG", or a word-list file): its `size` most frequent
    words that are not in `known` (the words the run's models already have)."""
    if source.startswith(WORDFREQ):
        return _normalised(wordfreq_counts(source.removeprefix(WORDFREQ)), source, size, known)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--lexicon {source}: no such file; give a word list, or wordfreq:LANG (wordfreq:es)")
    return _normalised(read_word_list(path), source, size, known)


def save_lexicon(run: Path, lexicon: Lexicon) -> Path:
    """Write the lexicon into a run directory (atomically): its words as UTF-8 text and their probabilities."""
    tensors = {
        "words": lines_tensor(lexicon.words),
        "probs": lexicon.probs.float(),
    }
    header = {"format": FORMAT, "words": len(lexicon.words), "source": lexicon.source}
    save_tensors(run, LEXICON_FILE, tensors, {KEY: json.dumps(header)})
    return run / LEXICON_FILE


def load_lexicon(run: Path) -> Lexicon | None:
    """The run's lexicon, every part checked; None when the run has none."""
    if not (Path(run) / LEXICON_FILE).exists():
        return None
    path = checks.run_file(Path(run), LEXICON_FILE)
    try:
        header = json.loads(checks.tensor_metadata(path).get(KEY, "null"))
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or type(header.get("format")) is not int or type(header.get("words")) is not int:
        raise checks.problem(path, f'no seqtext lexicon header (metadata "{KEY}")', FIX)
    if header["format"] > FORMAT:
        raise CheckpointError(f"{path}: lexicon format {header['format']} is newer than this seqtext reads; upgrade")
    size = header["words"]
    if not 1 <= size <= MAX_WORDS or not isinstance(header.get("source"), str):
        raise checks.problem(path, f'header field "words" must be 1 to {MAX_WORDS:,} (got {shown(size)})', FIX)
    found = checks.tensor_specs(path)
    expected = {"words": ("U8", found.get("words", ("U8", (0,)))[1]), "probs": ("F32", (size,))}
    if found != expected or found["words"][1][0] > size * (4 * MAX_WORD_CHARS + 1):
        raise checks.problem(path, f"its tensors are {found}, expected {expected}", FIX)
    tensors = checks.load_tensors(path)
    words = checks.tensor_lines(tensors["words"])
    if len(words) != size or len(set(words)) != size or not all(WORD.fullmatch(w) for w in words):
        raise checks.problem(path, f"its word list is not {size:,} distinct words", FIX)
    probs = tensors["probs"]
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()) or abs(float(probs.sum()) - 1) > 1e-3:
        raise checks.problem(path, "its probabilities do not sum to 1", FIX)
    return Lexicon(words, probs, header["source"])
