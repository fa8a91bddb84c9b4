"""Classifier figures: accuracy, macro-F1, per-class precision/recall/F1, the confusion matrix, and the
binary accuracy of the five sentiment labels on non-neutral texts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from seqtext.runs.loading import Loaded, as_loaded
from seqtext.runtime import resolve_precision
from seqtext.sentiment.classification import average_proba, encode_texts
from seqtext.sentiment.labelled import read_labelled
from seqtext.sentiment.memory import remembered


@dataclass(frozen=True)
class ClassifierMetrics:
    """Classifier figures on one labelled file. `confusion[gold][predicted]` counts texts."""

    accuracy: float
    macro_f1: float
    binary_accuracy: float | None  # five sentiment labels only: non-neutral texts, 0-1 vs 3-4
    loss: float  # mean cross-entropy, nats
    confusion: list[list[int]]
    per_class: list[dict[str, Any]]  # label, name, precision, recall, f1, support
    labels: list[str]
    texts: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def classifier_metrics(probs: torch.Tensor, gold: Sequence[int], names: Sequence[str]) -> ClassifierMetrics:
    """Accuracy, macro-F1 (over labels present in gold or predictions), per-class P/R/F1, confusion."""
    target = torch.tensor(list(gold), dtype=torch.long)
    predicted = probs.argmax(dim=-1)
    k = len(names)
    confusion = torch.bincount(target * k + predicted, minlength=k * k).view(k, k)
    per_class, f1s = [], []
    for c, name in enumerate(names):
        tp, support, guessed = int(confusion[c, c]), int(confusion[c].sum()), int(confusion[:, c].sum())
        precision = tp / guessed if guessed else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {"label": c, "name": name, "precision": precision, "recall": recall, "f1": f1, "support": support}
        )
        if support or guessed:
            f1s.append(f1)
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), target).item() if len(target) else math.nan
    return ClassifierMetrics(
        accuracy=float((predicted == target).float().mean()) if len(target) else math.nan,
        macro_f1=sum(f1s) / max(1, len(f1s)),
        binary_accuracy=binary_accuracy(probs, target) if k == 5 else None,
        loss=loss,
        confusion=confusion.tolist(),
        per_class=per_class,
        labels=list(names),
        texts=len(target),
    )


def binary_accuracy(probs: torch.Tensor, target: torch.Tensor) -> float | None:
    """Positive vs negative on non-neutral texts: gold 0-1 vs 3-4; predicted positive when p3+p4 > p0+p1."""
    keep = target != 2
    if not keep.any():
        return None
    positive = probs[keep][:, 3:].sum(-1) > probs[keep][:, :2].sum(-1)
    return float((positive == (target[keep] >= 3)).float().mean())


def evaluate_classifier(
    clf: Loaded, data: str | Path, *, text_column: str | None = None, label_column: str | None = None
) -> ClassifierMetrics:
    """Score a classifier on a labelled file whose labels are ids or names of the classifier's labels."""
    clf = as_loaded(clf, "classifier", "evaluate")
    rows, names = read_labelled(data, text_column=text_column, label_column=label_column, labels=clf.config.labels)
    ids = encode_texts(clf.tokenizer, clf.config, rows.texts)
    probs = remembered(clf, rows.texts, average_proba(clf, ids, precision=resolve_precision("auto", clf.device)))
    return classifier_metrics(probs, rows.labels, names)
