"""Keyboard benchmark: the `--preset keyboard` keyboard (LSTM + n-gram) against each part alone and
against unpruned interpolated Kneser-Ney n-grams of the same text.

    python scripts/bench_keyboard.py [--max-time 15m] [--model RUN] [--lines N] [--threads T] [--profile P] [--smoke]
    python scripts/bench_keyboard.py --personal [--run RUN] [--profile P] [--smoke]   (scripts/keyboard_personal.py)

Trains `seqtext train lm ../shared/data/spanish/tatoeba_es_train.txt --preset keyboard --valid
../shared/data/spanish/tatoeba_es_valid.txt --max-time 15m --out runs/bench-keyboard` (which also
builds the run's n-gram, pruned to the size budget, and chooses its mixing weight), or takes an
existing run with --model (a run without an n-gram gets one built in a temporary copy). Scores with
the same typist simulation (specs/completion-metrics.md, k = 3) on the validation file: the combination, the LSTM alone
(--no-ngram), the run's n-gram alone, and unpruned modified Kneser-Ney n-grams of orders 3, 4 and 5
(seqtext.keyboard.ngram, no size budget): keystroke savings, next-word top-1/top-3, per-keystroke
latency p50/p99 overall and with 10 and 200 words of context, and the megabytes each loads from disk.
Checks the targets of the keyboard issue against the best unpruned n-gram, and prints the per-word
diagnosis (scripts/keyboard_diagnosis.py: which words the LSTM alone and the best n-gram each get at
the first query and the other misses, by cause) as counts and as a Markdown table, and where the keyboard
and that n-gram spend their keystrokes, word by word, by frequency band, vocabulary, context length and
near-repeats of a training line (keyboard_diagnosis.keystroke_bands). A trial's `--set` takes any field
of the preset's configs: `--set char_input=true`, `--set lexicon=wordfreq:es`, `--set seed=1`.
Runtime on 2 idle cores: --max-time + about 15 minutes (n-gram builds ~1 min, each simulation 1-3 min).
Prints one JSON object and appends rows to docs/benchmarks.md. --profile laptop runs it as on an fp32
AVX2 laptop (scripts/machine.py). --lines N simulates only the first N validation lines; --smoke runs
in seconds on small subsets (for the test suite) and writes no row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from keyboard_diagnosis import NgramSuggester, diagnose, keystroke_bands
from machine import add_profile_option, describe, enter_profile, row_cells

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.keyboard.building import build_run_ngram, fitted_lines, keyboard_files_mb
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.lexicon import LEXICON_FILE
from seqtext.keyboard.memory import MEMORY_FILE
from seqtext.keyboard.ngram import build_ngram
from seqtext.keyboard.ngramfile import NGRAM_FILE, load_ngram
from seqtext.keyboard.typist import percentile, simulate_typing
from seqtext.limits import KEYBOARD_MB, parse_duration
from seqtext.presets import with_preset
from seqtext.tokenizer import SPACE_MARK

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("..") / "shared" / "data" / "spanish"  # relative to the project root, as in the docs
FLAT = 1.25  # "flat in context": p50 at 200 words at most this many times p50 at 10 words (+0.05 ms)


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


def train_model(train: Path, valid: Path, out: Path, seconds: float, smoke: bool, changes: dict) -> dict:
    """`seqtext train lm --preset keyboard` with the benchmark's budget (and `changes`, as if typed after
    the preset: a trial): the LSTM, then the run's n-gram."""
    typed = {"data", "valid", "out", "max_time"}
    model, config = with_preset(
        "keyboard", LMConfig(), TrainConfig(data=str(train), valid=str(valid), out=str(out), max_time=seconds), typed
    )
    model_fields = {f.name for f in dataclasses.fields(LMConfig)}
    unknown = set(changes) - model_fields - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        sys.exit(f"--set: no option {', '.join(sorted(unknown))} in LMConfig or TrainConfig")
    model = dataclasses.replace(model, **{k: v for k, v in changes.items() if k in model_fields})
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if k not in model_fields})
    if smoke:
        model = dataclasses.replace(model, embed_dim=16, hidden_dim=32, max_vocab=2000)
        config = dataclasses.replace(config, batch_size=16)
    began = time.perf_counter()
    result = seqtext.train_lm(model, config)
    return {
        "steps": result.steps,
        "seconds": result.seconds,
        "ngram_seconds": time.perf_counter() - began - result.seconds,  # building and weighing the n-gram
        "precision": result.precision,
        "stopped_by": result.stopped_by,
        "tokens_per_s": result.tokens_per_s,
        "ngram": result.extras.get("ngram"),
    }


