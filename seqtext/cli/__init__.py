"""Command line interface: parse flags, build configs, call the public API, render results.

Results go to stdout (pipeable); progress, tables, logs and errors go to stderr. This package is the
only place that imports typer and rich. The commands live in one module per product area, their
shared helpers in `seqtext.cli.common`; this module builds the app from them (a new command is
registered below). Options that are config fields take their defaults and choices from the config
dataclasses (docs/development.md, "The command line").
"""

from __future__ import annotations

import sys

import typer

from seqtext.cli import evaluate, export, keyboard, lm, runs, sentiment, serve

app = typer.Typer(
    name="seqtext",
    help="Train and use recurrent (RNN/LSTM/GRU) language models and sentiment classifiers on text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include whole models and tensors
)
train_app = typer.Typer(help="Train a language model or a sentiment classifier.", no_args_is_help=True)
app.add_typer(train_app, name="train")

train_app.command("lm")(lm.train_lm_cmd)
train_app.command("classifier")(sentiment.train_classifier_cmd)
# `seqtext --help` lists the commands in this order
app.command("evaluate")(evaluate.evaluate_cmd)
app.command("complete")(keyboard.complete_cmd)
app.command("generate")(lm.generate_cmd)
app.command("gradients")(lm.gradients_cmd)
app.command("plot")(runs.plot_cmd)
app.command("inspect")(runs.inspect_cmd)
app.command("classify")(sentiment.classify_cmd)
app.command("serve")(serve.serve_cmd)
app.command("export")(export.export_cmd)


def main() -> None:
    """The `seqtext` command: the app, and an exit that torch's threads cannot abort under torchrun."""
    try:
        app(prog_name="seqtext")
    except SystemExit as done:
        processes = sys.modules.get("seqtext.training.distributed")  # imported by the commands that train
        if processes is None:
            raise
        processes.leave(done.code)  # sys.exit, without the teardown where this process was one of a run's
