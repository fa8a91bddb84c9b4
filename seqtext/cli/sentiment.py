"""Classifier commands: `train classifier` and `classify`."""

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

from seqtext.cli.common import (
    config_from,
    curves_when_done,
    duration,
    err,
    explicit,
    friendly_errors,
    stdout,
    training_progress,
    typed_over,
    with_vectors_dim,
)
from seqtext.cli.options import (
    CellOption,
    ClipOption,
    DeviceOption,
    DropoutOption,
    EmaOption,
    EmbedDimOption,
    EvalEveryOption,
    LayersOption,
    LrOption,
    MaxStepsOption,
    MaxTimeOption,
    OutOption,
    PlotOption,
    PrecisionOption,
    ResumeOption,
    WeightDecayOption,
)
from seqtext.config import (
    ClassifierConfig,
    ClassifierTrainConfig,
    ClassWeights,
    Level,
    Pooling,
)
from seqtext.errors import ConfigError
from seqtext.limits import VALID_TWICE

FROM_LM = ("level", "max_vocab", "cell", "embed_dim", "hidden_dim", "layers")  # what --init-from decides
# The options of `train classifier` that are fields of ClassifierConfig (M) or ClassifierTrainConfig (T) take
# their defaults from the fields, and their choices from the fields' Literal types.
M, T = ClassifierConfig, ClassifierTrainConfig
VECTORS_HELP = (
    "Word vectors that start the embedding (GloVe .txt, word2vec/fastText .vec, gzip or not; their dimension)"
)


class OutputFormat(str, Enum):
    tsv = "tsv"
    csv = "csv"
    jsonl = "jsonl"
    kaggle = "kaggle"


@friendly_errors
def train_classifier_cmd(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Argument(help="Labelled table: Kaggle train.tsv (PhraseId SentenceId Phrase Sentiment), csv, jsonl")
    ],
    out: OutOption = Path(T.out),
    level: Annotated[
        Level,
        typer.Option(help="Tokenize by word, by character, or by word with unseen words spelled in pieces (subword)"),
    ] = M.level,
    cell: CellOption = M.cell,
    layers: LayersOption = M.layers,
    embed_dim: EmbedDimOption = M.embed_dim,
    hidden_dim: Annotated[int, typer.Option(min=1, help="Hidden units per layer and direction")] = M.hidden_dim,
    bidirectional: Annotated[bool, typer.Option(help="Read each text both ways")] = M.bidirectional,
    pooling: Annotated[
        Pooling, typer.Option(help="Text vector: last state, or mean/max/kmax (2 largest)/attention over all steps")
    ] = M.pooling,
    dropout: DropoutOption = M.dropout,
    lowercase: Annotated[
        bool, typer.Option(help="Lower-case texts before tokenizing (training and use)")
    ] = M.lowercase,
    max_vocab: Annotated[
        int, typer.Option(help="Word and subword levels: keep the most frequent N tokens")
    ] = M.max_vocab,
    labels: Annotated[
        str | None, typer.Option(help="Label names in id order, comma-separated (default: the 5 sentiment labels)")
    ] = None,
    valid: Annotated[str | None, typer.Option(help="Validation table (default: hold out whole sentences)")] = T.valid,
    valid_fraction: Annotated[float, typer.Option(help="Share of sentences (or rows) held out")] = T.valid_fraction,
    text_column: Annotated[
        str | None, typer.Option(help="Column holding the text (default: Phrase/text)")
    ] = T.text_column,
    label_column: Annotated[
        str | None, typer.Option(help="Column holding the label (default: Sentiment/label)")
    ] = T.label_column,
    group_column: Annotated[
        str | None, typer.Option(help="Rows sharing a value stay on one side of the split (default: SentenceId)")
    ] = T.group_column,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Texts per batch, per process under torchrun (global = N × this)")
    ] = T.batch_size,
    lr: LrOption = T.lr,
    weight_decay: WeightDecayOption = T.weight_decay,
    clip: ClipOption = T.clip,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the data; the learning rate decays over them")
    ] = T.epochs,
    max_time: MaxTimeOption = T.max_time,
    max_steps: MaxStepsOption = T.max_steps,
    patience: Annotated[
        int, typer.Option(min=0, help="Stop after N evaluations without better accuracy; 0 never")
    ] = T.patience,
    eval_every: EvalEveryOption = T.eval_every,
    class_weights: Annotated[
        ClassWeights, typer.Option(help="balanced: weigh the loss so rare labels count as much as common ones")
    ] = T.class_weights,
    word_dropout: Annotated[float, typer.Option(help="Share of training words read as <unk>")] = T.word_dropout,
    init_from: Annotated[
        str | None, typer.Option(help="Start embedding and recurrent layers from this language-model run")
    ] = T.init_from,
    embeddings: Annotated[str | None, typer.Option(help=VECTORS_HELP)] = T.embeddings,
    embeddings_vocab: Annotated[
        int,
        typer.Option(
            min=0, help="With --embeddings: the words of its first N rows (most frequent) join the vocabulary"
        ),
    ] = T.embeddings_vocab,
    freeze_embeddings: Annotated[
        bool, typer.Option(help="Keep the embedding as --embeddings gave it")
    ] = T.freeze_embeddings,
    ensemble: Annotated[
        int, typer.Option(min=1, help="Train N members (seeds SEED…SEED+N-1) within --max-time; classify averages them")
    ] = T.ensemble,
    distill_from: Annotated[
        str | None,
        typer.Option(help="Also learn a classifier run's (an ensemble's) probabilities on the training texts"),
    ] = T.distill_from,
    distill_weight: Annotated[
        float, typer.Option(help="With --distill-from: share of the loss on the teacher's probabilities")
    ] = T.distill_weight,
    ema: EmaOption = T.ema,
    ordinal_weight: Annotated[
        float, typer.Option(help="Add W × |expected label - gold label| to the loss (the labels are ordered)")
    ] = T.ordinal_weight,
    split_seed: Annotated[
        int | None, typer.Option(help="Seed of the validation split (default: --seed)")
    ] = T.split_seed,
    phrase_memory: Annotated[
        bool, typer.Option(help="Answer a text found verbatim among the training phrases with its training label")
    ] = T.phrase_memory,
    log_gradients: Annotated[
        bool, typer.Option(help="Record gradient norms per layer and the share of clipped steps in metrics.jsonl")
    ] = T.log_gradients,
    precision: PrecisionOption = T.precision,
    device: DeviceOption = T.device,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batching and the split")] = T.seed,
    resume: ResumeOption = False,
    plot: PlotOption = False,
) -> None:
    """Train a many-to-one recurrent classifier (sentiment of the Rotten Tomatoes phrases)."""
    import seqtext
    from seqtext.runs.resume import saved_configs
    from seqtext.training.distributed import writes

    options = {**ctx.params, "out": str(out), "max_time": duration(max_time)}
    options["labels"] = tuple(n.strip() for n in labels.split(",")) if labels else M.labels
    model_config, train_config = config_from(ClassifierConfig, options), config_from(ClassifierTrainConfig, options)
    typed = explicit(ctx)
    if valid is not None and "valid_fraction" in typed:  # the default, typed, is a choice too
        raise ConfigError(VALID_TWICE)
    if resume:  # options not typed again are those the run started with
        saved_model, saved_train = saved_configs(out)
        model_config = typed_over(saved_model, model_config, typed)
        train_config = typed_over(saved_train, train_config, typed | {"out"})  # the run is where it is now
    elif init_from:  # architecture options not typed come from the language model
        lm = seqtext.load(init_from).config
        adopted = {name: getattr(lm, name) for name in FROM_LM if name not in typed and hasattr(lm, name)}
        model_config = dataclasses.replace(model_config, **adopted)
    else:
        model_config = with_vectors_dim(model_config, train_config, typed)
    with curves_when_done(out, plot), training_progress(err) as on_event:
        result = seqtext.train_classifier(model_config, train_config, resume=resume, callback=on_event, progress=False)
    if not writes():  # under torchrun, rank 0 reports
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


