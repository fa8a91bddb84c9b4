"""What every command shares: one-line errors and exit codes, stdout for results and stderr for the rest,
the training progress bar, and configs built from a command's options.

The command modules import this one; `seqtext.cli` builds the app from the commands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TextIO, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqtext.errors import SeqtextError, TrainingStopped
from seqtext.limits import parse_duration

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")


class _Stderr:
    """sys.stderr for rich, except that a closed or broken stderr (`2>&1 | head`) never stops the work:
    what cannot be shown is dropped, and training goes on."""

    broken = False

    def write(self, text: str) -> int:
        if not self.broken and sys.stderr is not None:
            try:
                return sys.stderr.write(text)
            except (OSError, ValueError):  # BrokenPipeError, or a closed file
                self.broken = True
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if not self.broken:
                sys.stderr.flush()

    def isatty(self) -> bool:
        return not self.broken and sys.stderr is not None and sys.stderr.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stderr, name)


err = Console(file=_Stderr())  # type: ignore[arg-type]


def fail(message: str, *, shown: bool = True) -> NoReturn:
    """One red line on stderr (never wrapped: scripts grep it), exit code 1. Under torchrun a process
    other than rank 0 says which it is, and says nothing about what rank 0 reports (shown=False)."""
    if shown:  # escape: paths may contain [ ]
        err.print(f"[bold red]error:[/] {escape(_processes().rank_label() + message)}", soft_wrap=True)
    raise typer.Exit(code=1)


def _processes() -> Any:
    """seqtext.training.distributed (which of torchrun's processes this is), imported when a command runs:
    it imports torch, which `seqtext --help` does not need."""
    from seqtext.training import distributed

    return distributed


def stdout() -> TextIO:
    """Standard output for results; a closed one (`>&-`) is a clear error rather than lost output."""
    if sys.stdout is None or sys.stdout.closed:
        raise SeqtextError("standard output is closed; redirect it to a file (> FILE), or pass --output")
    return sys.stdout


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop stops a command like Ctrl-C: cleanup runs, temporary files go."""


@contextmanager
def _sigterm_like_ctrl_c() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """The reader of stdout left (`| head`): send what is still buffered nowhere, so exit stays quiet."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file (tests) or already closed
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Show SeqtextError as one red line on stderr and exit 1; real bugs keep their traceback.

    Ctrl-C exits 130 and SIGTERM 143 (128 + the signal, the shell's convention); an interrupted
    training prints the command that resumes it. When the reader of stdout goes away (`| head`) the
    command ends quietly with exit 0.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with _sigterm_like_ctrl_c():
                result = fn(*args, **kwargs)
                if sys.stdout is not None and not sys.stdout.closed:
                    sys.stdout.flush()  # here, where a broken pipe can still be caught
                return result
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(code=0) from None
        except TrainingStopped as exc:
            distributed = _processes()
            again = distributed.relaunch(["seqtext", *sys.argv[1:], *([] if "--resume" in sys.argv else ["--resume"])])
            if not exc.interrupted:  # a diverged loss; or a failed write, after which the run resumes
                told = f"{exc}. Resume with: {shlex.join(again)}" if exc.resumable else str(exc)
                fail(told, shown=distributed.writes())
            if distributed.writes():  # one resume command, however many processes stopped
                err.print(
                    f"[yellow]{escape(str(exc))}[/]; progress saved. Resume with: {escape(shlex.join(again))}",
                    soft_wrap=True,
                )
            raise typer.Exit(code=128 + (exc.signum or signal.SIGINT)) from None
        except SeqtextError as exc:
            fail(str(exc), shown=_processes().speaks(exc))
        except OSError as exc:  # the machine, not the code: a full disk, a vanished directory, an I/O error
            fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        except KeyboardInterrupt as exc:
            signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
            if _processes().writes():
                err.print(f"[yellow]{'terminated' if signum == signal.SIGTERM else 'interrupted'}[/]")
            raise typer.Exit(code=128 + signum) from None

    return wrapper


def explicit(ctx: typer.Context) -> set[str]:
    """Names of the options the user typed (not defaults), for --resume."""
    # Compared by name: typer may ship its own copy of click's ParameterSource enum.
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, source in sources.items() if getattr(source, "name", "DEFAULT") == "COMMANDLINE"}


def config_from(cls: type[C], options: dict[str, Any]) -> C:
    """A config of `cls` from a command's options of the same names (its other options left out), so the
    dataclass checks every value and a field's default is the option's (the options default to the fields)."""
    return cls(**{f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options})  # type: ignore[arg-type]


def typed_over(saved: Any, given: Any, typed: set[str]) -> Any:
    """`saved` config with the fields the user typed again taken from `given` (for --resume)."""
    return dataclasses.replace(
        saved, **{f.name: getattr(given, f.name) for f in dataclasses.fields(given) if f.name in typed}
    )


def with_vectors_dim(model_config: Any, train_config: Any, typed: set[str]) -> Any:
    """--embeddings: the embedding takes the file's dimension, unless --embed-dim was typed (training then
    refuses a different one)."""
    if not train_config.embeddings or "embed_dim" in typed:
        return model_config
    from seqtext.vectors import vector_dim

    return dataclasses.replace(model_config, embed_dim=vector_dim(train_config.embeddings))


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
                + (f" · {info['processes']} processes (torchrun)" if info.get("processes", 1) > 1 else "")
            )
            if info.get("threads"):  # fewer threads than cores: another process keeps some busy
                progress.console.print(info["threads"])
            if "train_texts" in info:  # a classifier: what it reads, and how validation was held out
                progress.console.print(
                    f"{info['train_texts']:,} training texts ({info['skipped_empty']:,} empty skipped) · "
                    f"{info['valid_texts']:,} validation texts: {info['split']}"
                )
            if info.get("embeddings"):  # --embeddings: what the vectors cover
                coverage = info["embeddings"]
                progress.console.print(
                    f"word vectors for {coverage['training_words']:.1%} of the training text's words, "
                    f"{coverage['training_tokens']:.1%} of the training tokens"
                )
            if info.get("chosen"):  # a budget recipe chose the model on this machine
                progress.console.print(f"chosen for the budget: {info['chosen']}")
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
        elif event.kind == "plan":  # --max-time: the schedule planned in the steps the budget buys here
            plan = event.info
            progress.console.print(
                f"step {event.step:>7,}  schedule planned for {plan['total_steps']:,} steps "
                f"({plan['seconds_per_step']:.2f} s a step, {plan['seconds_per_eval']:.1f} s an evaluation; "
                f"warm-up {plan['warmup']:,} steps)"
            )
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
    if not plot or not _processes().writes():  # under torchrun, rank 0 draws
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