def with_ngram(
    run: Path, tmp: Path, train_file: Path, valid_file: Path, rebuild: bool = False, memory: bool = False
) -> tuple[Path, dict | None]:
    """The run itself when it has an n-gram (and no rebuild is asked); else a copy of it with one built
    as `train lm --ngram` (with `memory`: `--memory`) of this version would, its weights chosen anew."""
    if not rebuild and (run / NGRAM_FILE).is_file() and seqtext.load(run).config.ngram_weights:
        return run, None
    copy = tmp / "run-with-ngram"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(NGRAM_FILE, MEMORY_FILE))
    read = [p.read_text(encoding="utf-8") for p in (train_file, valid_file)]
    began = time.perf_counter()
    summary = build_run_ngram(copy, [read[0]], [read[1]], 4, None, memory=memory)
    return copy, {**dataclasses.asdict(summary), "seconds": time.perf_counter() - began}


def targets(combo: dict, best: dict) -> dict:
    """The issue's targets (k = 3, against the best unpruned n-gram of the same run): figure and met."""
    points = 100 * (combo["ksr"] - best["ksr"])
    top1 = combo["next_word_top1"] / max(best["next_word_top1"], 1e-9)
    top3 = combo["next_word_top3"] / max(best["next_word_top3"], 1e-9)
    p50 = [combo[f"latency_ms_p50_at_{w}_words"] for w in (10, 200)]
    p99 = max(combo["latency_ms_p99"], *(combo[f"latency_ms_p99_at_{w}_words"] for w in (10, 200)))
    p50_max = max(combo["latency_ms_p50"], *p50)
    return {
        "ksr_points_over_ngram": {"value": points, "target": 5.0, "met": points >= 5.0},
        "top1_ratio": {"value": top1, "target": 1.2, "met": top1 >= 1.2},
        "top3_ratio": {"value": top3, "target": 1.2, "met": top3 >= 1.2},
        "latency_ms_p50": {"value": p50_max, "target": 2.0, "met": p50_max <= 2.0},
        "latency_ms_p99": {"value": p99, "target": 5.0, "met": p99 <= 5.0},
        "flat_10_to_200_words": {
            "value": p50[1] / max(p50[0], 1e-9),
            "target": FLAT,
            "met": p50[1] <= FLAT * p50[0] + 0.05,
        },
        "keyboard_mb": {"value": combo["model_mb"], "target": KEYBOARD_MB, "met": combo["model_mb"] <= KEYBOARD_MB},
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
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="simulate only the validation lines after those the mixing weights were chosen on (then --lines)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="with --model: build its n-gram and weights again (in a temporary copy)"
    )
    parser.add_argument("--memory", action="store_true", help="with --rebuild: and its sentence memory (--memory)")
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5], help="unpruned n-gram orders to compare")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, one per core)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on small subsets, no row written")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="a trial: change the preset (dropout=0.25)"
    )
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    if args.model and args.set:
        sys.exit("--set changes how the preset trains; --model scores a run as it was trained: pass one")
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
            valid_file = write_lines(Path(tmp) / "valid.txt", valid_lines[:300])
            args.out = Path(tmp) / "run"
        skipped = 0
        if args.held_out:  # the weights were chosen on the first lines: measure on the others
            valid_lines = [line for line in valid_lines if line.strip()]
            skipped = fitted_lines(valid_lines)
            valid_lines = valid_lines[skipped:]
        lines = valid_lines[: args.lines]
        training = None
        if args.model is None:
            if (args.out / "config.json").exists():
                sys.exit(f"{args.out} already holds a run: pass --model {args.out}, or another --out")
            changes = dict(setting(s) for s in args.set)
            training = train_model(train_file, valid_file, args.out, parse_duration(args.max_time), args.smoke, changes)
        if (args.rebuild or args.memory) and not args.model:
            sys.exit("--rebuild and --memory rebuild a --model's keyboard; to train one with it: --set memory=true")
        run, built = with_ngram(args.model or args.out, Path(tmp), train_file, valid_file, args.rebuild, args.memory)
        report = measure(run, lines, valid_lines, train_lines, args.orders, Path(tmp))
        report.update(training=training, ngram_built_by_benchmark=built, trial=dict(setting(s) for s in args.set))
    which = f"first {len(lines):,}"
    if skipped:
        which = f"{len(lines):,} held out, after the {skipped:,} that chose the weights"
    report.update(
        data=f"tatoeba_es_train.txt ({len(train_lines):,} lines), tatoeba_es_valid.txt ({which})",
        machine=describe(args.profile),
        max_time=None if args.model else args.max_time,
    )
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not args.smoke:
        write_row(report, args)


