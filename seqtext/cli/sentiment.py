"""Classifier commands: `train classifier` and `classify`, and the classifier half of `evaluate`."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from seqtext.cli import (
    Cell,
    ClassifierLevel,
    Device,
    Precision,
    app,
    curves_when_done,
    duration,
    err,
    explicit,
    friendly_errors,
    stdout,
    train_app,
    training_progress,
    typed_over,
)
from seqtext.config import ClassifierConfig, ClassifierTrainConfig
from seqtext.training import distributed

FROM_LM = ("level", "max_vocab", "cell", "embed_dim", "hidden_dim", "layers")  # what --init-from decides


class Pooling(str, Enum):
    last = "last"
    mean = "mean"
    max = "max"
    attention = "attention"


class ClassWeights(str, Enum):
    none = "none"
    balanced = "balanced"


class OutputFormat(str, Enum):
    tsv = "tsv"
    csv = "csv"
    jsonl = "jsonl"
    kaggle = "kaggle"


@train_app.command("classifier")
@friendly_errors
def train_classifier_cmd(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Argument(help="Labelled table: Kaggle train.tsv (PhraseId SentenceId Phrase Sentiment), csv, jsonl")
    ],
    out: Annotated[Path, typer.Option(help="Run directory to write")] = Path("runs/classifier"),
    level: Annotated[
        ClassifierLevel,
        typer.Option(help="Tokenize by word, by character, or by word with unseen words spelled in pieces (subword)"),
    ] = ClassifierLevel.word,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell: Elman RNN (tanh), LSTM or GRU")] = Cell.lstm,
    layers: Annotated[int, typer.Option(min=1, help="Stacked recurrent layers")] = 1,
    embed_dim: Annotated[int, typer.Option(min=1, help="Embedding size")] = 256,
    hidden_dim: Annotated[int, typer.Option(min=1, help="Hidden units per layer and direction")] = 128,
    bidirectional: Annotated[bool, typer.Option(help="Read each text both ways")] = True,
    pooling: Annotated[
        Pooling, typer.Option(help="Text vector: last state, or mean/max/attention over all steps")
    ] = Pooling.max,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers and before the head")] = 0.3,
    lowercase: Annotated[bool, typer.Option(help="Lower-case texts before tokenizing (training and use)")] = True,
    max_vocab: Annotated[int, typer.Option(help="Word and subword levels: keep the most frequent N tokens")] = 20_000,
    labels: Annotated[
        str | None, typer.Option(help="Label names in id order, comma-separated (default: the 5 sentiment labels)")
    ] = None,
    valid: Annotated[str | None, typer.Option(help="Validation table (default: hold out whole sentences)")] = None,
    valid_fraction: Annotated[float, typer.Option(help="Share of sentences (or rows) held out")] = 0.05,
    text_column: Annotated[str | None, typer.Option(help="Column holding the text (default: Phrase/text)")] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Column holding the label (default: Sentiment/label)")
    ] = None,
    group_column: Annotated[
        str | None, typer.Option(help="Rows sharing a value stay on one side of the split (default: SentenceId)")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Texts per batch, per process under torchrun (global = N × this)")
    ] = 128,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate (warm-up, then cosine decay)")] = 3e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay")] = 0.01,
    clip: Annotated[
        float, typer.Option(min=0, help="Clip the gradient norm to this value; 0 turns clipping off")
    ] = 1.0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the data; the learning rate decays over them")
    ] = ClassifierTrainConfig.epochs,
    max_time: Annotated[str | None, typer.Option(help="Wall-clock budget: 90s, 10m, 1h")] = None,
    patience: Annotated[int, typer.Option(min=0, help="Stop after N evaluations without better accuracy; 0 never")] = 4,
    eval_every: Annotated[int, typer.Option(min=0, help="Steps between evaluations; 0 means twice per epoch")] = 0,
    class_weights: Annotated[
        ClassWeights, typer.Option(help="balanced: weigh the loss so rare labels count as much as common ones")
    ] = ClassWeights.none,
    word_dropout: Annotated[float, typer.Option(help="Share of training words read as <unk>")] = 0.0,
    init_from: Annotated[
        str | None, typer.Option(help="Start embedding and recurrent layers from this language-model run")
    ] = None,
    ensemble: Annotated[
        int, typer.Option(min=1, help="Train N members (seeds SEED…SEED+N-1) within --max-time; classify averages them")
    ] = 1,
    distill_from: Annotated[
        str | None,
        typer.Option(help="Also learn a classifier run's (an ensemble's) probabilities on the training texts"),
    ] = None,
    distill_weight: Annotated[
        float, typer.Option(help="With --distill-from: share of the loss on the teacher's probabilities")
    ] = 0.5,
    ema: Annotated[
        float, typer.Option(help="Keep an exponential moving average of the weights with this decay (0.999); 0 off")
    ] = 0.0,
    ordinal_weight: Annotated[
        float, typer.Option(help="Add W × |expected label - gold label| to the loss (the labels are ordered)")
    ] = 0.0,
    split_seed: Annotated[int | None, typer.Option(help="Seed of the validation split (default: --seed)")] = None,
    phrase_memory: Annotated[
        bool, typer.Option(help="Answer a text found verbatim among the training phrases with its training label")
    ] = True,
    log_gradients: Annotated[
        bool, typer.Option(help="Record gradient norms per layer and the share of clipped steps in metrics.jsonl")
    ] = False,
    precision: Annotated[
        Precision, typer.Option(help="bf16 autocast where supported (auto), or force one")
    ] = Precision.auto,
    device: Annotated[Device, typer.Option(help="Where to train")] = Device.auto,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batching and the split")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out exactly")] = False,
    plot: Annotated[
        bool, typer.Option(help="Draw the training curves into OUT/curves.png when training stops")
    ] = False,
) -> None:
    """Train a many-to-one recurrent classifier (sentiment of the Rotten Tomatoes phrases)."""
    import seqtext
    from seqtext.runs.resume import saved_configs

    options = {k: (v.value if isinstance(v, Enum) else v) for k, v in ctx.params.items()}
    options.update(out=str(out), max_time=duration(max_time))
    options["labels"] = tuple(n.strip() for n in labels.split(",")) if labels else ()
    model_config = ClassifierConfig(
        **{f.name: options[f.name] for f in dataclasses.fields(ClassifierConfig) if f.name in options}
    )
    train_config = ClassifierTrainConfig(
        **{f.name: options[f.name] for f in dataclasses.fields(ClassifierTrainConfig) if f.name in options}
    )
    typed = explicit(ctx)
    if resume:  # options not typed again are those the run started with
        saved_model, saved_train = saved_configs(out)
        model_config = typed_over(saved_model, model_config, typed)
        train_config = typed_over(saved_train, train_config, typed | {"out"})  # the run is where it is now
    elif init_from:  # architecture options not typed come from the language model
        lm = seqtext.load(init_from).config
        adopted = {name: getattr(lm, name) for name in FROM_LM if name not in typed and hasattr(lm, name)}
        model_config = dataclasses.replace(model_config, **adopted)
    with curves_when_done(out, plot), training_progress(err) as on_event:
        result = seqtext.train_classifier(model_config, train_config, resume=resume, callback=on_event)
    if not distributed.writes():  # under torchrun, rank 0 reports
        return
    best = result.best_metrics
    where = f"an ensemble of {ensemble}" if ensemble > 1 else f"best at step {result.best_step:,}"
    err.print(
        f"[green]saved[/] {escape(str(result.out_dir))}: {where}, val accuracy "
        f"{best['val_accuracy']:.4f}, macro-F1 {best['val_macro_f1']:.4f}, loss {best['val_loss']:.4f} "
        f"({result.steps:,} steps, stopped by {result.stopped_by}, {result.tokens_per_s:,.0f} texts/s, "
        f"{result.precision})",
        soft_wrap=True,
    )


@app.command("classify")
@friendly_errors
def classify_cmd(
    run: Annotated[Path, typer.Argument(help="Classifier run directory")],
    files: Annotated[list[str], typer.Argument(help="txt (one text per line), tsv, csv, jsonl, parquet; - for stdin")],
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="tsv, csv or jsonl; kaggle: a PhraseId,Sentiment submission")
    ] = OutputFormat.tsv,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """Classify every text of the files, in input order, with label, name and probabilities."""
    import seqtext
    from seqtext.files import check_output_file, replacing
    from seqtext.sentiment.inputs import read_inputs
    from seqtext.sentiment.labelled import ID_COLUMN

    if output is not None:  # before any work: a directory, an unwritable place, or one of the inputs
        check_output_file(output, "--output", inputs=[f for f in files if f != "-"])
    clf = seqtext.load(run)
    seqtext.classify(clf, [])  # refuses a language-model run before anything is written
    kaggle = output_format is OutputFormat.kaggle
    sources = [read_inputs(f, text_column=text_column, id_column=ID_COLUMN if kaggle else None) for f in files]
    if output is None:
        _classify_all(clf, sources, stdout(), output_format)
        return
    with replacing(output) as tmp, tmp.open("w", encoding="utf-8", newline="") as stream:
        _classify_all(clf, sources, stream, output_format)  # a failed run leaves no half-written output
    err.print(f"[green]wrote[/] {escape(str(output))}")


def _classify_all(clf: Any, sources: list[Any], stream: IO[str], output_format: OutputFormat) -> None:
    """Classify chunk by chunk and write the results in input order, with a progress bar on a terminal."""
    import seqtext

    total = None if any(s.total is None for s in sources) else sum(s.total or 0 for s in sources)
    columns = (TextColumn("[bold]classify[/]"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
        no_cycle_collection(),
    ):
        bar = progress.add_task("classify", total=total)
        write = None  # the header waits for the first chunk, which is where bad columns are found
        for source in sources:
            for texts, ids in source.chunks:
                write = write or _writer(stream, output_format, clf.config.labels)
                for i, (text, p) in enumerate(zip(texts, seqtext.classify(clf, texts), strict=True)):
                    write(text, p, None if ids is None else ids[i])
                progress.advance(bar, len(texts))
    if write is None:  # no rows at all: still a well-formed (header-only) output
        _writer(stream, output_format, clf.config.labels)


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: classifying a chunk makes hundreds of thousands of small objects
    (a prediction and its probabilities per text) and no cycles, and the collector's passes over them
    took about a tenth of `seqtext classify`'s time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _writer(stream: IO[str], fmt: OutputFormat, labels: tuple[str, ...]) -> Any:
    """A function writing one result row in the chosen format (the header is written here)."""
    if fmt is OutputFormat.jsonl:
        return lambda text, p, _id: stream.write(
            json.dumps({"text": text, "label": p.label, "name": p.name, "probs": p.probs}, ensure_ascii=False) + "\n"
        )
    if fmt is OutputFormat.kaggle:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(["PhraseId", "Sentiment"])
        return lambda text, p, phrase_id: out.writerow([phrase_id, p.label])
    header = ["label", "name", *(f"prob_{name.replace(' ', '_')}" for name in labels), "text"]
    if fmt is OutputFormat.csv:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(header)
        return lambda text, p, _id: out.writerow([p.label, p.name, *(f"{x:.4f}" for x in p.probs), text])
    stream.write("\t".join(header) + "\n")  # tsv: tabs and line breaks inside a text become spaces
    row = "%d\t%s" + "\t%.4f" * len(labels) + "\t%s\n"  # one format for the whole row: 2× the f-strings' speed
    return lambda text, p, _id: stream.write(row % (p.label, p.name, *p.probs, " ".join(text.split())))


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
