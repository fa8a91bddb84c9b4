"""Commands that look at run directories of any kind: `plot` (training curves) and `inspect`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqtext.cli.common import err, friendly_errors

RECIPE = ("data", "valid", "valid_fraction", "bptt", "batch_size", "lr", "weight_decay", "clip", "epochs", "max_time")
RECIPE += ("patience", "eval_every", "teacher_forcing", "log_gradients", "precision", "device", "seed")


class XAxis(str, Enum):
    step = "step"
    epoch = "epoch"
    seconds = "seconds"


@friendly_errors
def plot_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (one line per run)")],
    out: Annotated[Path, typer.Option(help="Figure to write: .png, .svg or .pdf")],
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help="What to draw, one panel each (repeat for several): loss (training and validation), val_loss, "
            "val_bpc, val_ppl, train_loss, val_accuracy, val_macro_f1, tokens_per_s; with --log-gradients: "
            "grad_norm, grad_norm_max, grad_clipped, grad_norm.GROUP, grad_tt_ratio, grad_tt [default: loss]"
        ),
    ] = None,
    x: Annotated[XAxis, typer.Option(help="Horizontal axis")] = XAxis.step,
) -> None:
    """Draw the training curves recorded in the runs' metrics.jsonl."""
    from seqtext import plots

    path = plots.plot_curves(runs, out, metrics=metric or [plots.LOSS], x=x.value, what="seqtext plot")
    err.print(f"[green]wrote[/] {escape(str(path))}")


@friendly_errors
def inspect_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout")] = False,
) -> None:
    """A run at a glance: model, parameters per layer, vocabulary, recipe, best figures, files."""
    from seqtext.runs.inspection import inspect_run

    summary = inspect_run(run)
    if as_json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in summary_rows(summary):
        table.add_row(name, escape(value))
    err.print(table)


def summary_rows(s: Any) -> list[tuple[str, str]]:
    """The lines of `seqtext inspect`, as (heading, text)."""
    m = s.model
    kind = (
        "language model" if s.kind == "lm" else f"classifier over {len(m['labels'])} labels: {', '.join(m['labels'])}"
    )
    from seqtext.plots import CELLS

    both = "bidirectional " if m.get("bidirectional") else ""
    shape = f"{m['level']}-level {both}{CELLS[m['cell']]}, {m['layers']} × {m['hidden_dim']}"
    extras = [f"embedding {m['embed_dim']}", f"dropout {m['dropout']:g}"]
    if s.kind == "lm":
        extras += [f"read by {m['sample_by']}", "tied embedding" if m["tie_weights"] else "untied"]
    else:
        extras += [f"{m['pooling']} pooling", "lower-cased" if m["lowercase"] else "case kept"]
    layers = " · ".join(f"{name} {count:,}" for name, count in s.parameters_per_layer.items())
    sample = " ".join(json.dumps(token, ensure_ascii=False) for token in s.vocab_sample)
    rows = [
        ("run", f"{s.path} · {kind} · seqtext {s.seqtext_version}, format {s.format_version}"),
        ("model", f"{shape}; {', '.join(extras)}"),
        ("parameters", f"{s.parameters:,}: {layers}"),
        ("vocabulary", f"{s.vocab_size:,} tokens; {sample}{' …' if s.vocab_size > 4 + len(s.vocab_sample) else ''}"),
        ("recipe", _recipe(s.recipe)),
        *([("word vectors", _vectors(s.recipe))] if s.recipe and s.recipe.get("embeddings") else []),
    ]
    if s.last is not None:
        rows.append(("training", f"{s.evaluations} evaluations; the last at {_when(s.last)}"))
    if s.best is not None:
        b = s.best
        rows.append(("best", f"{b['metric']} {b['figures'][b['metric']]:.4f} ({b['mode']}) at {_when(b)}"))
    rows.append(("state", f"unfinished: {s.unfinished}" if s.unfinished else "finished"))
    rows.append(("files", " · ".join(f"{name} {_size(size)}" for name, size in s.files.items())))
    return rows


def _recipe(recipe: dict[str, Any] | None) -> str:
    if recipe is None:
        return "unknown (no train_config.json)"
    shown = {k: recipe[k] for k in RECIPE if k in recipe and recipe[k] is not None and recipe[k] is not False}
    return ", ".join(f"--{k.replace('_', '-')} {'' if v is True else v}".rstrip() for k, v in shown.items())


def _vectors(recipe: dict[str, Any]) -> str:
    """--embeddings: the file (provenance only: the vectors are in the weights), frozen or not, and its coverage."""
    coverage = recipe.get("embeddings_coverage") or {}
    shares = ""
    if {"training_words", "training_tokens"} <= set(coverage):
        shares = (
            f": {coverage['training_words']:.1%} of the training words, {coverage['training_tokens']:.1%} of tokens"
        )
    return f"{recipe['embeddings']} ({'frozen' if recipe.get('freeze_embeddings') else 'fine-tuned'}){shares}"


def _when(evaluation: dict[str, Any]) -> str:
    """Step, epoch and time of an evaluation, and its figures."""
    figures = ", ".join(f"{k} {v:.4f}" for k, v in evaluation["figures"].items() if isinstance(v, int | float))
    epoch = "epoch unknown" if evaluation["epoch"] is None else f"epoch {evaluation['epoch']:.2f}"
    return f"step {evaluation['step']:,}, {epoch}, {_seconds(evaluation['seconds'])}: {figures}"


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "time unknown"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    return f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB"