def setting(text: str) -> tuple[str, object]:
    """FIELD=VALUE of --set, the value read as JSON where it is JSON (0.25, 4096, true) and as text otherwise."""
    field, _, value = text.partition("=")
    try:
        return field.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return field.replace("-", "_"), value


def measure(
    run: Path, lines: list[str], valid_lines: list[str], train_lines: list[str], orders: list[int], tmp: Path
) -> dict:
    """Every system typed on the same lines, the targets, and the diagnosis."""
    lm = seqtext.load(run)
    latency_lines = valid_lines[:2000]
    combo_completer, alone_completer = Completer(lm), Completer(lm, ngram=False)
    assert combo_completer.mixer is not None, "the run's n-gram did not load"
    combo = score(lambda t, k: [c.word for c in combo_completer.suggest(t, k)], lines, latency_lines)
    combo["model_mb"] = keyboard_files_mb(run)
    alone = score(lambda t, k: [c.word for c in alone_completer.suggest(t, k)], lines, latency_lines)
    lexicon_mb = (run / LEXICON_FILE).stat().st_size / 1e6 if (run / LEXICON_FILE).is_file() else 0.0
    memory_mb = (run / MEMORY_FILE).stat().st_size / 1e6 if (run / MEMORY_FILE).is_file() else 0.0
    alone["model_mb"] = combo["model_mb"] - (run / NGRAM_FILE).stat().st_size / 1e6 - lexicon_mb - memory_mb
    run_ngram = load_ngram(run, lm.tokenizer)
    without_lexicon = None
    if lm.config.lexicon_weight:  # the same keyboard without its lexicon: what the lexicon adds, on one model
        plain, config = Completer(lm), lm.config
        memory = combo_completer.mixer.memory  # kept: only the lexicon is left out
        oov_weights, memory_weights = config.ngram_oov_weights, config.memory_weights
        plain.use_ngram(run_ngram, config.ngram_weights, None, 0.0, oov_weights, memory, memory_weights)
        without_lexicon = score(lambda t, k: [c.word for c in plain.suggest(t, k)], lines, latency_lines)
        without_lexicon["model_mb"] = combo["model_mb"] - lexicon_mb
    own = score(NgramSuggester(run_ngram), lines, latency_lines)
    own.update(model_mb=(run / NGRAM_FILE).stat().st_size / 1e6, order=run_ngram.order)
    by_order, suggesters = {}, {}
    for order in orders:
        began = time.perf_counter()
        model = build_ngram(train_lines, order)  # no size budget: the classical baseline at its best
        suggesters[order] = NgramSuggester(model)
        by_order[order] = score(suggesters[order], lines, latency_lines)
        by_order[order].update(model_mb=model.size_bytes() / 1e6, build_seconds=time.perf_counter() - began)
    best = max(by_order, key=lambda order: by_order[order]["ksr"])
    known = {t.removeprefix(SPACE_MARK) for t in lm.tokenizer.get_vocab()}
    diagnosis = diagnose(
        {"lstm": lambda t, k: [c.word for c in alone_completer.suggest(t, k)], "ngram": suggesters[best]},
        lines,
        train_lines,
        known,
    )
    bands = keystroke_bands(
        {"keyboard": lambda t, k: [c.word for c in combo_completer.suggest(t, k)], "ngram": suggesters[best]},
        lines,
        train_lines,
        known,
    )
    figures = seqtext.evaluate(lm, write_lines(tmp / "valid-subset.txt", lines)).to_dict()
    alone.update(perplexity=figures["perplexity"], bits_per_char=figures["bits_per_char"])
    return {
        "benchmark": "bench_keyboard",
        "k": 3,
        "config": dataclasses.asdict(lm.config),
        "combined": {
            **combo,
            "ngram_weights": lm.config.ngram_weights,
            "ngram_order": run_ngram.order,
            "lexicon_weight": lm.config.lexicon_weight,
            "ngram_oov_weights": lm.config.ngram_oov_weights,
            "memory_weights": lm.config.memory_weights,
            "memory_mb": memory_mb,
        },
        "lstm": alone,
        "without_lexicon": without_lexicon,
        "run_ngram": own,
        "ngram": {"best_order": best, **by_order[best], "by_order": by_order},
        "vs_ngram": {
            "ksr_points": 100 * (combo["ksr"] - by_order[best]["ksr"]),
            "top1_ratio": combo["next_word_top1"] / max(by_order[best]["next_word_top1"], 1e-9),
            "top3_ratio": combo["next_word_top3"] / max(by_order[best]["next_word_top3"], 1e-9),
        },
        "targets": targets(combo, by_order[best]),
        "diagnosis": {"systems": f"LSTM alone vs KN {best}-gram (unpruned)", **diagnosis},
        "keystroke_bands": {"systems": f"the keyboard (LSTM + n-gram mix) vs KN {best}-gram (unpruned)", **bands},
    }


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    return path


