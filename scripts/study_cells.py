"""The cell study of docs/cells.md: an Elman RNN, an LSTM and a GRU with the same embedding, hidden
size and wall-clock budget on Don Quijote (character level), each with and without clipping.

    python scripts/study_cells.py [--seconds 300] [--hidden-dim 512] [--runs runs/cells] [--docs docs] [--smoke]

Timed (tokens/s and what a budget buys depend on the machine): run it alone on an idle machine;
it takes about 6 × --seconds plus a few minutes of measuring. It writes the 95/5 line split of
quijote.txt to RUNS/data, the six runs to RUNS/{rnn,lstm,gru}-{clip,noclip} (trained with
--log-gradients), the figures to DOCS/cells_curves.png and DOCS/cells_gradients.png, and the page
DOCS/cells.md: the table, the figures, the commands that reproduce each, and a marked place for
the interpretation. Prints the table's figures as one JSON object. --smoke trains tiny models for
one short epoch each (seconds, no wall-clock budget) into a temporary folder, and marks its page
as a smoke run; it writes under docs/ only when --docs says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from bench_lm import split_lines  # scripts/ is on sys.path when a script runs

import seqtext
from seqtext import LMConfig, TrainConfig
from seqtext.errors import TrainingStopped
from seqtext.models import count_parameters
from seqtext.plots import plot_curves, plot_gradients
from seqtext.runs.reading import read_metrics
from seqtext.runtime import pick_device, resolve_precision

ROOT = Path(__file__).resolve().parent.parent
QUIJOTE = ROOT.parent / "shared" / "data" / "spanish" / "quijote.txt"
CELLS = ("rnn", "lstm", "gru")
NAMES = {"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}
CURVES, GRADIENTS = "cells_curves.png", "cells_gradients.png"
INTERPRETATION = "<!-- interpretation: written after the study has run; say only what the numbers show -->"


@dataclass(frozen=True)
class Row:
    name: str
    cell: str
    clip: float
    parameters: int
    tokens_per_s: float
    steps: int
    valid_bpc: float
    clipped: float | None  # share of steps clipped; None when clipping is off
    max_grad_norm: float
    ratio: float  # gradient left after --steps steps back, relative to the gradient at T
    stopped: str


def train_command(model: LMConfig, train: TrainConfig) -> str:
    """The `seqtext train lm` command that trains the same run."""
    args = ["seqtext", "train", "lm", train.data, "--valid", str(train.valid), "--cell", model.cell]
    args += ["--layers", str(model.layers), "--embed-dim", str(model.embed_dim), "--hidden-dim", str(model.hidden_dim)]
    args += ["--bptt", str(train.bptt), "--batch-size", str(train.batch_size), "--clip", f"{train.clip:g}"]
    args += ["--max-time", f"{train.max_time:g}s"] if train.max_time else ["--epochs", str(train.epochs)]
    args += ["--patience", str(train.patience), "--eval-every", str(train.eval_every), "--log-gradients"]
    return shlex.join([*args, "--out", train.out])


def train_one(model: LMConfig, train: TrainConfig, valid: Path, steps: int) -> tuple[Row, dict[str, Any]]:
    """Train one run (a diverged run keeps its last good checkpoint), measure it; its gradient report too."""
    try:
        result = seqtext.train_lm(model, train)
        stopped, tokens_per_s, total = result.stopped_by, result.tokens_per_s, result.steps
    except TrainingStopped as exc:  # e.g. an Elman RNN without clipping: a finding, not a failure
        stopped, tokens_per_s, total = f"diverged at step {exc.step}", math.nan, exc.step
    records = read_metrics(Path(train.out))
    tokens_per_s = tokens_per_s if math.isfinite(tokens_per_s) else records[-1]["tokens_per_s"]
    logged = [r for r in records if r.get("grad_steps")]
    clipped = sum(r["grad_clipped"] * r["grad_steps"] for r in logged) / sum(r["grad_steps"] for r in logged)
    report = seqtext.gradients(train.out, valid, steps=steps)
    row = Row(
        name=Path(train.out).name,
        cell=model.cell,
        clip=train.clip,
        parameters=count_parameters(seqtext.load(train.out).model),
        tokens_per_s=tokens_per_s,
        steps=total,
        valid_bpc=seqtext.evaluate(train.out, valid).bits_per_char,
        clipped=clipped if train.clip else None,
        max_grad_norm=max(r["grad_norm_max"] for r in logged),
        ratio=report.ratio,
        stopped=stopped,
    )
    return row, report.to_dict()


def figures(runs: Path, docs: Path, rows: list[Row], reports: list[dict], valid: Path, steps: int) -> dict[str, str]:
    """Draw both figures with the API behind the commands the page shows; return those commands."""
    paths = [runs / row.name for row in rows]
    clipped = [runs / row.name for row in rows if row.clip]
    # The legend names each run as given: relative to the project root, as the page's commands do.
    here = Path.cwd()
    os.chdir(ROOT)
    try:
        plot_curves([Path(rel(p)) for p in paths], docs / CURVES, metrics=["val_bpc", "grad_norm_max"], x="seconds")
    finally:
        os.chdir(here)
    plot_gradients([report for row, report in zip(rows, reports, strict=True) if row.clip], docs / GRADIENTS)
    curves = ["seqtext", "plot", *map(rel, paths), "--metric", "val_bpc", "--metric", "grad_norm_max"]
    return {
        CURVES: shlex.join([*curves, "--x", "seconds", "--out", rel(docs / CURVES)]),
        GRADIENTS: shlex.join(
            [
                "seqtext",
                "gradients",
                *map(rel, clipped),
                rel(valid),
                "--steps",
                str(steps),
                "--plot",
                rel(docs / GRADIENTS),
            ]
        ),
    }


def page(rows: list[Row], commands: dict[str, str], runs: list[str], s: dict[str, Any]) -> str:
    """docs/cells.md: what was run, the table, the figures with their commands, room for the reading."""
    banner = "> **Smoke run**: tiny models for one short epoch each, to check the page; not the study.\n\n"
    table = [
        "| cell | clipping | parameters | tokens/s | steps | validation bpc | clipped steps | max gradient norm "
        f"| gradient left after {s['steps']} steps | stopped by |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        clip = f"`--clip {r.clip:g}`" if r.clip else "off (`--clip 0`)"
        share = "–" if r.clipped is None else f"{r.clipped:.1%}"
        table.append(
            f"| {NAMES[r.cell]} | {clip} | {r.parameters:,} | {r.tokens_per_s:,.0f} | {r.steps:,} | {r.valid_bpc:.3f} "
            f"| {share} | {r.max_grad_norm:.3g} | {r.ratio:.2e} | {r.stopped} |"
        )
    nl = "\n"
    return f"""# Elman RNN, LSTM and GRU: the same budget, with and without clipping

