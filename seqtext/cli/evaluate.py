"""`seqtext evaluate`: the figures of a run on a data file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqtext.cli import app, err, friendly_errors


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory")],
    data: Annotated[str, typer.Argument(help="Data file to evaluate on")],
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON on stdout")] = False,
) -> None:
    """Report loss, perplexity and bits per character of a language model on a data file."""
    import seqtext

    metrics = seqtext.evaluate(run, data, text_column=text_column)
    if as_json:
        print(json.dumps(metrics.to_dict()))
        return
    table = Table(title=f"{run} on {data}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in metrics.to_dict().items():
        table.add_row(name, f"{value:,}" if isinstance(value, int) else f"{value:.4f}")
    err.print(table)
