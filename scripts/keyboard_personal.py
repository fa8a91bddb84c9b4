"""Keyboard benchmark, personal part (issue 15): what learning its user gains, and latency under load.

    python scripts/bench_keyboard.py --personal [--run RUN | --max-time 2m] [--valid-lines N] [--profile P] [--smoke]
    python scripts/keyboard_personal.py ...                                   (the same)

1. **Personal gain.** With the Tatoeba keyboard model RUN (e.g. the one `bench_keyboard.py` trained in
   runs/bench-keyboard): learn the first 300 non-blank lines of ../shared/data/spanish/quijote.txt
   (a vocabulary far from Tatoeba's), then type the next 300 as specs/completion-metrics.md's typist,
   learning each line when it is finished, as the prompt does on Enter; compare the keystroke savings
   with the model alone. Then type the Tatoeba validation file with everything learned (not learning
   further): the cost to ordinary typing. Every weight λ of --weights is measured; the chosen one
   (the largest gain that costs ordinary typing at most TOLERANCE) is what personal.PERSONAL_WEIGHT
   should be.
2. **Latency under load.** Per-keystroke p50/p99 typing the first validation lines, idle and while one
   busy-loop subprocess runs, with the engine's one intra-op thread ("after") and with torch's default
   thread pool ("before", the Completer's threads = None). Measured in a child process whose
   environment has no OMP_NUM_THREADS / MKL_NUM_THREADS: the default pool is the point.

Without --run it trains `--preset keyboard` for --max-time into --out first. Prints one JSON object and
appends rows to docs/benchmarks.md (not with --smoke, which runs in seconds on a tiny model).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from machine import add_profile_option, describe, enter_profile, row_cells

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.typist import simulate_typing
from seqtext.limits import parse_duration
from seqtext.presets import with_preset

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("..") / "shared" / "data" / "spanish"  # relative to the project root, as in the docs
TOLERANCE = 0.005  # learning may cost ordinary typing at most half a point of keystroke savings
WEIGHTS = [0.05, 0.1, 0.2, 0.3, 0.5]


def nonblank(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def type_lines(completer: Completer, lines: list[str], learn: bool) -> dict[str, float]:
    """The typist on `lines`, one line at a time; with learn, each finished line is learned before the next."""
    keystrokes = characters = words = top1 = top3 = 0
    for line in lines:
        m = simulate_typing(lambda typed, k: [c.word for c in completer.suggest(typed, k)], [line], k=3)
        keystrokes, characters, words = keystrokes + m.keystrokes, characters + m.characters, words + m.words
        top1, top3 = top1 + round(m.next_word_top1 * m.words), top3 + round(m.next_word_topk * m.words)
        if learn:
            completer.learn(line, save=False)
    return {
        "ksr": 1 - keystrokes / characters if characters else 0.0,
        "next_word_top1": top1 / words if words else 0.0,
        "next_word_top3": top3 / words if words else 0.0,
        "words": words,
    }


def personal_gain(
    run: Path, quijote: list[str], valid: list[str], weights: list[float], size: int, int8: bool = True
) -> dict:
    """Keystroke savings on the second Quijote part and on Tatoeba, with the model alone and with each λ."""
    first, second = quijote[:size], quijote[size : 2 * size]
    lm = seqtext.load(run)
    alone = {"quijote_second": type_lines(Completer(lm, int8=int8), second, learn=False)}
    alone["tatoeba_valid"] = type_lines(Completer(lm, int8=int8), valid, learn=False)
    by_weight = {}
    for weight in weights:
        completer = Completer(lm, personal_weight=weight, int8=int8)
        completer.learn("\n".join(first), save=False)
        figures = {"quijote_second": type_lines(completer, second, learn=True)}
        figures["tatoeba_valid"] = type_lines(completer, valid, learn=False)  # everything learned, frozen
        figures["gain_points"] = 100 * (figures["quijote_second"]["ksr"] - alone["quijote_second"]["ksr"])
        figures["tatoeba_change_points"] = 100 * (figures["tatoeba_valid"]["ksr"] - alone["tatoeba_valid"]["ksr"])
        figures["learned_words"] = len(completer.personal.words)
        by_weight[str(weight)] = figures
    allowed = [w for w, f in by_weight.items() if f["tatoeba_change_points"] >= -100 * TOLERANCE]
    chosen = max(allowed or by_weight, key=lambda w: by_weight[w]["gain_points"])
    return {
        "quijote_lines": f"learned the first {len(first)} non-blank lines, typed the next {len(second)}",
        "tatoeba_valid_lines": len(valid),
        "alone": alone,
        "by_weight": by_weight,
        "chosen_weight": float(chosen),
        "chosen_within_tolerance": bool(allowed),
        "tolerance_points": 100 * TOLERANCE,
    }


@contextlib.contextmanager
def busy_process() -> Iterator[subprocess.Popen]:
    """One CPU-bound process (a Python busy loop) for the life of the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let the scheduler see it
        yield process
    finally:
        process.kill()
        process.wait()


