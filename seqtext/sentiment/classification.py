"""Classify texts with a trained classifier, and score it: labels, names, probabilities, metrics.

Texts are tokenized in one call, batched by length so no batch needs padding, run in large batches
under inference mode, and returned in the order given. An empty text still gets an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqtext.config import ClassifierConfig
from seqtext.errors import ConfigError
from seqtext.runs.loading import Loaded, as_loaded
from seqtext.runtime import autocast, eval_mode, resolve_precision
from seqtext.sentiment.labelled import check_lengths, length_batches, pad
from seqtext.sentiment.memory import as_probabilities, recall
from seqtext.sentiment.tokengates import TokenGates, supported
from seqtext.tokenizer import encode_batch

BATCH_SIZE = 1024  # texts per forward pass at inference: big batches amortise the per-step overhead


@dataclass(frozen=True)
class Prediction:
    """One text's answer: label id, its name, and the probability of every label (in label order)."""

    label: int
    name: str
    probs: list[float]


def prepare(text: str, config: ClassifierConfig) -> str:
    """The text as the classifier reads it: spaces collapsed, lower-cased when the model was trained so.

    Word level: a leading space gives the first word the same token as inside a sentence (the word
    tokenizer marks words that follow a space), which matters for phrases of one or two words.
    """
    text = " ".join(text.split())
    if config.lowercase:
        text = text.lower()
    return " " + text if config.level in ("word", "subword") and text else text


def encode_texts(tokenizer: Any, config: ClassifierConfig, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prepared text (an empty text gives an empty list)."""
    return encode_batch(tokenizer, [prepare(t, config) for t in texts])


@torch.inference_mode()
def predict_proba(
    model: torch.nn.Module,
    ids: Sequence[Sequence[int]],
    device: torch.device,
    *,
    precision: str = "fp32",
    batch_size: int = BATCH_SIZE,
    gates: TokenGates | None = None,
) -> torch.Tensor:
    """Label probabilities (N, C), float32 on CPU, in the order of `ids`; `gates` (the model's TokenGates,
    fp32) computes them instead of the model when given."""
    probs = torch.empty(len(ids), model.config.num_classes)
    with eval_mode(model):
        for rows in length_batches(range(len(ids)), ids, batch_size):  # one length per batch: no padding
            batch, lengths = pad([ids[i] for i in rows])
            if gates is not None:
                logits = gates(batch[:, : int(lengths[0])])  # an empty text's row is one <pad> wide
            else:
                with autocast(device, precision):
                    logits = model(batch.to(device), lengths)  # (B, C)
            probs[rows] = logits.float().softmax(dim=-1).cpu()
    return probs


def token_gates(member: Loaded) -> TokenGates | None:
    """The loaded run's TokenGates, built on first use and kept with it; None where they cannot run it."""
    key = "sentiment.TokenGates"
    if key not in member.reused:
        member.reused[key] = TokenGates(member.model) if supported(member.model) is None else None
    return member.reused[key]


def average_proba(
    clf: Loaded,
    ids: Sequence[Sequence[int]],
    *,
    precision: str = "fp32",
    batch_size: int = BATCH_SIZE,
    fast: bool = True,
) -> torch.Tensor:
    """Label probabilities (N, C) of a run: its model's, or the mean of an ensemble's members'.
    fast: in fp32, from each member's TokenGates where they can run it (the same answers, faster)."""
    total = None
    for member in clf.members:
        gates = token_gates(member) if fast and precision == "fp32" else None
        probs = member.check_finite(
            predict_proba(member.model, ids, member.device, batch_size=batch_size, precision=precision, gates=gates)
        )  # finite but extreme weights can overflow
        total = probs if total is None else total + probs
    return total / len(clf.members)


def classify(
    source: Loaded | str | Path,
    texts: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
    precision: str = "auto",
    fast: bool = True,
) -> list[Prediction]:
    """Classify texts; returns one Prediction per text, in the same order.

    precision "auto" runs bf16 where the hardware has it (about 1.5× faster on CPUs with AMX; the
    label agrees with fp32 on 99.9% of the dev phrases), else fp32. In fp32, fast=True computes a
    one-layer LSTM's answers from per-token gate tables (sentiment/tokengates.py: the same answers to
    float rounding, about twice as fast on an AVX2 CPU); fast=False runs torch's LSTM.
    """
    if isinstance(texts, str):
        raise ConfigError("classify takes a list of texts; wrap a single text in a list: [text]")
    clf = as_loaded(source, "classifier", "classify")
    probs = label_probabilities(clf, texts, batch_size=batch_size, precision=precision, fast=fast)
    names = clf.config.labels
    best = probs.argmax(dim=-1).tolist()
    return [Prediction(b, names[b], p) for b, p in zip(best, probs.tolist(), strict=True)]


def label_probabilities(
    clf: Loaded, texts: Sequence[str], *, batch_size: int = BATCH_SIZE, precision: str = "auto", fast: bool = True
) -> torch.Tensor:
    """The answers of `classify` (same arguments, a loaded classifier) as one tensor, for a caller that writes
    many at once: every label's probability, (N, C) float32, a text a row, the phrase memory's included."""
    check_lengths(texts)
    precision = resolve_precision(precision, clf.device)
    recalled = recall(clf, texts)  # the phrase memory answers these: the model reads only the others
    rest = [i for i in range(len(texts)) if i not in recalled] if recalled else range(len(texts))
    ids = encode_texts(clf.tokenizer, clf.config, [texts[i] for i in rest])
    probs = average_proba(clf, ids, batch_size=batch_size, precision=precision, fast=fast)
    if recalled:
        probs = torch.zeros(len(texts), probs.size(-1)).index_copy_(0, torch.tensor(rest, dtype=torch.long), probs)
        as_probabilities(recalled, probs)
    return probs
