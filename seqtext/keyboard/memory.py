"""The keyboard's sentence memory: the training lines themselves, sorted, for near-repeats.

Short example sentences repeat with small changes ("Tom no sabe nadar." / "Tom no sabe cocinar."). After
a line's first words the n-gram sees only its last order − 1 tokens; the memory sees them all: the
training lines that begin exactly as the line being typed are one bisect range of the sorted lines,
and the tokens that follow that beginning in them give a distribution over the next word,

    p_memory(w | the line so far) = lines that continue with w / lines that begin so,

which joins the keyboard's mix with a share that depends on how much matched (seqtext.keyboard.mixing):
how many tokens of the line (MIN_TOKENS or more) and how many training lines begin with them (`bucket`).

Lines are the n-gram's tokens (`\\w+` words and single punctuation marks) as ids of the n-gram's
vocabulary, so the file (`memory.safetensors`: the ids, the lines' offsets and how often each distinct
line occurs; the ids in 16 bits when the vocabulary has at most 65,536 words) holds no words of its own
and is checked against the n-gram it was built beside.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import torch

from seqtext import jsonfiles
from seqtext.errors import CheckpointError
from seqtext.keyboard.ngram import BOS, EOS, tokens_of
from seqtext.limits import MEMORY_BUCKETS
from seqtext.runs import checks
from seqtext.runs.saving import save_tensors
from seqtext.schema import shown

MEMORY_FILE = "memory.safetensors"
FORMAT = 1
KEY = "seqtext_memory"
FIX = "delete it and set memory_weights to [] in config.json, or train the run again (seqtext train lm ... --memory)"
MIN_TOKENS = 2  # a line's beginning shorter than this is the n-gram's to judge
LENGTHS = (2, 3, 4, 5)  # buckets by the tokens matched: 2, 3, 4, 5 or more …
COUNTS = (1, 2, 5)  # … and by the training lines that begin so: 1, 2-4, 5 or more
assert len(LENGTHS) * len(COUNTS) == MEMORY_BUCKETS  # LMConfig.memory_weights: one weight per bucket
MAX_SCAN = 500  # a beginning more lines share than this is one the n-gram knows well: not scanned (a keystroke's time)
MAX_LINES, MAX_TOKENS = 1 << 24, 1 << 28


def vocab_fingerprint(vocab: Sequence[str]) -> str:
    """A hash of the n-gram's vocabulary: a memory beside another n-gram is refused."""
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]


def bucket(tokens: int, lines: int) -> int:
    """The weight's bucket for a match of `tokens` tokens shared by `lines` training lines."""
    length = sum(tokens >= n for n in LENGTHS) - 1
    return length * len(COUNTS) + sum(lines >= c for c in COUNTS) - 1


class SentenceMemory:
    """Distinct training lines as tuples of n-gram ids, sorted, with how often each occurs."""

    def __init__(self, vocab: Sequence[str], lines: list[tuple[int, ...]], counts: list[int]) -> None:
        self.vocab, self.ids = list(vocab), {w: i for i, w in enumerate(vocab)}
        self.lines, self.counts = lines, counts
        self._cumulative = [0]
        for c in counts:
            self._cumulative.append(self._cumulative[-1] + c)

    def next_tokens(self, text: str) -> tuple[int, int, dict[int, int]] | None:
        """For the line typed so far (without the word being typed): its bucket, how many training lines
        begin so, and how many continue with each token id; None when it has fewer than MIN_TOKENS
        tokens, or no line begins so (or too many do: the n-gram knows that beginning well)."""
        words = tokens_of(text)
        if len(words) < MIN_TOKENS:
            return None
        prefix = tuple(self.ids.get(w, -1) for w in words)
        if -1 in prefix:
            return None
        lo = bisect_left(self.lines, prefix)
        hi = bisect_left(self.lines, (*prefix, len(self.vocab)), lo)
        if lo == hi or hi - lo > MAX_SCAN:
            return None
        follow: Counter[int] = Counter()
        at = len(prefix)
        for line, count in zip(self.lines[lo:hi], self.counts[lo:hi], strict=True):
            if len(line) > at:
                follow[line[at]] += count
        total = self._cumulative[hi] - self._cumulative[lo]
        return bucket(len(prefix), total), total, dict(follow)

    def size_bytes(self) -> int:
        """What the memory takes on disk: its ids (16 bits where the vocabulary allows), offsets and counts."""
        ids = 2 if len(self.vocab) <= 1 << 16 else 4
        return ids * sum(map(len, self.lines)) + 4 * (2 * len(self.lines) + 1)


