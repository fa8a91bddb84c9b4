"""The keyboard in the page: per-keystroke latency of `seqtext serve`'s in-page keyboard in headless Chromium.

    python -m pip install -e ".[serve,bench,dev]"     # FastAPI, uvicorn; playwright drives Debian's chromium
    python scripts/bench_page.py [--lm RUN] [--sentences 40] [--profile P] [--smoke]

Starts `seqtext serve LM --port 0`, opens its page in headless Chromium (Debian's chromium, driven by
playwright), switches the keyboard to "in the page" and types the first --sentences lines of
tatoeba_es_valid.txt one key at a time, waiting for each key's suggestions. The page measures each
keystroke itself, from the key to its suggestions on the page (loading the model is not a keystroke);
the figures are the page's: p50, p99 and max, and which kernel ran the network (WebAssembly SIMD or
plain JavaScript). Target: p99 ≤ 10 ms. Without --lm, the stand-in of bench_serve.py (`--preset
keyboard`, one epoch of tatoeba_es_train.txt, with its n-gram) is trained once into --out. --profile
changes only the server's torch: the page's kernel is the browser's. Prints one JSON object and appends
a row to docs/benchmarks.md (not with --no-row); --smoke types three sentences with a tiny model and
writes no row. Time it on an idle machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench_serve import stand_ins  # scripts/ is on sys.path when a script runs
from benchmarks_md import append_row
from machine import add_profile_option, describe, enter_profile, row_cells
from serve_harness import chromium_page, in_page_latency, serving, type_keystroke_by_keystroke

import seqtext

ROOT = Path(__file__).resolve().parent.parent
VALID = Path("..") / "shared" / "data" / "spanish" / "tatoeba_es_valid.txt"  # relative to the project root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", type=Path, help="language-model run (default: bench_serve's stand-in in --out)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-serve"), help="where the stand-in is trained")
    parser.add_argument("--sentences", type=int, default=40, help="validation sentences typed in the page")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on a tiny model, no row written")
    parser.add_argument("--no-row", action="store_true", help="check only: print the JSON, append no row")
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    os.chdir(ROOT)
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.sentences, args.out = 3, Path(tmp) / "runs"
        lm = args.lm or stand_ins(args.out, args.smoke)[0]
        sentences = [s for s in VALID.read_text(encoding="utf-8").splitlines() if s.strip()][: args.sentences]
        config = seqtext.load(lm).config
        with serving([f"kbd={lm}"], "--no-access-log") as server, chromium_page(Path(tmp) / "profile") as page:
            page.goto(server.url)
            for sentence in sentences:
                type_keystroke_by_keystroke(page, sentence, "page")
            figures = in_page_latency(page)
            browser = page.evaluate("navigator.userAgent")
    report = {
        "benchmark": "bench_page",
        "machine": describe(args.profile),
        "load_1min_at_start": load_at_start,
        "browser": browser,
        "model": {
            "run": str(lm),
            "level": config.level,
            "cell": config.cell,
            "hidden_dim": config.hidden_dim,
            "vocab": config.vocab_size,
            "ngram": bool(config.ngram_weights),
        },
        "sentences": len(sentences),
        "in_page": figures,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not (args.smoke or args.no_row):
        write_row(report, args)
    return 0


def write_row(report: dict, args: argparse.Namespace) -> None:
    """One table row per run under '## The keyboard in the page' in docs/benchmarks.md."""
    command = f"python scripts/bench_page.py --sentences {args.sentences}"
    command += f" --lm {args.lm}" if args.lm else ""
    command += f" --profile {args.profile}"
    m, f = report["model"], report["in_page"]
    model = f"{m['level']} {m['cell']} {m['hidden_dim']}, V {m['vocab']:,}{', n-gram' if m['ngram'] else ''}"
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {row_cells(report['machine'], None)}, load "
        f"{report['load_1min_at_start']:.2f} | {model} | {f['kernel']} | {f['keystrokes']:,} | "
        f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f} / {f['max_ms']:.2f} |\n"
    )
    append_row(
        "The keyboard in the page",
        "Per-keystroke latency of the keyboard in the page, measured by the page in headless Chromium.\n\n"
        "| date | command | profile | machine | model | kernel | keystrokes | p50 / p99 / max ms |\n"
        "|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
