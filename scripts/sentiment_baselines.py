"""The baselines of scripts/bench_sentiment.py: majority class, TF-IDF + logistic regression, and a
fastText-style model (Joulin et al. 2016) in torch; and the reading and scoring they share with it.
"""

from __future__ import annotations

import collections
import csv
import itertools
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def read_rows(path: Path, limit: int | None = None) -> tuple[list[str], list[int], list[str]]:
    """Texts, labels and group ids of a Kaggle-format or text/label tsv (quoting off, no NA parsing)."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:limit]
    text, label = ("Phrase", "Sentiment") if "Phrase" in rows[0] else ("text", "label")
    return [r[text] for r in rows], [int(r[label]) for r in rows], [r.get("SentenceId", "") for r in rows]


def scores(probs: torch.Tensor, gold: list[int]) -> dict[str, float]:
    """Accuracy and binary accuracy (non-neutral; positive when p3+p4 > p0+p1), as seqtext evaluates."""
    target = torch.tensor(gold)
    keep = target != 2
    positive = probs[keep][:, 3:].sum(-1) > probs[keep][:, :2].sum(-1)
    return {
        "accuracy": float((probs.argmax(-1) == target).float().mean()),
        "binary_accuracy": float((positive == (target[keep] >= 3)).float().mean()),
    }


def majority(train_labels: list[int], tests: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    counts = collections.Counter(train_labels)
    probs = torch.tensor([counts[c] / len(train_labels) for c in range(5)])
    return {name: scores(probs.expand(len(gold), 5), gold) for name, gold in tests.items()}


def tfidf_lr(train: tuple[list[str], list[int]], tests: dict[str, tuple[list[str], list[int]]]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), lowercase=True, sublinear_tf=True, token_pattern=r"\S+")
    model = LogisticRegression(C=2.0, max_iter=300).fit(vectorizer.fit_transform(train[0]), train[1])
    seconds = time.perf_counter() - started
    result = {
        name: scores(torch.tensor(model.predict_proba(vectorizer.transform(texts))), gold)
        for name, (texts, gold) in tests.items()
    }
    return {**result, "train_seconds": seconds}


class FastText(nn.Module):
    """fastText: the mean of word and hashed word-bigram embeddings (an end-of-text token included),
    then a linear layer."""

    def __init__(self, buckets: int, dim: int) -> None:
        super().__init__()
        self.buckets = buckets
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean", sparse=True)  # sparse: only the rows used update
        self.head = nn.Linear(dim, 5)
        nn.init.uniform_(self.bag.weight, -1 / dim, 1 / dim)  # fastText's initialisation
        nn.init.zeros_(self.head.weight)

    def features(self, text: str) -> list[int]:
        words = [*text.lower().split(), "</s>"]
        grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        return [hash_gram(g, self.buckets) for g in grams]

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids, offsets))

    def batch(self, feats: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.tensor([0, *[len(f) for f in feats[:-1]]]).cumsum(0)
        return torch.tensor([i for f in feats for i in f]), offsets


def hash_gram(gram: str, buckets: int) -> int:
    """FNV-1a, so the buckets do not depend on Python's randomised str hash."""
    h = 2166136261
    for byte in gram.encode("utf-8"):
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h % buckets


def fasttext(
    train: tuple[list[str], list[int]], tests: dict, epochs: int, buckets: int, dim: int = 50, lr: float = 0.5
) -> dict:
    """Plain SGD with fastText's schedule: the rate decays linearly from lr to 0 over all the steps."""
    torch.manual_seed(0)
    model = FastText(buckets, dim)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    texts, labels = train
    started = time.perf_counter()
    feats = [model.features(t) for t in texts]  # once: hashing in Python costs more than an epoch
    batch_size, steps = 32, epochs * -(-len(texts) // 32)
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(epoch)).tolist()
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            for group in optimizer.param_groups:
                group["lr"] = lr * (1 - step / steps)
            loss = F.cross_entropy(
                model(*model.batch([feats[i] for i in rows])), torch.tensor([labels[i] for i in rows])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    seconds = time.perf_counter() - started
    with torch.inference_mode():
        result = {
            name: scores(model(*model.batch([model.features(t) for t in texts])).softmax(-1), gold)
            for name, (texts, gold) in tests.items()
        }
    return {**result, "train_seconds": seconds, "epochs": epochs, "dim": dim, "lr": lr}
