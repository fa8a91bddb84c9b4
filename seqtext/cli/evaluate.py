"""`seqtext evaluate`: the figures of a run on a data file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqtext.cli import app, err, fail, friendly_errors


@app.command("evaluate")
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
    from seqtext.cli.sentiment import show_classifier_metrics

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