def write_row(report: dict, args: argparse.Namespace) -> None:
    command = "python scripts/bench_keyboard.py" + (
        f" --model {args.model}" if args.model else f" --max-time {args.max_time}"
    )
    command += " --rebuild" * args.rebuild + " --memory" * args.memory + " --held-out" * args.held_out
    command += f" --lines {args.lines}" if args.lines else ""
    command += f" --orders {' '.join(map(str, args.orders))}" if args.orders != [3, 4, 5] else ""
    command += "".join(f" --set {s}" for s in args.set) if not args.model else ""
    command += f" --profile {args.profile}"
    n, v, t = report["ngram"], report["vs_ngram"], report["targets"]
    trained = (report["training"] or {}).get("precision")
    machine = row_cells(report["machine"], f"trained in {trained}" if trained else "scored only")

    def cell(m: dict) -> str:
        return (
            f"{m['ksr']:.3f} | {m['next_word_top1']:.3f} / {m['next_word_top3']:.3f} | "
            f"{m['latency_ms_p50']:.2f} / {m['latency_ms_p99']:.2f} | "
            f"{m['latency_ms_p50_at_10_words']:.2f} / {m['latency_ms_p50_at_200_words']:.2f} | "
            f"{m['model_mb']:.1f}"
        )

    missed = [name for name, target in t.items() if not target["met"]]
    verdict = "all targets met" if not missed else "not met: " + ", ".join(missed)
    c = report["combined"]
    weights = "/".join(f"{w:.2f}" for w in c["ngram_weights"])
    cells = {"lstm": "LSTM", "cifg": "coupled-gate LSTM", "gru": "GRU", "rnn": "Elman RNN"}
    lstm = cells.get(report["config"]["cell"], report["config"]["cell"])
    lstm += f" (weight drop {report['config']['weight_drop']:g})" if report["config"].get("weight_drop") else ""
    lstm += " with character-CNN input" if report["config"].get("char_input") else ""
    lexicon = f" + lexicon (weight {c['lexicon_weight']:g})" if c.get("lexicon_weight") else ""
    if c.get("ngram_oov_weights"):
        weights += " (the model's unknown words: " + "/".join(f"{w:.2f}" for w in c["ngram_oov_weights"]) + ")"
    if c.get("memory_weights"):
        lexicon += f" + sentence memory ({c['memory_mb']:.1f} MB)"
    rows = [
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {machine} | "
        f"{lstm} + {c['ngram_order']}-gram (weights {weights}){lexicon} | {cell(c)} | "
        f"{v['ksr_points']:+.1f} pts, top-1 ×{v['top1_ratio']:.2f}, top-3 ×{v['top3_ratio']:.2f}; {verdict} |",
        f"|  |  |  |  | LSTM alone (--no-ngram) | {cell(report['lstm'])} |  |",
        *([f"|  |  |  |  | the same without its lexicon | {cell(report['without_lexicon'])} |  |"] if lexicon else []),
        f"|  |  |  |  | the run's {report['run_ngram']['order']}-gram alone "
        f"({report['run_ngram']['model_mb']:.1f} MB) | {cell(report['run_ngram'])} |  |",
        f"|  |  |  |  | KN {n['best_order']}-gram, unpruned | {cell(n)} |  |",
    ]
    append_row(
        "bench_keyboard",
        "Typing tatoeba_es_valid.txt as specs/completion-metrics.md's typist, k = 3. Latency in ms per keystroke; "
        "context = words before the word being typed.\n\n| date | command | profile | machine | model | keystroke "
        "savings | next-word top-1 / top-3 | latency p50 / p99 | p50 at 10 / 200 words | MB | vs n-gram |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "\n".join(rows),
    )


if __name__ == "__main__":
    sys.exit(main())
