"""Sentiment benchmark: seqtext's default classifier against majority, TF-IDF + LR and fastText-style baselines.

    python -m pip install -e ".[bench]"     # scikit-learn, for the TF-IDF baseline
    python scripts/bench_sentiment.py [--max-time 15m] [--init-from-lm [--lm-time 5m]] [--smoke]

Trains `seqtext train classifier train.tsv --out RUN --max-time 15m` (nothing else: the defaults are
the recommended recipe) on ../shared/data/rotten_tomatoes_phrases/train.tsv and evaluates it on
../shared/data/sst/rt_phrases_dev.tsv (phrases of the SST dev sentences, Kaggle format) and
../shared/data/sst/sst5_dev_sentences.tsv (whole sentences: 5-class accuracy, and binary accuracy on
the non-neutral ones). In the same run, on the same training phrases: the majority class, TF-IDF
(word 1-2-grams) + logistic regression, and a fastText-style model (mean of word and bigram
embeddings → linear, in torch). Then it times `seqtext classify` on 200k phrases (end to end, and
the in-process API). --init-from-lm also pre-trains a word language model on the training sentences
for --lm-time and trains a second classifier from it (`--init-from`, the ULMFiT recipe).

Runtime on a 2-core CPU: the classifier's training (the default 8 epochs take about 3.5 minutes;
--max-time caps it) + about 4 minutes (baselines, evaluation, timing); with --init-from-lm add
--lm-time and a second training. Prints one JSON object and appends a row to
docs/benchmarks.md. --smoke runs in about 20 seconds on small slices and appends nothing.
"""

from __future__ import annotations

import argparse
import collections
import csv
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from torch import nn

import seqtext

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TRAIN = DATA / "rotten_tomatoes_phrases" / "train.tsv"
DEV_PHRASES = DATA / "sst" / "rt_phrases_dev.tsv"
DEV_SENTENCES = DATA / "sst" / "sst5_dev_sentences.tsv"


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
    """fastText (Joulin et al. 2016): the mean of word and hashed-bigram embeddings, then a linear layer."""

    def __init__(self, buckets: int, dim: int = 64) -> None:
        super().__init__()
        self.buckets = buckets
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean", sparse=True)  # sparse: only the rows used update
        self.head = nn.Linear(dim, 5)

    def features(self, text: str) -> list[int]:
        words = text.lower().split() or ["<empty>"]
        grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        return [hash_gram(g, self.buckets) for g in grams]

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids, offsets))

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = [self.features(t) for t in texts]
        offsets = torch.tensor([0, *[len(f) for f in feats[:-1]]]).cumsum(0)
        return torch.tensor([i for f in feats for i in f]), offsets


def hash_gram(gram: str, buckets: int) -> int:
    """FNV-1a, so the buckets do not depend on Python's randomised str hash."""
    h = 2166136261
    for byte in gram.encode("utf-8"):
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h % buckets


def fasttext(train: tuple[list[str], list[int]], tests: dict, epochs: int, buckets: int) -> dict:
    torch.manual_seed(0)
    model = FastText(buckets)
    optimizers = [
        torch.optim.SparseAdam(model.bag.parameters(), lr=3e-2),
        torch.optim.Adam(model.head.parameters(), lr=3e-2),
    ]
    texts, labels = train
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(epoch)).tolist()
        for start in range(0, len(order), 256):
            rows = order[start : start + 256]
            ids, offsets = model.batch([texts[i] for i in rows])
            loss = F.cross_entropy(model(ids, offsets), torch.tensor([labels[i] for i in rows]))
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
    seconds = time.perf_counter() - started
    with torch.inference_mode():
        result = {name: scores(model(*model.batch(texts)).softmax(-1), gold) for name, (texts, gold) in tests.items()}
    return {**result, "train_seconds": seconds, "epochs": epochs}