def latencies(completer: Completer, lines: list[str]) -> dict[str, float]:
    """Per-keystroke latency of the typist on lines (ms), after one warm-up line."""
    simulate_typing(lambda typed, k: [c.word for c in completer.suggest(typed, k)], lines[:1], k=3)
    m = simulate_typing(lambda typed, k: [c.word for c in completer.suggest(typed, k)], lines, k=3)
    return {"p50": m.latency_ms_p50, "p99": m.latency_ms_p99, "calls": m.calls}


def latency_child(run: Path, lines: list[str], learned: list[str], int8: bool = True) -> dict:
    """Runs in the child process: before/after × idle/busy, each with the personal model in use; int8: the
    keystroke steps in int8 (seqtext's default) or fp32 (--no-int8)."""
    lm = seqtext.load(run)
    report = {"torch_threads_default": torch.get_num_threads(), "cpus": os.cpu_count()}
    for name, threads in (("before", None), ("after", 1)):
        completer = Completer(lm, int8=int8)
        completer.threads = threads
        completer.learn("\n".join(learned), save=False)
        idle_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        idle = latencies(completer, lines)
        with busy_process():
            busy = latencies(completer, lines)
        report[name] = {"idle": idle, "busy": busy, "load_average_before": idle_load}
    return report


def latency_under_load(run: Path, lines: list[str], learned: list[str], int8: bool = True) -> dict:
    """latency_child in a child process without OMP_NUM_THREADS / MKL_NUM_THREADS (torch's default pool)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "request.json"
        asked = {"run": str(run), "lines": lines, "learned": learned, "int8": int8}
        request.write_text(json.dumps(asked), encoding="utf-8")
        command = [sys.executable, str(Path(__file__).resolve()), "--latency-child", str(request)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"latency measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def train_short(out: Path, seconds: float, smoke: bool, train_lines: int | None) -> None:
    """A `--preset keyboard` model trained for `seconds` (smoke: a tiny one on a slice of the training text)."""
    train, valid = DATA / "tatoeba_es_train.txt", DATA / "tatoeba_es_valid.txt"
    if train_lines:
        sliced = out.parent / "train_slice.txt"
        sliced.write_text("".join(t + "\n" for t in nonblank(train)[:train_lines]), encoding="utf-8")
        train = sliced
    typed = {"data", "valid", "out", "max_time"}
    config = TrainConfig(data=str(train), valid=str(valid), out=str(out), max_time=seconds)
    model, config = with_preset("keyboard", LMConfig(), config, typed)
    if smoke:
        model = dataclasses.replace(model, embed_dim=16, hidden_dim=32, max_vocab=2000)
        config = dataclasses.replace(config, batch_size=16)
    seqtext.train_lm(model, config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", "--model", dest="run", type=Path, help="the Tatoeba keyboard run to use")
    parser.add_argument("--max-time", default="2m", help="without --run: train one for this long (default 2m)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-keyboard-personal"), help="where to train it")
    parser.add_argument("--weights", type=float, nargs="+", default=WEIGHTS, help="personal weights λ to measure")
    parser.add_argument("--valid-lines", type=int, help="type only the first N Tatoeba validation lines")
    parser.add_argument("--latency-lines", type=int, default=300, help="validation lines typed per latency figure")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on a tiny model, no row written")
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="keystroke steps in int8 (default) or fp32"
    )
    parser.add_argument("--latency-child", type=Path, help=argparse.SUPPRESS)
    add_profile_option(parser)
    args = parser.parse_args(argv)
    if args.latency_child:  # in the parent's environment, hence its profile
        request = json.loads(args.latency_child.read_text(encoding="utf-8"))
        print(json.dumps(latency_child(Path(request["run"]), request["lines"], request["learned"], request["int8"])))
        return
    enter_profile(args.profile)
    os.chdir(ROOT)
    quijote, valid = nonblank(DATA / "quijote.txt"), nonblank(DATA / "tatoeba_es_valid.txt")
    size = 300
    with tempfile.TemporaryDirectory() as tmp:
        run, trained = args.run, None
        if args.smoke:
            size, args.valid_lines, args.latency_lines, args.weights = 20, args.valid_lines or 30, 20, [0.1, 0.3]
            run = run or Path(tmp) / "run"
        if run is None or not (run / "config.json").exists():
            run, trained = run or args.out, "3s" if args.smoke else args.max_time
            train_short(run, parse_duration(trained), args.smoke, 3000 if args.smoke else None)
        lines = valid[: args.valid_lines]
        report = {
            "benchmark": "bench_keyboard_personal",
            "run": str(run),
            "trained_here": trained,
            "machine": describe(args.profile),
            "personal": personal_gain(run, quijote, lines, args.weights, size, args.int8),
            "latency": latency_under_load(run, valid[: args.latency_lines], quijote[:size], args.int8),
            "k": 3,
        }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not args.smoke:
        write_rows(report, args)


def write_rows(report: dict, args: argparse.Namespace) -> None:
    command = "python scripts/bench_keyboard.py --personal" + (
        f" --run {args.run}" if args.run else f" --max-time {args.max_time}"
    )
    command += f" --valid-lines {args.valid_lines}" if args.valid_lines else ""
    command += f" --profile {args.profile}" + ("" if args.int8 else " --no-int8")
    p, lat = report["personal"], report["latency"]
    chosen = p["by_weight"][str(p["chosen_weight"])]
    machine = row_cells(report["machine"], f"keystrokes in {'int8' if args.int8 else 'fp32'}")  # threads: torch's pool
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {machine} | {p['alone']['quijote_second']['ksr']:.3f} | "
        f"{chosen['quijote_second']['ksr']:.3f} ({chosen['gain_points']:+.1f} pts) | "
        f"{p['alone']['tatoeba_valid']['ksr']:.3f} → {chosen['tatoeba_valid']['ksr']:.3f} "
        f"({chosen['tatoeba_change_points']:+.2f} pts) | λ = {p['chosen_weight']} |"
    )
    append_row(
        "bench_keyboard_personal",
        "Learning its user (issue 15): keystroke savings (k = 3) typing quijote.txt lines 301-600 (non-blank) "
        "after learning lines 1-300 and learning each typed line, and on tatoeba_es_valid.txt with all of it "
        "learned.\n\n| date | command | profile | machine | Quijote, model alone | Quijote, learning | Tatoeba: "
        "alone → learned | weight |\n|---|---|---|---|---|---|---|---|",
        row,
    )

    def cell(figures: dict) -> str:
        return f"{figures['idle']['p50']:.2f} / {figures['idle']['p99']:.2f} | {figures['busy']['p50']:.2f} / " + (
            f"{figures['busy']['p99']:.2f}"
        )

    def load(engine: str) -> str:
        return f"load average {lat[engine]['load_average_before']:.1f} before"

    rows = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {machine} | before: torch's pool ({load('before')}) | "
        f"{cell(lat['before'])} |\n|  |  |  |  | after: one thread ({load('after')}) | {cell(lat['after'])} |"
    )
    append_row(
        "bench_keyboard_latency_under_load",
        "Per-keystroke latency in ms typing the first tatoeba_es_valid.txt lines, idle and while one busy-loop "
        "process runs (OMP_NUM_THREADS unset). Target: p50 ≤ 2, p99 ≤ 5 in both.\n\n| date | command | profile "
        "| machine | engine | idle p50 / p99 | busy p50 / p99 |\n|---|---|---|---|---|---|---|",
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
