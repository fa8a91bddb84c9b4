"""Keyboard benchmark: the `--preset keyboard` language model against interpolated Kneser-Ney n-grams.

    python scripts/bench_keyboard.py [--max-time 15m] [--model RUN] [--lines N] [--threads T] [--smoke]
    python scripts/bench_keyboard.py --personal [--run RUN] [--smoke]   (scripts/keyboard_personal.py)

Trains `seqtext train lm ../shared/data/spanish/tatoeba_es_train.txt --preset keyboard --valid
../shared/data/spanish/tatoeba_es_valid.txt --max-time 15m --out runs/bench-keyboard` (or takes an
existing run with --model), fits interpolated Kneser-Ney word n-grams of orders 3, 4 and 5 on the same
training text (implemented below), and scores every model with the same typist simulation
(specs/completion-metrics.md, k = 3) on the validation file: keystroke savings, next-word top-1/top-3,
per-keystroke latency p50/p99, latency with 10 and with 200 words of context before the word being
typed, and model size in MB (the LSTM's model.safetensors; for the n-gram, the size of its ARPA file).
Runtime on 2 cores: --max-time + about 5 minutes (LM simulation ~2 min, n-grams ~1 min each).
Prints one JSON object and appends a row to docs/benchmarks.md. --lines N simulates only the first N
validation lines; --smoke runs in seconds on small subsets (for the test suite) and writes no row.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import os
import platform
import re
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from pathlib import Path

import torch
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs

import seqtext
from seqtext.config import LMConfig, TrainConfig, parse_duration, with_preset
from seqtext.keyboard.completion import Completer, partial_word
from seqtext.keyboard.typist import percentile, simulate_typing

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("..") / "shared" / "data" / "spanish"  # relative to the project root, as in the docs
TOKEN = re.compile(r"\w+|[^\w\s]")
WORD = re.compile(r"\w+")


class KneserNey:
    """Interpolated Kneser-Ney word n-gram (Chen & Goodman 1998): raw counts at the top order,
    continuation counts below, one absolute discount per order, D = n1 / (n1 + 2 n2)."""

    def __init__(self, lines: list[str], max_order: int) -> None:
        self.max_order, self.order = max_order, max_order
        pad = ["<s>"] * (max_order - 1)  # every history is long enough for the top order
        raw: list[dict] = [defaultdict(Counter) for _ in range(max_order + 1)]  # raw[n][history][word]
        for line in lines:
            tokens = [*pad, *TOKEN.findall(line), "</s>"]
            for i in range(len(pad), len(tokens)):
                for n in range(1, max_order + 1):
                    raw[n][tuple(tokens[i - n + 1 : i])][tokens[i]] += 1
        cont: list[dict] = [defaultdict(Counter) for _ in range(max_order + 1)]  # N1+(• history word)
        for n in range(2, max_order + 1):
            for history, followers in raw[n].items():
                for word in followers:
                    cont[n - 1][history[1:]][word] += 1
        self.tables = {"raw": raw, "cont": cont}
        self.stats = {
            kind: [{h: (sum(f.values()), len(f)) for h, f in t[n].items()} for n in range(max_order + 1)]
            for kind, t in self.tables.items()
        }
        self.discount = {kind: [self._discount(t[n]) for n in range(max_order + 1)] for kind, t in self.tables.items()}
        self.vocab = sorted(w for w in raw[1][()] if WORD.fullmatch(w))  # candidates: whole words only
        self.unigram = {w: cont[1][()][w] for w in self.vocab}
        self._by_prefix: dict[str, list[str]] = {}
        self._ranked: dict[tuple, list[str]] = {}

    @staticmethod
    def _discount(table: dict) -> float:
        counts = Counter(c for followers in table.values() for c in followers.values())
        return counts[1] / (counts[1] + 2 * counts[2]) if counts[1] else 0.5

    def prob(self, word: str, history: tuple[str, ...]) -> float:
        p = 1.0 / len(self.unigram)
        for n in range(1, self.order + 1):
            kind = "raw" if n == self.order else "cont"
            context = history[len(history) - n + 1 :] if n > 1 else ()
            followers = self.tables[kind][n].get(context)
            if followers is None:
                continue
            total, distinct = self.stats[kind][n][context]
            d = self.discount[kind][n]
            p = max(followers.get(word, 0) - d, 0) / total + d * distinct / total * p
        return p

    def _best_with_prefix(self, prefix: str, m: int) -> list[str]:
        if prefix not in self._by_prefix:
            lo = bisect_left(self.vocab, prefix)
            hi = bisect_left(self.vocab, prefix + "\U0010ffff")
            self._by_prefix[prefix] = heapq.nlargest(m, self.vocab[lo:hi], key=self.unigram.__getitem__)
        return self._by_prefix[prefix]

    def _followers(self, kind: str, n: int, context: tuple[str, ...]) -> list[str]:
        key = (kind, n, context)
        if key not in self._ranked:
            followers = self.tables[kind][n].get(context, {})
            self._ranked[key] = [w for w, _ in Counter(followers).most_common() if WORD.fullmatch(w)]
        return self._ranked[key]

    def suggest(self, typed: str, k: int = 3) -> list[str]:
        partial = partial_word(typed)
        tokens = TOKEN.findall(typed[max(0, len(typed) - len(partial) - 200) : len(typed) - len(partial)])
        history = tuple((["<s>"] * (self.max_order - 1) + tokens)[-(self.order - 1) :]) if self.order > 1 else ()
        m = 2 * k + 1
        candidates = set(self._best_with_prefix(partial, m))
        for n in range(2, self.order + 1):
            kind = "raw" if n == self.order else "cont"
            found = 0
            for word in self._followers(kind, n, history[len(history) - n + 1 :]):
                if word.startswith(partial) and word != partial:
                    candidates.add(word)
                    found += 1
                    if found == m:
                        break
        candidates.discard(partial)
        return heapq.nsmallest(k, candidates, key=lambda w: (-self.prob(w, history), w))

    def arpa_mb(self) -> float:
        """Size of the model written as an ARPA file (n-gram text, log-prob and back-off weight)."""
        size = 0
        for n in range(1, self.order + 1):
            table = self.tables["raw" if n == self.order else "cont"][n]
            for history, followers in table.items():
                size += sum(len(" ".join((*history, w)).encode("utf-8")) + 18 for w in followers)
        return size / 1e6


def context_latency(suggest, lines: list[str], words: int, samples: int = 20) -> dict[str, float]:
    """Per-keystroke latency typing 10 words after `words` words of context (the first read untimed)."""
    stream = " ".join(lines).split(" ")
    times: list[float] = []
    step = max(1, (len(stream) - words - 10) // samples)
    for start in range(0, step * samples, step):
        context = " ".join(stream[start : start + words]) + " "
        suggest(context)  # reads the context once, as a keyboard does when the text is opened
        for next_word in stream[start + words : start + words + 10]:
            for i in range(len(next_word) + 1):
                began = time.perf_counter()
                suggest(context + next_word[:i])
                times.append(time.perf_counter() - began)
            context += next_word + " "
    return {"p50": 1000 * percentile(times, 50), "p99": 1000 * percentile(times, 99)}


def score(suggest, lines: list[str], latency_lines: list[str]) -> dict:
    metrics = simulate_typing(lambda typed, k: suggest(typed, k), lines, k=3).to_dict()
    for words in (10, 200):
        at = context_latency(lambda typed: suggest(typed, 3), latency_lines, words)
        metrics[f"latency_ms_p50_at_{words}_words"] = at["p50"]
        metrics[f"latency_ms_p99_at_{words}_words"] = at["p99"]
    return metrics


def train_model(train: Path, valid: Path, out: Path, seconds: float, smoke: bool) -> dict:
    typed = {"data", "valid", "out", "max_time"}
    model, config = with_preset(
        "keyboard", LMConfig(), TrainConfig(data=str(train), valid=str(valid), out=str(out), max_time=seconds), typed
    )
    if smoke:
        model = dataclasses.replace(model, embed_dim=16, hidden_dim=32, max_vocab=2000)
        config = dataclasses.replace(config, batch_size=16)
    result = seqtext.train_lm(model, config)
    return {
        "steps": result.steps,
        "seconds": result.seconds,
        "precision": result.precision,
        "stopped_by": result.stopped_by,
        "tokens_per_s": result.tokens_per_s,
    }


def main() -> None:
    if "--personal" in sys.argv[1:]:  # issue 15's part: personal gain and latency under load
        import keyboard_personal

        return keyboard_personal.main([a for a in sys.argv[1:] if a != "--personal"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--personal", action="store_true", help="learning its user and latency under load instead")
    parser.add_argument("--max-time", default="15m", help="training budget for the preset (default 15m)")
    parser.add_argument("--model", type=Path, help="evaluate this run instead of training one")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-keyboard"), help="where to train the model")
    parser.add_argument("--lines", type=int, help="simulate only the first N validation lines")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5], help="n-gram orders to compare")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on small subsets, no row written")
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_file, valid_file = DATA / "tatoeba_es_train.txt", DATA / "tatoeba_es_valid.txt"
    train_lines = train_file.read_text(encoding="utf-8").splitlines()
    valid_lines = valid_file.read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.lines, args.max_time, args.orders = args.lines or 30, "3s", [3]
            train_lines = train_lines[:3000]
            train_file = Path(tmp) / "train.txt"
            train_file.write_text("".join(t + "\n" for t in train_lines), encoding="utf-8")
            args.out = Path(tmp) / "run"
        lines = valid_lines[: args.lines]
        training = None
        if args.model is None:
            if (args.out / "config.json").exists():
                sys.exit(f"{args.out} already holds a run: pass --model {args.out}, or another --out")
            training = train_model(train_file, valid_file, args.out, parse_duration(args.max_time), args.smoke)
        run = args.model or args.out
        subset = Path(tmp) / "valid.txt"
        subset.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
        lm = seqtext.load(run)
        figures = seqtext.evaluate(lm, subset).to_dict()
        completer = Completer(lm)
        ours = score(lambda typed, k: [c.word for c in completer.suggest(typed, k)], lines, valid_lines[:2000])
        ours["model_mb"] = (run / "model.safetensors").stat().st_size / 1e6
    ours.update(perplexity=figures["perplexity"], bits_per_char=figures["bits_per_char"], training=training)
    ours["config"] = dataclasses.asdict(lm.config)
    ngram = KneserNey(train_lines, max(args.orders))
    by_order = {}
    for order in args.orders:
        ngram.order = order
        by_order[order] = score(ngram.suggest, lines, valid_lines[:2000])
        by_order[order]["model_mb"] = ngram.arpa_mb()
    best = max(by_order, key=lambda order: by_order[order]["ksr"])
    base = by_order[best]
    report = {
        "benchmark": "bench_keyboard",
        "data": f"tatoeba_es_train.txt ({len(train_lines):,} lines), tatoeba_es_valid.txt (first {len(lines):,})",
        "k": 3,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "max_time": None if args.model else args.max_time,
        "seqtext": ours,
        "ngram": {"best_order": best, **base, "by_order": by_order},
        "vs_ngram": {
            "ksr_points": 100 * (ours["ksr"] - base["ksr"]),
            "top1_ratio": ours["next_word_top1"] / max(base["next_word_top1"], 1e-9),
            "top3_ratio": ours["next_word_top3"] / max(base["next_word_top3"], 1e-9),
        },
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not args.smoke:
        write_row(report, args)


def write_row(report: dict, args: argparse.Namespace) -> None:
    command = "python scripts/bench_keyboard.py" + (
        f" --model {args.model}" if args.model else f" --max-time {args.max_time}"
    )
    command += f" --lines {args.lines}" if args.lines else ""
    s, n, v = report["seqtext"], report["ngram"], report["vs_ngram"]
    precision = (s["training"] or {}).get("precision", "-")

    def cell(m: dict) -> str:
        return (
            f"{m['ksr']:.3f} | {m['next_word_top1']:.3f} / {m['next_word_top3']:.3f} | "
            f"{m['latency_ms_p50']:.2f} / {m['latency_ms_p99']:.2f} | "
            f"{m['latency_ms_p50_at_10_words']:.2f} / {m['latency_ms_p50_at_200_words']:.2f} | "
            f"{m['model_mb']:.1f}"
        )

    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {report['cpus']} CPU, {report['threads']} threads, "
        f"{precision} | seqtext | {cell(s)} | {v['ksr_points']:+.1f} pts, top-1 ×{v['top1_ratio']:.2f}, "
        f"top-3 ×{v['top3_ratio']:.2f} |\n|  |  |  | KN {n['best_order']}-gram | {cell(n)} |  |\n"
    )
    append_row(
        "bench_keyboard",
        "Typing tatoeba_es_valid.txt as specs/completion-metrics.md's typist, k = 3. Latency in ms per keystroke; "
        "context = words before the word being typed.\n\n| date | command | machine | model | keystroke savings "
        "| next-word top-1 / top-3 | latency p50 / p99 | p50 at 10 / 200 words | MB | vs n-gram |\n"
        "|---|---|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