{banner if s["smoke"] else ""}Three recurrent cells with the same embedding ({s["embed_dim"]}), hidden size \
({s["hidden_dim"]}, one layer) and wall-clock budget ({s["budget"]} each) learn Don Quijote character by character \
(`{s["data"]}`: the first 95% of its lines for training, the last 5% for validation), each once with gradient \
clipping (`--clip 1`) and once without (`--clip 0`). Everything else is seqtext's default recipe (AdamW 3e-3 with \
warm-up and cosine decay over the budget, bptt {s["bptt"]}, batch {s["batch_size"]}, dropout 0.1, seed 0, no early \
stopping), and every run records its gradients (`--log-gradients`). One seed per configuration.

Measured {s["date"]} on {s["machine"]}, {s["threads"]} torch threads, {s["precision"]}; 1-minute load average \
{s["load"]:.2f} when the study started. Reproduce everything (about {s["total"]}; alone on an idle machine, since \
the budgets are wall-clock):

```sh
{s["command"]}
```

## The table

{nl.join(table)}

- **parameters**: the whole model (embedding, recurrent layer, output layer). An LSTM has four gate matrices \
where the Elman RNN has one and the GRU three, so at the same hidden size it is the largest and the slowest per token.
- **tokens/s**: training throughput, evaluations excluded, with `--log-gradients` on (one norm per parameter \
group per step; its gradient-through-time probe runs with each evaluation, inside the budget). **steps**: the \
optimizer steps the budget allowed.
- **validation bpc**: bits per character of the kept (best) checkpoint on the validation text (`seqtext evaluate`).
- **clipped steps**: the share of optimizer steps whose gradient norm exceeded `--clip`, recorded at every step \
before clipping. **max gradient norm**: the largest norm of any step.
- **gradient left after {s["steps"]} steps**: mean ‖∂L_T/∂h_T−{s["steps"]}‖ ÷ mean ‖∂L_T/∂h_T‖ on validation \
windows, for the kept model (`seqtext gradients`).