def vocabulary(lines: Sequence[str]) -> list[str]:
    """The vocabulary build_ngram gives the same lines: <s>, then every token and </s>, sorted."""
    tokens = {t for line in lines for t in tokens_of(line)}
    return [BOS, *sorted(tokens | {EOS})] if any(line.strip() for line in lines) else [BOS]


def build_memory(lines: Sequence[str], vocab: Sequence[str]) -> SentenceMemory:
    """The memory of `lines` (blank ones skipped) over the n-gram's vocabulary (every token of the lines)."""
    ids = {w: i for i, w in enumerate(vocab)}
    seen = Counter(tuple(ids[t] for t in tokens_of(line)) for line in lines if line.strip())
    ordered = sorted(seen)
    return SentenceMemory(vocab, ordered, [seen[line] for line in ordered])


def save_memory(run: Path, memory: SentenceMemory) -> Path:
    """Write the memory into a run directory (atomically)."""
    flat = [i for line in memory.lines for i in line]
    offsets = [0]
    for line in memory.lines:
        offsets.append(offsets[-1] + len(line))
    small = len(memory.vocab) <= 1 << 16  # 16-bit ids where the vocabulary allows: half the file
    tensors = {
        "ids": torch.tensor(flat, dtype=torch.int32).to(torch.uint16 if small else torch.int32),
        "offsets": torch.tensor(offsets, dtype=torch.int32),
        "counts": torch.tensor(memory.counts, dtype=torch.int32),
    }
    header = {"format": FORMAT, "vocab_size": len(memory.vocab), "vocab": vocab_fingerprint(memory.vocab)}
    save_tensors(run, MEMORY_FILE, tensors, {KEY: json.dumps(header)})
    return run / MEMORY_FILE


def load_memory(run: Path, vocab: Sequence[str]) -> SentenceMemory | None:
    """The run's memory over the n-gram's vocabulary `vocab`, every tensor checked; None when it has none."""
    path = checks.optional_run_file(Path(run), MEMORY_FILE)
    if path is None:
        return None
    found = checks.tensor_specs(path)
    try:
        header = jsonfiles.parse(checks.tensor_metadata(path).get(KEY) or "null")
    except jsonfiles.JsonError:
        header = None
    if not isinstance(header, dict) or type(header.get("format")) is not int:
        raise checks.problem(path, f'no seqtext memory header (metadata "{KEY}")', FIX)
    if header["format"] > FORMAT:
        raise CheckpointError(f"{path}: memory format {header['format']} is newer than this seqtext reads; upgrade")
    if header.get("vocab_size") != len(vocab) or header.get("vocab") != vocab_fingerprint(vocab):
        raise checks.problem(path, "it was built beside another n-gram (its vocabulary differs)", FIX)
    lines = found.get("counts", ("I32", (0,)))[1][:1] or (0,)
    tokens = found.get("ids", ("I32", (0,)))[1][:1] or (0,)
    ids_type = "U16" if len(vocab) <= 1 << 16 else "I32"
    expected = {"ids": (ids_type, tokens), "offsets": ("I32", (lines[0] + 1,)), "counts": ("I32", lines)}
    for name, spec in expected.items():
        if found.get(name) != spec:
            got = f"{found[name][0]} {list(found[name][1])}" if name in found else "missing"
            raise checks.problem(path, f"tensor {name!r} is {got}, expected {spec[0]} {list(spec[1])}", FIX)
    if set(found) - set(expected) or lines[0] > MAX_LINES or tokens[0] > MAX_TOKENS:
        raise checks.problem(path, f"unexpected tensors or sizes ({shown(sorted(found))})", FIX)
    t = checks.load_tensors(path)
    offsets, ids, counts = t["offsets"].tolist(), t["ids"].to(torch.int64), t["counts"]
    why = None
    if offsets[0] != 0 or offsets[-1] != len(ids) or any(b < a for a, b in pairwise(offsets)):
        why = "its offsets do not run from 0 to the number of ids"
    elif len(ids) and (int(ids.min()) < 1 or int(ids.max()) >= len(vocab)):
        why = "a token id is outside the n-gram's vocabulary"
    elif len(counts) and int(counts.min()) < 1:
        why = "a line's count is below 1"
    if why is not None:
        raise checks.problem(path, why, FIX)
    flat = ids.tolist()
    rows = [tuple(flat[a:b]) for a, b in pairwise(offsets)]
    if any(b <= a for a, b in pairwise(rows)):
        raise checks.problem(path, "its lines are not sorted and distinct", FIX)
    return SentenceMemory(vocab, rows, counts.tolist())
