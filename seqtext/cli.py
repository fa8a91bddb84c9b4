"""Command line interface: parse flags, build configs, call the public API, render results.

Results go to stdout (pipeable); progress, tables, logs and errors go to stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from seqtext.config import LMConfig, TrainConfig, parse_duration
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
train_app = typer.Typer(help="Train a language model.", no_args_is_help=True)
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
            "bpc {task.fields[bpc]}  {task.fields[speed]} tok/s"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console)
    task = progress.add_task("train", total=1000, step=0, loss="-", val="-", bpc="-", speed="-")

    def on_event(event: Any) -> None:
        fields: dict[str, Any] = {"completed": 1000 * event.progress, "step": event.step}
        if event.kind == "start":
            progress.start()
            info = event.info
            progress.console.print(
                f"{info['parameters']:,} parameters · {info['device']} · {info['precision']} · "
                f"{info['steps_per_epoch']:,} steps per epoch"
            )
        elif event.kind == "step":
            fields.update(loss=_fmt(event.loss), speed=f"{event.tokens_per_s:,.0f}")
        elif event.kind == "eval":
            m = event.metrics
            fields.update(val=_fmt(m.get("val_loss")), bpc=_fmt(m.get("val_bpc")))
            shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items())
            progress.console.print(f"step {event.step:>7,}  epoch {event.epoch + 1:>3}  {shown}")
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


@train_app.command("lm")
@friendly_errors
def train_lm_cmd(
    ctx: typer.Context,
    data: Annotated[
        str,
        typer.Argument(
            help="Text file (one sentence per line, or prose), a tsv/csv/jsonl/parquet file, or a hub dataset name"
        ),
    ],
    out: Annotated[Path, typer.Option(help="Run directory to write")] = Path("runs/lm"),
    level: Annotated[Level, typer.Option(help="Tokenize by character or by word")] = Level.char,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell: Elman RNN (tanh), LSTM or GRU")] = Cell.lstm,
    layers: Annotated[int, typer.Option(min=1, help="Stacked recurrent layers")] = 2,
    embed_dim: Annotated[int, typer.Option(min=1, help="Embedding size")] = 64,
    hidden_dim: Annotated[int, typer.Option(min=1, help="Hidden units per layer")] = 512,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers and before the head")] = 0.1,
    tie_weights: Annotated[bool, typer.Option(help="Share the embedding matrix with the output layer")] = False,
    max_vocab: Annotated[int, typer.Option(help="Word level: keep the most frequent N tokens")] = 20_000,
    sample_by: Annotated[
        SampleBy,
        typer.Option(
            help="line: each line from <bos> (sentences); stream: "
            "continuous prose with the state carried; auto: by shape"
        ),
    ] = SampleBy.auto,
    valid: Annotated[str | None, typer.Option(help="Validation file (default: hold out --valid-fraction)")] = None,
    valid_fraction: Annotated[
        float, typer.Option(help="Share of lines held out (random lines; the tail for prose)")
    ] = 0.05,
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    bptt: Annotated[int, typer.Option(min=1, help="Truncated-BPTT window, in tokens")] = 128,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per batch")] = 64,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up, then cosine decay)")] = 3e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = 0.01,
    clip: Annotated[float, typer.Option(help="Clip the gradient norm to this value")] = 1.0,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training data (at most)")] = 20,
    max_time: Annotated[str | None, typer.Option(help="Wall-clock budget: 90s, 10m, 1h")] = None,
    patience: Annotated[int, typer.Option(min=0, help="Stop after N evaluations without improvement; 0 never")] = 4,
    eval_every: Annotated[int, typer.Option(min=0, help="Steps between evaluations; 0 means twice per epoch")] = 0,
    teacher_forcing: Annotated[
        float,
        typer.Option(
            help="1.0 = teacher forcing; below 1, scheduled sampling "
            "feeds the model's own samples (a slower step-by-step "
            "loop)"
        ),
    ] = 1.0,
    precision: Annotated[
        Precision, typer.Option(help="bf16 autocast where supported (auto), or force one")
    ] = Precision.auto,
    device: Annotated[Device, typer.Option(help="Where to train")] = Device.auto,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batching and splits")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out exactly")] = False,
) -> None:
    """Train a character- or word-level recurrent language model."""
    import seqtext
    from seqtext.train import saved_configs

    model_config = LMConfig(
        level=level.value,
        cell=cell.value,
        layers=layers,
        embed_dim=embed_dim,
        hidden_dim=hidden_dim,
        dropout=dropout,
        tie_weights=tie_weights,
        max_vocab=max_vocab,
        sample_by=sample_by.value,
    )
    train_config = TrainConfig(
        data=data,
        out=str(out),
        valid=valid,
        valid_fraction=valid_fraction,
        text_column=text_column,
        bptt=bptt,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        clip=clip,
        epochs=epochs,
        max_time=duration(max_time),
        patience=patience,
        eval_every=eval_every,
        teacher_forcing=teacher_forcing,
        precision=precision.value,
        device=device.value,
        seed=seed,
    )
    if resume:  # options not typed again are those the run started with
        saved_model, saved_train = saved_configs(out)
        typed = explicit(ctx)
        model_config = dataclasses.replace(
            saved_model,
            **{f.name: getattr(model_config, f.name) for f in dataclasses.fields(LMConfig) if f.name in typed},
        )
        train_config = dataclasses.replace(
            saved_train,
            **{f.name: getattr(train_config, f.name) for f in dataclasses.fields(TrainConfig) if f.name in typed},
        )
    with training_progress(err) as on_event:
        result = seqtext.train_lm(model_config, train_config, resume=resume, callback=on_event)
    best = result.best_metrics
    err.print(
        f"[green]saved[/] {escape(str(result.out_dir))}: best at step {result.best_step:,}, val loss "
        f"{best['val_loss']:.4f}, perplexity {best['val_ppl']:.2f}, bits/char {best['val_bpc']:.4f} "
        f"({result.steps:,} steps, stopped by {result.stopped_by}, {result.tokens_per_s:,.0f} tok/s, "
        f"{result.precision})"
    )


@app.command("generate")
@friendly_errors
def generate_cmd(
    run: Annotated[Path, typer.Argument(help="Language-model run directory")],
    prompt: Annotated[str, typer.Option(help="Text to continue")] = "",
    prompt_file: Annotated[Path | None, typer.Option(help="Read the prompt from a UTF-8 file")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to sample at most")] = 200,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 means greedy")] = 1.0,
    top_k: Annotated[int | None, typer.Option(help="Sample only from the K most likely tokens")] = None,
    top_p: Annotated[float | None, typer.Option(help="Sample from the smallest set with probability ≥ P")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same text")] = 0,
) -> None:
    """Continue a prompt with text sampled from a language model, streamed as it is sampled."""
    import seqtext
    from seqtext.data import read_prompt

    text = read_prompt(prompt_file) if prompt_file else prompt
    for piece in seqtext.generate_stream(
        run, text, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
    ):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


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
