"""Exact-phrase memory (--phrase-memory): the training label of every training phrase, answered for a
text that occurs verbatim (case and spacing aside) among them, the model answering the rest.

A quarter of the SST dev phrases occur verbatim among the Rotten Tomatoes training phrases, and
there the training label was right 97% of the time against the model's 79% (scripts/bench_sentiment.py,
phrase_memory). Kept in the run's phrase_memory.json, plain JSON, which seqtext.runs writes and reads back
checked (the loaded run's `phrase_memory`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import torch

from seqtext.errors import ConfigError
from seqtext.jsonfiles import MAX_JSON_BYTES
from seqtext.runs.loading import Loaded
from seqtext.runs.reading import MEMORY_FORMAT


def phrase_key(text: str) -> str:
    """A phrase as the memory compares it: lower case, runs of spaces as one."""
    return " ".join(text.lower().split())


def build_memory(texts: Sequence[str], labels: Sequence[int], source: str) -> dict[str, int]:
    """The most common training label of each phrase (the smaller label on a tie), empty phrases left out;
    refused before training when the file would be too large to read back."""
    counts: dict[str, Counter] = {}
    for text, label in zip(texts, labels, strict=True):
        if key := phrase_key(text):
            counts.setdefault(key, Counter())[label] += 1
    phrases = {k: min(c, key=lambda label: (-c[label], label)) for k, c in counts.items()}
    size = len(json.dumps({"format": MEMORY_FORMAT, "phrases": phrases}, indent=2))
    if size > MAX_JSON_BYTES * 0.9:
        raise ConfigError(
            f"{source} has too many distinct phrases for the phrase memory ({size / 1e6:.0f} MB of "
            f"{MAX_JSON_BYTES / 1e6:.0f} MB allowed); pass --no-phrase-memory"
        )
    return phrases


def recall(clf: Loaded, texts: Sequence[str]) -> dict[int, int]:
    """The training label of each text the phrase memory holds, by the text's index (empty without one)."""
    phrases = clf.phrase_memory
    if not phrases:
        return {}
    return {i: phrases[k] for i, t in enumerate(texts) if (k := phrase_key(t)) in phrases}


def as_probabilities(recalled: dict[int, int], probs: torch.Tensor) -> torch.Tensor:
    """`probs` (N, C) with the rows of recalled texts set to their training label (probability 1), in place."""
    if recalled:
        labels = torch.tensor(list(recalled.values()))
        probs[list(recalled)] = torch.nn.functional.one_hot(labels, probs.size(-1)).to(probs.dtype)
    return probs


def remembered(clf: Loaded, texts: Sequence[str], probs: torch.Tensor) -> torch.Tensor:
    """`probs` with the rows of remembered phrases replaced by their training label (probability 1)."""
    return as_probabilities(recall(clf, texts), probs.clone())
