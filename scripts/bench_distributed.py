"""Data-parallel training benchmark: one process against several under torchrun, same global batch.

    python scripts/bench_distributed.py [--seconds 60] [--processes 2] [--threads 2] [--device cpu]
                                        [--profile native|laptop] [--smoke]

Trains the default character-level LSTM (embedding 64, 2×512, bptt 128) on the prose of
../shared/data/spanish/quijote.txt for --seconds of training each way:

- 1 process with --threads threads and --batch-size 64;
- --processes processes under `python -m torch.distributed.run --standalone`, each with
  --threads ÷ --processes threads and --batch-size 64 ÷ --processes (the same global batch of 64).

Training throughput is the run's own figure (target tokens of all processes per second of training,
rank 0's clock), read from the last record of metrics.jsonl, with the validation loss there. On a
machine with 2 cores the honest expectation is parity, not a speed-up: the cores are the same, and
the processes add a gradient all-reduce per step. On GPUs pass --device cuda (one GPU per process).
Prints one JSON object and appends a row to docs/benchmarks.md. --smoke runs a few seconds of a
tiny model on the project's own corpus (for the test suite; no row).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import append_row  # scripts/ is on sys.path when a script runs
from machine import add_profile_option, describe, enter_profile, row_cells

ROOT = Path(__file__).resolve().parent.parent
QUIJOTE = ROOT.parent / "shared" / "data" / "spanish" / "quijote.txt"
SMOKE_DATA = ROOT / "corpora" / "frases_es.txt"
GLOBAL_BATCH = 64


def train(data: Path, out: Path, *, processes: int, threads: int, seconds: float, device: str, smoke: bool) -> dict:
    """One `seqtext train lm` run (under torchrun when processes > 1); its last evaluation record."""
    size = ["--hidden-dim", "32", "--embed-dim", "16", "--bptt", "32"] if smoke else ["--bptt", "128"]
    batch = (8 if smoke else GLOBAL_BATCH) // processes
    command = [
        *(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)] if processes > 1 else []),
        "-m", "seqtext", "train", "lm", str(data), "--out", str(out), "--sample-by", "stream",
        "--batch-size", str(batch), "--max-time", f"{seconds:g}s", "--patience", "0", "--device", device, *size,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    last = json.loads((out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    return {
        "processes": processes,
        "threads_per_process": threads,
        "batch_size_per_process": batch,
        "tokens_per_s": last["tokens_per_s"],
        "val_loss": last["val_loss"],
        "val_bpc": last["val_bpc"],
        "steps": last["step"],
        "train_seconds": last["seconds"],
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training budget of each run (--max-time)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun run")
    parser.add_argument("--threads", type=int, default=2, help="threads in all: the single process's count")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--smoke", action="store_true", help="a few seconds of a tiny model (for the test suite)")
    add_profile_option(parser)
    args = parser.parse_args()
    enter_profile(args.profile)
    if args.smoke:
        args.seconds = 2.0
    data = SMOKE_DATA if args.smoke else QUIJOTE
    if not data.is_file():
        raise SystemExit(f"{data}: missing (the shared data); run with --smoke, or fetch ../shared/data")
    split = max(1, args.threads // args.processes)
    with tempfile.TemporaryDirectory() as tmp:
        common = {"seconds": args.seconds, "device": args.device, "smoke": args.smoke}
        one = train(data, Path(tmp) / "one", processes=1, threads=args.threads, **common)
        many = train(data, Path(tmp) / "many", processes=args.processes, threads=split, **common)
    report = {
        "benchmark": "bench_distributed",
        "data": data.name,
        "device": args.device,
        "budget_seconds": args.seconds,
        "machine": {**describe(args.profile), "threads": args.threads},  # the runs' threads in all
        "global_batch": one["batch_size_per_process"],
        "one_process": one,
        "processes": many,
        "throughput_ratio": many["tokens_per_s"] / one["tokens_per_s"],
    }
    print(json.dumps(report, indent=2))
    if not args.smoke:
        write_row(report, args)


def write_row(report: dict, args: argparse.Namespace) -> None:
    command = (
        f"python scripts/bench_distributed.py --seconds {args.seconds:g} --processes {args.processes} "
        f"--threads {args.threads} --device {args.device} --profile {args.profile}"
    )
    one, many = report["one_process"], report["processes"]
    precision = f"{args.device}, {report['machine']['precision_auto'] if args.device == 'cpu' else 'auto'}"
    row = (
        f"| {time.strftime('%Y-%m-%d')} | `{command}` | {row_cells(report['machine'], precision)} | "
        f"1 × {one['threads_per_process']} threads: {one['tokens_per_s']:,.0f} | "
        f"{many['processes']} × {many['threads_per_process']} threads: {many['tokens_per_s']:,.0f} | "
        f"{report['throughput_ratio']:.2f}× | {one['val_bpc']:.3f} / {many['val_bpc']:.3f} |\n"
    )
    append_row(
        "bench_distributed",
        "Training throughput of one process against several under torchrun, with the same global batch\n"
        "(64) and the same cores; validation bits/char after the same budget.\n\n"
        "| date | command | profile | machine | one process tok/s | torchrun tok/s | ratio | val bpc one / torchrun |\n"
        "|---|---|---|---|---|---|---|---|",
        row,
    )


if __name__ == "__main__":
    sys.exit(main())