def seqtext_cli(*args: str) -> float:
    """Run a seqtext command (progress on this stderr); returns its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seqtext", *args], check=True, cwd=ROOT)
    return time.perf_counter() - started


def evaluate_run(run: Path, dev_phrases: Path, dev_sentences: Path) -> dict:
    phrases, sentences = seqtext.evaluate(run, dev_phrases), seqtext.evaluate(run, dev_sentences)
    return {
        "dev_phrases": {"accuracy": phrases.accuracy, "macro_f1": phrases.macro_f1,
                        "binary_accuracy": phrases.binary_accuracy},
        "sst5_sentences": {"accuracy": sentences.accuracy, "macro_f1": sentences.macro_f1,
                           "binary_accuracy": sentences.binary_accuracy},
    }  # fmt: skip


def train_seqtext(train: Path, out: Path, max_time: str, extra: list[str]) -> dict:
    seconds = seqtext_cli("train", "classifier", str(train), "--out", str(out), "--max-time", max_time, *extra)
    record = [json.loads(x) for x in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    best = max(record, key=lambda r: r["val_accuracy"])
    train_config = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    return {
        "command_seconds": seconds,
        "train_seconds": record[-1]["seconds"],
        "best_step": best["step"],
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "texts_per_s": record[-1]["tokens_per_s"],
        "options": {k: train_config[k] for k in ("batch_size", "lr", "max_time", "init_from")},
        "model": json.loads((out / "config.json").read_text(encoding="utf-8"))["model"],
    }


def classify_speed(run: Path, texts: list[str], folder: Path) -> dict:
    """Phrases per second of `seqtext classify` end to end (process start included) and of the API."""
    phrases = (texts * math.ceil(200_000 / len(texts)))[:200_000] if len(texts) > 1000 else texts
    (folder / "phrases.txt").write_text("".join(t + "\n" for t in phrases), encoding="utf-8")
    seconds = seqtext_cli("classify", str(run), str(folder / "phrases.txt"), "--output", str(folder / "out.tsv"))
    clf = seqtext.load(run)
    seqtext.classify(clf, phrases[:1000])  # warm-up
    started = time.perf_counter()
    seqtext.classify(clf, phrases)
    api = time.perf_counter() - started
    return {
        "phrases": len(phrases),
        "cli_phrases_per_s": len(phrases) / seconds,
        "api_phrases_per_s": len(phrases) / api,
    }


def pretrain_lm(train: Path, out: Path, lm_time: str, folder: Path) -> Path:
    """A word LM on the training sentences (the longest phrase of each SentenceId), read as the classifier reads."""
    from seqtext.sentiment.classification import prepare

    texts, _, groups = read_rows(train)
    longest: dict[str, str] = {}
    for text, group in zip(texts, groups, strict=True):
        if len(text) > len(longest.get(group, "")):
            longest[group] = text
    config = seqtext.ClassifierConfig()
    (folder / "sentences.txt").write_text("".join(prepare(t, config) + "\n" for t in longest.values()), "utf-8")
    seqtext_cli(
        "train", "lm", str(folder / "sentences.txt"), "--out", str(out), "--level", config.level,
        "--cell", config.cell, "--layers", str(config.layers), "--embed-dim", str(config.embed_dim),
        "--hidden-dim", str(config.hidden_dim), "--max-vocab", str(config.max_vocab), "--sample-by", "line",
        "--max-time", lm_time,
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", default="15m", help="training budget of the seqtext classifier")
    parser.add_argument("--init-from-lm", action="store_true", help="also pre-train a word LM and fine-tune from it")
    parser.add_argument("--lm-time", default="5m", help="budget of the language-model pre-training")
    parser.add_argument("--fasttext-epochs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on small slices (for the tests)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, dev_phrases, dev_sentences, extra = TRAIN, DEV_PHRASES, DEV_SENTENCES, []
        if args.smoke:
            args.max_time, args.lm_time, args.fasttext_epochs = "3s", "2s", 1
            train = ROOT / "corpora" / "frases_sentimiento.tsv"
            dev_phrases, dev_sentences = slice_file(DEV_PHRASES, folder, 400), slice_file(DEV_SENTENCES, folder, 200)
            extra = ["--embed-dim", "16", "--hidden-dim", "16"]
        train_rows = read_rows(train)
        tests = {"dev_phrases": read_rows(dev_phrases)[:2], "sst5_sentences": read_rows(dev_sentences)[:2]}
        report: dict = {
            "benchmark": "bench_sentiment",
            "data": f"train {train.name}; dev {dev_phrases.name}, {dev_sentences.name}",
            "machine": f"{os.cpu_count()} CPU {platform.processor() or platform.machine()}",
            "threads": torch.get_num_threads(),
            "majority": majority(train_rows[1], {k: v[1] for k, v in tests.items()}),
            "fasttext": fasttext(train_rows[:2], tests, args.fasttext_epochs, 1 << (12 if args.smoke else 20)),
        }
        try:
            report["tfidf_lr"] = tfidf_lr(train_rows[:2], tests)
        except ImportError:
            if not args.smoke:
                sys.exit('TF-IDF + LR needs scikit-learn: python -m pip install -e ".[bench]"')
            report["tfidf_lr"] = None
        run = folder / "clf"
        report["seqtext"] = {
            **train_seqtext(train, run, args.max_time, extra),
            **evaluate_run(run, dev_phrases, dev_sentences),
        }
        report["classify"] = classify_speed(run, tests["dev_phrases"][0], folder)
        if args.init_from_lm:
            lm = pretrain_lm(train, folder / "lm", args.lm_time, folder)
            ulm = folder / "clf_ulm"
            result = train_seqtext(train, ulm, args.max_time, ["--init-from", str(lm)])
            report["seqtext_init_from_lm"] = {
                **result,
                "lm_time": args.lm_time,
                **evaluate_run(ulm, dev_phrases, dev_sentences),
            }
    print(json.dumps(report, indent=2))
    if not args.smoke:
        write_row(report, args)


def slice_file(path: Path, folder: Path, rows: int) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()[: rows + 1]
    (folder / path.name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder / path.name


def write_row(report: dict, args: argparse.Namespace) -> None:
    """One table row per run under '## bench_sentiment' in docs/benchmarks.md."""
    command = f"python scripts/bench_sentiment.py --max-time {args.max_time}"
    if args.init_from_lm:
        command += f" --init-from-lm --lm-time {args.lm_time}"
    s, ft, lr, mj = report["seqtext"], report["fasttext"], report["tfidf_lr"], report["majority"]

    def trio(name: str, key: str = "accuracy") -> str:
        return " / ".join(f"{r[name][key]:.3f}" for r in (s, ft, lr, mj))

    ulm = report.get("seqtext_init_from_lm")
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {report['machine']}, {report['threads']} threads | "
        f"{trio('dev_phrases')} | {trio('sst5_sentences')} | {trio('sst5_sentences', 'binary_accuracy')} | "
        f"{s['train_seconds'] / 60:.1f} min (best at epoch {s['best_epoch']:.1f}) | "
        f"{report['classify']['cli_phrases_per_s']:,.0f} / {report['classify']['api_phrases_per_s']:,.0f} | "
        + (f"{ulm['dev_phrases']['accuracy']:.3f} / {ulm['sst5_sentences']['accuracy']:.3f} |" if ulm else "- |")
        + "\n"
    )
    append_row(
        "bench_sentiment",
        "Accuracies are seqtext / fastText-style / TF-IDF + LR / majority. Binary: SST-5 dev sentences without "
        "the neutral ones.\n\n| date | command | machine | dev phrases acc | SST-5 sentences acc | SST binary acc | "
        "seqtext training | classify phrases/s (CLI / API) | init-from-LM dev phrases / SST-5 |\n"
        "|---|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
