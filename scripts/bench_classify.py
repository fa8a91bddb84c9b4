"""Classify speed of the default sentiment recipe: `seqtext classify` end to end and the Python API.

    python scripts/bench_classify.py [--run RUN] [--repeats 3] [--profile native|laptop] [--no-fast] [--smoke]

It times the same thing as bench_sentiment.py: 200,000 phrases (the dev phrases of
../shared/data/sst/rt_phrases_dev.tsv, repeated). It does not train for 15 minutes first. Without
--run it trains the default recipe for one epoch on ../shared/data/rotten_tomatoes_phrases/train.tsv.
Speed depends on the model's sizes, its tokenizer and its phrase memory, not on how long it trained.
Each measurement runs --repeats times; it reports every run and the median. Prints one JSON object and
appends a row to docs/benchmarks.md. --smoke runs in seconds on the small corpus and appends nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_sentiment import DEV_PHRASES, ROOT, TRAIN, classify_speed, seqtext_cli
from benchmarks_md import append_row
from machine import add_profile_option, describe, enter_profile, row_cells
from sentiment_baselines import read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a classifier run to time (default: the recipe, one epoch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on small slices (for the tests)")
    parser.add_argument(
        "--fast", action=argparse.BooleanOptionalAction, default=True, help="classify --fast (default) or --no-fast"
    )
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = args.run
        if run is None:
            run = folder / "clf"
            data = ROOT / "corpora" / "frases_sentimiento.tsv" if args.smoke else TRAIN
            tiny = ["--embed-dim", "16", "--hidden-dim", "16"] if args.smoke else []
            seqtext_cli("train", "classifier", str(data), "--out", str(run), "--epochs", "1", *tiny)
        texts = read_rows(DEV_PHRASES)[0][: 2000 if args.smoke else None]
        runs = [classify_speed(run, texts, folder, args.fast) for _ in range(1 if args.smoke else args.repeats)]
        model = json.loads((run / "config.json").read_text(encoding="utf-8"))["model"]
    report = {
        "benchmark": "bench_classify",
        "run": str(args.run) if args.run else "default recipe, 1 epoch",
        "fast": args.fast,
        "model": {k: model[k] for k in ("level", "cell", "embed_dim", "hidden_dim", "layers", "vocab_size")},
        "phrases": runs[0]["phrases"],
        "runs": runs,
        "cli_phrases_per_s": statistics.median(r["cli_phrases_per_s"] for r in runs),
        "api_phrases_per_s": statistics.median(r["api_phrases_per_s"] for r in runs),
        "target_cli_phrases_per_s": 20_000,
        "machine": describe(args.profile),
    }
    report["met"] = report["cli_phrases_per_s"] >= report["target_cli_phrases_per_s"]
    print(json.dumps(report, indent=2))
    if not args.smoke:
        write_row(report, args)


def write_row(report: dict, args: argparse.Namespace) -> None:
    command = "python scripts/bench_classify.py" + (f" --run {args.run}" if args.run else "")
    command += f" --repeats {args.repeats}" if args.repeats != 3 else ""
    command += f" --profile {args.profile}" + ("" if args.fast else " --no-fast")
    m = report["model"]
    each = ", ".join(f"{r['cli_phrases_per_s']:,.0f}" for r in report["runs"])
    machine = row_cells(report["machine"], report["machine"]["precision_auto"])  # classify's --precision auto
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {machine} | "
        f"{m['level']} {m['cell']} {m['embed_dim']}/{m['hidden_dim']}, V {m['vocab_size']:,} | "
        f"{report['cli_phrases_per_s']:,.0f} ({each}) | {report['api_phrases_per_s']:,.0f} | "
        f"{'met' if report['met'] else 'not met'} |\n"
    )
    append_row(
        "bench_classify",
        "`seqtext classify RUN phrases.txt --output out.tsv` on 200,000 dev phrases, end to end (process start, "
        "reading, writing included), and `seqtext.classify` in process; the median of the repeats.\n\n"
        "| date | command | profile | machine | model | CLI phrases/s (each) | API phrases/s | ≥ 20,000/s |\n"
        "|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