@friendly_errors
def classify_cmd(
    run: Annotated[Path, typer.Argument(help="Classifier run directory")],
    files: Annotated[list[str], typer.Argument(help="txt (one text per line), tsv, csv, jsonl, parquet; - for stdin")],
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="tsv, csv or jsonl; kaggle: a PhraseId,Sentiment submission")
    ] = OutputFormat.tsv,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    fast: Annotated[
        bool,
        typer.Option(
            help="In fp32 (no native bf16), a one-layer LSTM's answers from per-token gate tables: the same "
            "answers, about 2× faster; --no-fast runs torch's LSTM"
        ),
    ] = True,
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
        _classify_all(clf, sources, stdout(), output_format, fast)
        return
    with replacing(output) as tmp, tmp.open("w", encoding="utf-8", newline="") as stream:
        _classify_all(clf, sources, stream, output_format, fast)  # a failed run leaves no half-written output
    err.print(f"[green]wrote[/] {escape(str(output))}")


def _classify_all(clf: Any, sources: list[Any], stream: IO[str], output_format: OutputFormat, fast: bool) -> None:
    """Classify chunk by chunk and write the results in input order, with a progress bar on a terminal."""
    from seqtext.sentiment.classification import label_probabilities

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
                write(texts, label_probabilities(clf, texts, fast=fast), ids)
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
    """A function writing a chunk's results in the chosen format: write(texts, probs (N, C), ids or None);
    the header is written here. A chunk is written at once, each row formatted as `classify` answers it."""

    def rows(texts: list[str], probs: Any) -> Any:  # (text, label id, its name, probabilities) of each row
        best = probs.argmax(dim=-1).tolist()
        return zip(texts, best, [labels[b] for b in best], probs.tolist(), strict=True)

    if fmt is OutputFormat.jsonl:
        return lambda texts, probs, _ids: stream.write(
            "".join(
                json.dumps({"text": t, "label": b, "name": n, "probs": p}, ensure_ascii=False) + "\n"
                for t, b, n, p in rows(texts, probs)
            )
        )
    if fmt is OutputFormat.kaggle:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(["PhraseId", "Sentiment"])
        return lambda texts, probs, ids: out.writerows(zip(ids, probs.argmax(dim=-1).tolist(), strict=True))
    header = ["label", "name", *(f"prob_{name.replace(' ', '_')}" for name in labels), "text"]
    if fmt is OutputFormat.csv:
        out = csv.writer(stream, lineterminator="\n")
        out.writerow(header)
        return lambda texts, probs, _ids: out.writerows(
            [b, n, *(f"{x:.4f}" for x in p), t] for t, b, n, p in rows(texts, probs)
        )
    stream.write("\t".join(header) + "\n")  # tsv: tabs and line breaks inside a text become spaces
    row = "%d\t%s" + "\t%.4f" * len(labels) + "\t%s\n"  # one format for the whole row: 2× the f-strings' speed
    return lambda texts, probs, _ids: stream.write(
        "".join([row % (b, n, *p, " ".join(t.split())) for t, b, n, p in rows(texts, probs)])
    )
