"""Command line interface: parse flags, build configs, call the public API, render results.

Results go to stdout (pipeable); progress, tables, logs and errors go to stderr. This package is the
only place that imports typer and rich; commands live in one module per product area.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqtext.config import parse_duration
from seqtext.errors import SeqtextError, TrainingStopped

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="seqtext",
    help="Train and use recurrent (RNN/LSTM/GRU) language models and sentiment classifiers on text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include whole models and tensors
)
train_app = typer.Typer(help="Train a language model or a sentiment classifier.", no_args_is_help=True)
app.add_typer(train_app, name="train")
err = Console(stderr=True)


class Level(str, Enum):
    char = "char"
    word = "word"


class Cell(str, Enum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"


class SampleBy(str, Enum):
    auto = "auto"
    line = "line"
    stream = "stream"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def fail(message: str) -> NoReturn:
    """One red line on stderr (never wrapped: scripts grep it), exit code 1."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # escape: paths may contain [ ]
    raise typer.Exit(code=1)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Show SeqtextError as one red line on stderr and exit 1 (130 for Ctrl-C); real bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TrainingStopped as exc:
            if not exc.interrupted:
                fail(str(exc))
            command = shlex.join(["seqtext", *sys.argv[1:], *([] if "--resume" in sys.argv else ["--resume"])])
            err.print(f"[yellow]{escape(str(exc))}[/]; progress saved. Resume with: {escape(command)}", soft_wrap=True)
            raise typer.Exit(code=130) from None
        except SeqtextError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper


def explicit(ctx: typer.Context) -> set[str]:
    """Names of the options the user typed (not defaults), for --resume."""
    # Compared by name: typer may ship its own copy of click's ParameterSource enum.
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, source in sources.items() if getattr(source, "name", "DEFAULT") == "COMMANDLINE"}


def typed_over(saved: Any, given: Any, typed: set[str]) -> Any:
    """`saved` config with the fields the user typed again taken from `given` (for --resume)."""
    return dataclasses.replace(
        saved, **{f.name: getattr(given, f.name) for f in dataclasses.fields(given) if f.name in typed}
    )


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


@contextmanager
def training_progress(console: Console) -> Iterator[Callable[[Any], None]]:
    """Render TrainEvents as one progress bar (budget used), with evaluation lines printed above it.

    The bar appears with the first event, so errors found while reading the data print alone.
    """
    columns = (
        TextColumn("[bold]train[/]"),
        BarColumn(bar_width=24),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn(
            "step {task.fields[step]:,}  loss {task.fields[loss]}  val {task.fields[val]}  "
            "{task.fields[figure]}  {task.fields[speed]} {task.fields[unit]}/s"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console)
    task = progress.add_task("train", total=1000, step=0, loss="-", val="-", figure="bpc -", speed="-", unit="tok")

    def on_event(event: Any) -> None:
        fields: dict[str, Any] = {"completed": 1000 * event.progress, "step": event.step}
        if event.kind == "start":
            progress.start()
            info = event.info
            progress.console.print(
                f"{info['parameters']:,} parameters · {info['device']} · {info['precision']} · "
                f"{info['steps_per_epoch']:,} steps per epoch"
            )
            if "train_texts" in info:  # a classifier: what it reads, and how validation was held out
                progress.console.print(
                    f"{info['train_texts']:,} training texts ({info['skipped_empty']:,} empty skipped) · "
                    f"{info['valid_texts']:,} validation texts: {info['split']}"
                )
            fields.update(unit=info.get("unit", "tok"), figure="acc -" if "train_texts" in info else "bpc -")
        elif event.kind == "step":
            fields.update(loss=_fmt(event.loss), speed=f"{event.tokens_per_s:,.0f}")
        elif event.kind == "eval":
            m = event.metrics
            figure = f"acc {_fmt(m['val_accuracy'])}" if "val_accuracy" in m else f"bpc {_fmt(m.get('val_bpc'))}"
            fields.update(val=_fmt(m.get("val_loss")), figure=figure)
            shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items())
            progress.console.print(f"step {event.step:>7,}  epoch {event.epoch:>6.2f}  {shown}")
        elif event.kind == "save":
            progress.console.print(f"[green]  best so far, saved[/] (step {event.step:,})")
        progress.update(task, **fields)

    try:
        yield on_event
    finally:
        if progress.live.is_started:
            progress.stop()


def duration(value: str | None) -> float | None:
    return None if value is None else parse_duration(value)


@contextmanager
def curves_when_done(out: Path, plot: bool) -> Iterator[None]:
    """`train … --plot`: refuse at once when matplotlib is missing; when training stops, draw the run's
    curves into OUT/curves.png: after a full budget, --max-time, patience, a diverged loss or a Ctrl-C
    (the curves so far; the resumed run draws them again). A second Ctrl-C leaves without drawing."""
    if not plot:
        yield
        return
    from seqtext import plots

    plots.pyplot("--plot")

    def draw() -> None:
        if (out / "config.json").is_file():  # at least one evaluation was recorded and kept
            path = plots.plot_curves([out], out / "curves.png", metrics=plots.run_figures(out), what="--plot")
            err.print(f"[green]wrote[/] {escape(str(path))}")

    try:
        yield
    except TrainingStopped:
        with contextlib.suppress(SeqtextError):  # the stop's own message (and resume command) must win
            draw()
        raise
    draw()


# Register the commands (each module adds its own to `app` / `train_app`).
from seqtext.cli import evaluate, keyboard, lm, runs, sentiment, serve  # noqa: E402, F401