The six runs, one by one:

```sh
{nl.join(runs)}
```

## Validation curves and gradient norms

![validation bits per character and the largest gradient norm over training time, six runs]({CURVES})

```sh
{commands[CURVES]}
```

## Gradients through time

The gradient of the loss at the last step T with respect to the hidden state carried from step t, for \
t = T … T−{s["steps"]}, averaged over 64 validation windows (band: 10th-90th percentile), for the three clipped runs:

![gradient of the last step's loss with respect to each earlier hidden state, three cells]({GRADIENTS})

```sh
{commands[GRADIENTS]}
```

## What the numbers show

{INTERPRETATION}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="wall-clock budget of each of the six runs")
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=40, help="optimizer steps between evaluations")
    parser.add_argument("--steps", type=int, default=128, help="how far back the gradient through time is measured")
    parser.add_argument("--runs", type=Path, help="where the runs go [runs/cells; --smoke: a temporary folder]")
    parser.add_argument("--docs", type=Path, help="where the page and figures go [docs; --smoke: runs/cells-smoke]")
    parser.add_argument("--smoke", action="store_true", help="tiny models, one short epoch each (seconds)")
    args = parser.parse_args()
    args.runs, args.docs = (None if p is None else p.resolve() for p in (args.runs, args.docs))
    os.chdir(ROOT)  # the page's commands name paths relative to the project root, where they run
    load, date = os.getloadavg()[0], time.strftime("%Y-%m-%d")
    model = LMConfig(level="char", layers=1, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim)
    recipe = TrainConfig(max_time=args.seconds, patience=0, eval_every=args.eval_every, log_gradients=True)
    if args.smoke:
        model = replace(model, embed_dim=16, hidden_dim=32)
        recipe = replace(recipe, max_time=None, epochs=1, bptt=32, batch_size=16, eval_every=20)
        args.steps = 24
        torch.set_num_threads(1)  # tiny models: one thread is fastest, and the test suite may share the machine
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or (Path(tmp) if args.smoke else ROOT / "runs" / "cells")
        docs = args.docs or ROOT / ("runs/cells-smoke" if args.smoke else "docs")
        if any((runs / f"{cell}-clip").exists() for cell in CELLS):
            sys.exit(f"{runs} already holds the study's runs; pass --runs DIR or delete them")
        (runs / "data").mkdir(parents=True, exist_ok=True)
        train, valid, _, _ = split_lines(QUIJOTE, runs / "data", 800 if args.smoke else None)
        recipe = replace(recipe, data=rel(train), valid=rel(valid))
        rows, reports, commands = [], [], []
        for cell, clip in [(cell, clip) for cell in CELLS for clip in (1.0, 0.0)]:
            cfg = replace(recipe, clip=clip, out=rel(runs / f"{cell}-{'clip' if clip else 'noclip'}"))
            commands.append(train_command(replace(model, cell=cell), cfg))
            print(commands[-1], file=sys.stderr)
            row, report = train_one(replace(model, cell=cell), cfg, valid, args.steps)
            rows.append(row)
            reports.append(report)
        figure_commands = figures(runs, docs, rows, reports, valid, args.steps)
        settings = {
            "smoke": args.smoke,
            "embed_dim": model.embed_dim,
            "hidden_dim": model.hidden_dim,
            "budget": f"{args.seconds:g} s" if recipe.max_time else "one epoch",
            "total": "a minute" if args.smoke else f"{6 * args.seconds / 60 + 3:.0f} minutes",
            "data": os.path.relpath(QUIJOTE, ROOT),
            "bptt": recipe.bptt,
            "batch_size": recipe.batch_size,
            "steps": args.steps,
            "date": date,
            "load": load,
            "machine": f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)",
            "threads": torch.get_num_threads(),
            "precision": resolve_precision(recipe.precision, pick_device(recipe.device)),
            "command": shlex.join(["python", "scripts/study_cells.py", *sys.argv[1:]]),
        }
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "cells.md").write_text(page(rows, figure_commands, commands, settings), encoding="utf-8")
        report = {"benchmark": "study_cells", "page": str(docs / "cells.md"), "rows": [r.__dict__ for r in rows]}
        print(json.dumps(report, indent=2))


def rel(path: Path) -> str:
    """A path as the page's commands name it: relative to the project root, where they run."""
    return os.path.relpath(path, ROOT)


if __name__ == "__main__":
    main()
