"""`seqtext evaluate`: the figures of a run on a data file, a language model's or a classifier's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqtext.cli.common import err, fail, friendly_errors


@friendly_errors
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    data: Annotated[str, typer.Argument(help="Data file to evaluate on")],
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    label_column: Annotated[str | None, typer.Option(help="Classifier: column holding the labels")] = None,
    plot: Annotated[Path | None, typer.Option(help="Classifier: draw the confusion matrix to this PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout")] = False,
    keyboard: Annotated[
        bool, typer.Option(help="Also simulate a typist: keystroke savings, next-word top-1/top-k, latency")
    ] = False,
    k: Annotated[int, typer.Option("--k", min=1, help="Suggestions shown to the simulated typist")] = 3,
    ngram: Annotated[
        bool, typer.Option(help="--keyboard: mix in the run's n-gram when it has one (--no-ngram: the model alone)")
    ] = True,
) -> None:
    """Report a language model's loss, perplexity and bits per character, or a classifier's accuracy."""
    import seqtext

    if plot is not None:  # refused before the work starts
        from seqtext import plots

        plots.check_output(plot, "--plot", inputs=[data])
        plots.pyplot("--plot")
    loaded = seqtext.load(run)
    if plot is not None and loaded.kind != "classifier":
        fail(f"--plot draws a classifier's confusion matrix; {run} is a language model run (drop --plot)")
    with err.status("typing every line as the simulated typist…" if keyboard else "evaluating…"):
        metrics = seqtext.evaluate(
            loaded, data, text_column=text_column, label_column=label_column, keyboard=keyboard, k=k, ngram=ngram
        )
    if isinstance(metrics, seqtext.ClassifierMetrics):
        show_classifier_metrics(metrics, f"{run} on {data}", as_json=as_json, plot=plot)
        return
    if as_json:
        print(json.dumps(metrics.to_dict()))
        return
    table = Table(title=f"{run} on {data}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in metrics.to_dict().items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else f"{value:.4f}")
    err.print(table)


def show_classifier_metrics(metrics: Any, title: str, *, as_json: bool, plot: Path | None) -> None:
    """Figures as JSON on stdout, or rich tables on stderr: summary, per class, confusion matrix."""
    if plot is not None:
        from seqtext.plots import plot_confusion

        err.print(f"[green]wrote[/] {escape(str(plot_confusion(metrics, plot, title)))}")
    if as_json:
        print(json.dumps(metrics.to_dict()))
        return
    summary = Table(title=title)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    binary = "-" if metrics.binary_accuracy is None else f"{metrics.binary_accuracy:.4f}"
    for name, value in [
        ("accuracy", f"{metrics.accuracy:.4f}"),
        ("macro-F1", f"{metrics.macro_f1:.4f}"),
        ("binary accuracy (non-neutral, 0-1 vs 3-4)", binary),
        ("loss (nats)", f"{metrics.loss:.4f}"),
        ("texts", f"{metrics.texts:,}"),
    ]:
        summary.add_row(name, value)
    err.print(summary)
    per_class = Table(title="per class")
    for name in ("label", "precision", "recall", "F1", "support"):
        per_class.add_column(name, justify="left" if name == "label" else "right")
    for c in metrics.per_class:
        per_class.add_row(
            f"{c['label']} {c['name']}",
            f"{c['precision']:.3f}",
            f"{c['recall']:.3f}",
            f"{c['f1']:.3f}",
            f"{c['support']:,}",
        )
    err.print(per_class)
    confusion = Table(title="confusion matrix (rows gold, columns predicted)")
    confusion.add_column("gold \\ predicted")
    for c in range(len(metrics.labels)):
        confusion.add_column(str(c), justify="right")
    for c, row in enumerate(metrics.confusion):
        confusion.add_row(
            f"{c} {metrics.labels[c]}", *(f"[bold]{n:,}[/]" if j == c else f"{n:,}" for j, n in enumerate(row))
        )
    err.print(confusion)
