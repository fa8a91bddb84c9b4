"""Serving benchmark: a real `seqtext serve` on localhost under typing load, with faults mixed in.

    python -m pip install -e ".[serve,bench]"     # FastAPI, uvicorn; httpx and psutil for the clients
    python scripts/bench_serve.py [--lm RUN] [--classifier RUN] [--clients 50] [--seconds 60] [--workers N]
                                  [--profile P] [--smoke]

Starts `seqtext serve LM CLASSIFIER --port 0 --no-access-log` and runs two phases of --seconds each:
1. typing: --clients typists each type sentences of tatoeba_es_valid.txt one keystroke at a time,
   one /v1/complete per keystroke, each sending the next keystroke when the answer comes (closed
   loop: the figures are the server's capacity, not a typist's pace);
2. mixed: the same typists, plus a /v1/classify client sending batches of 64 dev phrases, clients
   that start a streamed /v1/generate and leave after a few tokens, and a client sending malformed
   JSON, oversized bodies and texts, unknown models and wrong kinds.
The typists are light keep-alive HTTP/1.1 clients (httpx costs about a millisecond of CPU per request, taken
from the server on these shared cores). The same run also measures the engine in-process, as `seqtext
complete --no-int8` runs it (one thread, one keystroke at a time, the same sentences, for a quarter of --seconds), and
reports the server's typing rate as a ratio of it; both in fp32, the server's arithmetic (`complete` steps in
int8 by default). Every answer is checked afterwards: suggestions against an in-process fp32 Completer of the
same run, labels against seqtext.classify, faults against the
status they must get (422, 413, 404, 409).
Errors (no answer, or an unexpected status) and wrong answers must be 0. The server's memory
(RSS) is sampled every second. Without --lm / --classifier, stand-ins with the recommended
architectures are trained once into --out with deterministic budgets (`--preset keyboard`, one
epoch of tatoeba_es_train.txt; the default classifier, one epoch of the Rotten Tomatoes phrases):
serving cost depends on a model's size and vocabulary, not on how long it trained.
Prints one JSON object and appends a row to docs/benchmarks.md (not with --no-row); --smoke runs in
seconds on tiny models and the project's own corpora and writes no row. Exit code 1 when anything
failed. Time it on an idle machine only: the clients and the server share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import torch
from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from machine import add_profile_option, describe, enter_profile, row_cells
from serve_clients import BATCH, phase
from serve_harness import serving

import seqtext
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.keyboard.completion import Completer
from seqtext.presets import with_preset
from seqtext.serve.hosted import COMPLETION_CACHE

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("..") / "shared" / "data"  # relative to the project root, as in the docs


def stand_ins(out: Path, smoke: bool) -> tuple[Path, Path]:
    """An LM and a classifier with the recommended architectures, trained once (reused when present)."""
    lm, clf = out / "lm", out / "classifier"
    if not (lm / "config.json").exists():
        data = ROOT / "corpora" / "frases_es.txt" if smoke else DATA / "spanish" / "tatoeba_es_train.txt"
        train = TrainConfig(data=str(data), out=str(lm), epochs=1)
        model, train = with_preset("keyboard", LMConfig(), train, {"data", "out", "epochs"})
        if smoke:
            model, train = (
                LMConfig(level="word", embed_dim=16, hidden_dim=32, layers=1),
                TrainConfig(data=str(data), out=str(lm), epochs=1, batch_size=16),
            )
        seqtext.train_lm(model, train)
    if not (clf / "config.json").exists():
        data = ROOT / "corpora" / "frases_sentimiento.tsv" if smoke else DATA / "rotten_tomatoes_phrases" / "train.tsv"
        model = ClassifierConfig(embed_dim=16, hidden_dim=16) if smoke else ClassifierConfig()
        seqtext.train_classifier(model, ClassifierTrainConfig(data=str(data), out=str(clf), epochs=1))
    return lm, clf


def wrong_suggestions(lm: Path, answers: list[tuple]) -> int:
    """Answers that differ from an in-process Completer's (a swap of two near-equal words is not wrong). The server
    steps in fp32 (its batches read the weights once), so its answers are those of `--no-int8`."""
    completer, expected, wrong = Completer(seqtext.load(lm), int8=False), {}, 0
    for text, got in answers:
        if text not in expected:
            expected[text] = [(c.word, c.prob) for c in completer.suggest(text, 3)]
        want = expected[text]
        if len(got) != len(want):
            wrong += 1
        elif [w for w, _ in got] != [w for w, _ in want]:  # the same words, two near-equal ones swapped, is right
            close = all(abs(p - q) <= 1e-5 * max(q, 1e-12) for (_, p), (_, q) in zip(got, want, strict=True))
            wrong += not (sorted(got) == sorted(want) or (close and {w for w, _ in got} == {w for w, _ in want}))
    return wrong


def engine_rate(lm: Path, sentences: list[str], seconds: float) -> dict:
    """The engine in-process, as `seqtext complete` runs it: one thread, one keystroke at a time, the typists'
    sentences typed keystroke by keystroke (the server's cache size), for `seconds` after a warm-up sentence. In
    fp32 (`--no-int8`) as the server computes, so the ratio compares the same arithmetic."""
    completer = Completer(seqtext.load(lm), cache_size=COMPLETION_CACHE, int8=False)
    for end in range(len(sentences[0]) + 1):
        completer.suggest(sentences[0][:end], 3)
    keystrokes, n, start = 0, 1, time.perf_counter()
    until = start + seconds
    while time.perf_counter() < until:
        sentence = sentences[n % len(sentences)]
        for end in range(len(sentence) + 1):
            completer.suggest(sentence[:end], 3)
        keystrokes += len(sentence) + 1
        n += 1
    elapsed = time.perf_counter() - start
    per_s = keystrokes / elapsed
    return {"keystrokes": keystrokes, "keystrokes_per_s": per_s, "ms_per_keystroke": 1e3 / per_s}


def wrong_labels(clf: Path, batches: list[list[str]], answers: list[tuple]) -> int:
    loaded = seqtext.load(clf)
    expected = [[p.label for p in seqtext.classify(loaded, batch)] for batch in batches]
    return sum(labels != expected[index] for index, labels in answers)


class Memory(threading.Thread):
    """The server's resident memory (all its processes: the parent and each --workers process), every second."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.processes, self.samples, self.done = [psutil.Process(p) for p in pids], [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                self.samples.append(self.now())
            except psutil.Error:
                return

    def now(self) -> float:
        return sum(p.memory_info().rss for p in self.processes) / 2**20

    def each(self) -> list[float]:
        return [round(p.memory_info().rss / 2**20, 1) for p in self.processes]


def worker_pids(pid: int) -> list[int]:
    """The --workers processes of a server (none for a single process)."""
    return [child.pid for child in psutil.Process(pid).children()]


def workload(smoke: bool, sentences: int) -> dict:
    """What the clients send: sentences to type, batches of phrases to classify, the server's limits."""
    if smoke:
        lines = (ROOT / "corpora" / "frases_es.txt").read_text(encoding="utf-8").splitlines()[:20]
        table = ROOT / "corpora" / "frases_sentimiento.tsv"
    else:
        lines = (DATA / "spanish" / "tatoeba_es_valid.txt").read_text(encoding="utf-8").splitlines()[:sentences]
        table = DATA / "sst" / "rt_phrases_dev.tsv"
    phrases = [row.split("\t")[2] for row in table.read_text(encoding="utf-8").splitlines()[1:]]
    batches = [phrases[i : i + BATCH] for i in range(0, min(len(phrases), 20 * BATCH), BATCH)]
    return {
        "sentences": [line for line in lines if line.strip()],
        "batches": batches[:2] if smoke else batches,
        "limits": {"max_body_bytes": 1_000_000, "max_text_chars": 10_000},  # seqtext serve's defaults
    }


def run_load(lm: Path, clf: Path, args: argparse.Namespace, work: dict) -> dict:
    """Both phases against one server; the answers are checked after it has stopped."""
    flags = ["--no-access-log", "--workers", str(args.workers)]
    with serving([f"lm={lm}", f"classifier={clf}"], *flags) as server:
        while server.stderr().count("Application startup complete") < args.workers:  # every worker serves
            time.sleep(0.1)
        memory = Memory([server.process.pid, *worker_pids(server.process.pid)])
        memory.start()
        asyncio.run(phase(server.url, min(3.0, args.seconds), 4, work, mixed=True))  # warm-up, not counted
        rss = {"start": memory.now()}
        typing = asyncio.run(phase(server.url, args.seconds, args.clients, work, mixed=False))
        rss["after_typing"] = memory.now()
        mixed = asyncio.run(phase(server.url, args.seconds, args.clients, work, mixed=True))
        rss["end"] = memory.now()
        rss["each_process_end"] = memory.each()
        alive = server.process.poll() is None and httpx.get(server.url + "health").status_code == 200
        memory.done.set()
        rss["max"] = max([*memory.samples, rss["end"]])
        log = server.stderr()
    complete = {
        name: tallies["complete"].summary(args.seconds, wrong_suggestions(lm, tallies["complete"].answers))
        for name, tallies in (("typing", typing), ("mixed", mixed))
    }
    classify = mixed["classify"].summary(args.seconds, wrong_labels(clf, work["batches"], mixed["classify"].answers))
    classify["texts_per_s"] = classify["requests_per_s"] * BATCH
    streams, fault = mixed["streams"], mixed["faults"]
    engine = engine_rate(lm, work["sentences"], args.seconds / 4)
    complete["typing"]["ratio_to_engine"] = complete["typing"]["requests_per_s"] / engine["keystrokes_per_s"]
    return {
        "engine_in_process": engine,
        "typing": complete["typing"],
        "mixed": {
            "complete": complete["mixed"],
            "classify": classify,
            "streams_left": {"count": len(streams.latencies), "errors": len(streams.errors)},
            "faults": {"sent": len(fault.latencies), "unexpected": len(fault.errors), "examples": fault.errors[:5]},
        },
        "server": {
            "alive_after": alive,
            "rss_mb": rss,
            "left_generations_logged": log.count("a client left a generation"),
            "errors_logged": log.count(" ERROR "),
        },
    }


def models_of(lm: Path, clf: Path) -> dict:
    out = {}
    for name, run in (("lm", lm), ("classifier", clf)):
        c = seqtext.load(run).config
        out[name] = {
            "run": str(run),
            "level": c.level,
            "cell": c.cell,
            "hidden_dim": c.hidden_dim,
            "vocab": c.vocab_size,
        }
    return out


def failures(report: dict) -> int:
    r = report["results"]
    counted = [r["typing"]["errors"], r["typing"]["wrong"]]
    counted += [r["mixed"][k][f] for k in ("complete", "classify") for f in ("errors", "wrong")]
    counted += [r["mixed"]["streams_left"]["errors"], r["mixed"]["faults"]["unexpected"], r["server"]["errors_logged"]]
    return sum(counted) + (not r["server"]["alive_after"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", type=Path, help="language-model run to serve (default: a stand-in trained into --out)")
    parser.add_argument("--classifier", type=Path, help="classifier run to serve (default: a stand-in)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-serve"), help="where stand-ins are trained")
    parser.add_argument("--clients", type=int, default=50, help="concurrent typists")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=1, help="seqtext serve --workers: server processes")
    parser.add_argument("--sentences", type=int, default=200, help="validation sentences the typists cycle through")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on tiny models, no row written")
    parser.add_argument("--no-row", action="store_true", help="check only: print the JSON, append no row")
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    os.chdir(ROOT)
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.clients, args.seconds, args.out = 4, 2.0, Path(tmp) / "runs"
            torch.set_num_threads(1)  # tiny models: one thread is faster, and leaves a core to the server
        lm, clf = args.lm, args.classifier
        if lm is None or clf is None:
            trained = stand_ins(args.out, args.smoke)
            lm, clf = lm or trained[0], clf or trained[1]
        work = workload(args.smoke, args.sentences)
        report = {
            "benchmark": "bench_serve",
            "machine": describe(args.profile),
            "load_1min_at_start": load_at_start,
            "clients": args.clients,
            "seconds_per_phase": args.seconds,
            "models": models_of(lm, clf),
            "results": run_load(lm, clf, args, work),
        }
    report["failures"] = failures(report)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not (args.smoke or args.no_row):
        write_row(report, args)
    return 1 if report["failures"] else 0


def write_row(report: dict, args: argparse.Namespace) -> None:
    """One table row per run under '## bench_serve' in docs/benchmarks.md."""
    command = f"python scripts/bench_serve.py --clients {args.clients} --seconds {args.seconds:g}"
    command += "".join(f" --{k} {getattr(args, k)}" for k in ("lm", "classifier") if getattr(args, k))
    command += f" --workers {args.workers}" if args.workers > 1 else ""
    command += f" --profile {args.profile}"
    machine = row_cells(report["machine"], f"classify in {report['machine']['precision_auto']}")
    r, m = report["results"], report["models"]
    typing, complete, classify = r["typing"], r["mixed"]["complete"], r["mixed"]["classify"]
    rss = r["server"]["rss_mb"]

    def speed(t: dict) -> str:
        return f"{t['requests_per_s']:,.0f} req/s, {t['latency_ms_p50']:.1f} / {t['latency_ms_p99']:.1f} ms"

    engine = r["engine_in_process"]["keystrokes_per_s"]

    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {machine}, load {report['load_1min_at_start']:.2f} | "
        f"{m['lm']['level']} {m['lm']['cell']} {m['lm']['hidden_dim']}, V {m['lm']['vocab']:,} | {speed(typing)} | "
        f"{engine:,.0f} /s, {typing['ratio_to_engine']:.2f}× | {speed(complete)} | "
        f"{classify['texts_per_s']:,.0f} texts/s, {classify['latency_ms_p50']:.0f} / "
        f"{classify['latency_ms_p99']:.0f} ms | {r['mixed']['streams_left']['count']} left, "
        f"{r['mixed']['faults']['sent']} faults | {report['failures']} | "
        f"{rss['start']:.0f} → {rss['after_typing']:.0f} → {rss['end']:.0f} (max {rss['max']:.0f}) |\n"
    )
    append_row(
        "bench_serve",
        "A real `seqtext serve` on localhost; clients in one asyncio process on the same machine. Typing: "
        "/v1/complete per keystroke, closed loop, p50 / p99 latency. Mixed: the typists plus a /v1/classify "
        f"client ({BATCH} texts a request), stream clients that leave after 1-5 tokens and malformed or "
        "oversized requests. Failures: requests with no answer, an unexpected status or a wrong answer. Beside "
        "typing, the engine in-process (one thread, one keystroke at a time, the same sentences) and the server's "
        "rate as a ratio of it.\n\n"
        "| date | command | profile | machine | LM | typing | engine in-process, typing ÷ engine | complete, mixed "
        "| classify, mixed | streams, faults "
        "| failures | server RSS MB start → after typing → end |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
