"""Language-model commands: `train lm`, `generate` and `gradients`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

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
    ClipOption,
    DeviceOption,
    DropoutOption,
    EmaOption,
    EmbedDimOption,
    EvalEveryOption,
    LayersOption,
    LMCellOption,
    LrOption,
    MaxStepsOption,
    MaxTimeOption,
    OutOption,
    PlotOption,
    PrecisionOption,
    ResumeOption,
    WeightDecayOption,
)
from seqtext.config import LMConfig, LMLevel, SampleBy, TrainConfig
from seqtext.errors import ConfigError
from seqtext.limits import MAX_NGRAM_ORDER, VALID_TWICE
from seqtext.presets import Preset, with_preset

# The options of `train lm` that are fields of LMConfig (M) or TrainConfig (T) take their defaults from the
# fields, and their choices from the fields' Literal types.
M, T = LMConfig, TrainConfig


@friendly_errors
def train_lm_cmd(
    ctx: typer.Context,
    data: Annotated[
        str,
        typer.Argument(
            help="Text file (one sentence per line, or prose), a tsv/csv/jsonl/parquet file, or a hub dataset name"
        ),
    ],
    out: OutOption = Path(T.out),
    preset: Annotated[
        Preset | None,
        typer.Option(
            help="A recommended recipe; keyboard = word-level LSTM for `seqtext complete`. Options you type win"
        ),
    ] = None,
    level: Annotated[LMLevel, typer.Option(help="Tokenize by character or by word")] = M.level,
    cell: LMCellOption = M.cell,
    layers: LayersOption = M.layers,
    embed_dim: EmbedDimOption = M.embed_dim,
    hidden_dim: Annotated[int, typer.Option(min=1, help="Hidden units per layer")] = M.hidden_dim,
    dropout: DropoutOption = M.dropout,
    weight_drop: Annotated[
        float, typer.Option(help="Drop this share of the recurrent weights at each training step (DropConnect)")
    ] = M.weight_drop,
    tie_weights: Annotated[bool, typer.Option(help="Share the embedding matrix with the output layer")] = M.tie_weights,
    max_vocab: Annotated[int, typer.Option(help="Word level: keep the most frequent N tokens")] = M.max_vocab,
    char_input: Annotated[
        bool,
        typer.Option(
            help="Word level: add to each word's embedding a character CNN of its spelling (Kim et al. 2016), so "
            "rare words and inflections get a sensible input; a keystroke costs the same"
        ),
    ] = M.char_input,
    sample_by: Annotated[
        SampleBy,
        typer.Option(
            help="line: each line from <bos> (sentences); stream: "
            "continuous prose with the state carried; auto: by shape"
        ),
    ] = M.sample_by,
    valid: Annotated[str | None, typer.Option(help="Validation file (default: hold out --valid-fraction)")] = T.valid,
    valid_fraction: Annotated[
        float, typer.Option(help="Share of lines held out (random lines; the tail for prose)")
    ] = T.valid_fraction,
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = T.text_column,
    bptt: Annotated[int, typer.Option(min=1, help="Truncated-BPTT window, in tokens")] = T.bptt,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Sequences per batch, per process under torchrun (global = N × this)")
    ] = T.batch_size,
    lr: LrOption = T.lr,
    weight_decay: WeightDecayOption = T.weight_decay,
    clip: ClipOption = T.clip,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Passes over the data at most [default: 20; no limit with --max-time or --max-steps]"),
    ] = T.epochs,
    max_time: MaxTimeOption = T.max_time,
    max_steps: MaxStepsOption = T.max_steps,
    patience: Annotated[
        int, typer.Option(min=0, help="Stop after N evaluations without improvement; 0 never")
    ] = T.patience,
    eval_every: EvalEveryOption = T.eval_every,
    teacher_forcing: Annotated[
        float,
        typer.Option(
            help="1.0 = teacher forcing; below 1, scheduled sampling "
            "feeds the model's own samples (a slower step-by-step "
            "loop)"
        ),
    ] = T.teacher_forcing,
    sampled_softmax: Annotated[
        int,
        typer.Option(
            min=0,
            help="Train the output layer on each batch's targets and N words drawn by frequency instead of the "
            "whole vocabulary (faster word-level steps; evaluation stays exact); 0: the full softmax",
        ),
    ] = T.sampled_softmax,
    log_gradients: Annotated[
        bool,
        typer.Option(
            help="Record gradient norms per layer, the share of clipped steps and the gradient through time "
            "in metrics.jsonl at each evaluation"
        ),
    ] = T.log_gradients,
    precision: PrecisionOption = T.precision,
    device: DeviceOption = T.device,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batching and splits")] = T.seed,
    embeddings: Annotated[
        str | None,
        typer.Option(
            help="Word level: pretrained word vectors that start the embedding (GloVe .txt, word2vec/fastText .vec, "
            "gzip or not); the embedding takes their dimension"
        ),
    ] = T.embeddings,
    freeze_embeddings: Annotated[
        bool,
        typer.Option(help="Keep the embedding as --embeddings gave it (with --tie-weights, the output matrix too)"),
    ] = T.freeze_embeddings,
    ngram: Annotated[
        bool,
        typer.Option(
            help="Word level: after training, build the keyboard's Kneser-Ney n-gram of the same text and choose "
            "its mixing weight on the validation text [default: on with --preset keyboard]"
        ),
    ] = T.ngram,
    ngram_order: Annotated[
        int, typer.Option(min=1, max=MAX_NGRAM_ORDER, help="Order of the keyboard's n-gram")
    ] = T.ngram_order,
    ngram_mb: Annotated[
        float | None,
        typer.Option(help="Size budget of the n-gram on disk [default: what keeps the keyboard within 20 MB]"),
    ] = T.ngram_mb,
    lexicon: Annotated[
        str | None,
        typer.Option(
            help="Words no model of the run knows, offered by their frequency: wordfreq:LANG (pip install "
            "'seqtext[lexicon]') or a word list (a word per line, optionally a tab and its count); needs --ngram"
        ),
    ] = T.lexicon,
    lexicon_words: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="The lexicon's most frequent new words kept")
    ] = T.lexicon_words,
    ema: EmaOption = T.ema,
    memory: Annotated[bool, typer.Option(help="With --ngram: training lines that begin so join the mix")] = T.memory,
    fp16_weights: Annotated[
        bool,
        typer.Option(
            help="Store the final weights in float16: half the size on disk, computed in float32 "
            "[default: on with --preset keyboard]"
        ),
    ] = T.fp16_weights,
    resume: ResumeOption = False,
    plot: PlotOption = False,
) -> None:
    """Train a character- or word-level recurrent language model."""
    import seqtext
    from seqtext.lm.recipe import budget_recipe
    from seqtext.runs.resume import saved_configs
    from seqtext.training.distributed import writes

    if valid is not None and "valid_fraction" in explicit(ctx):  # the default, typed, is a choice too
        raise ConfigError(VALID_TWICE)
    options = {**ctx.params, "out": str(out), "max_time": duration(max_time)}
    model_config, train_config = config_from(LMConfig, options), config_from(TrainConfig, options)
    if preset is not None and not resume:  # a resumed run keeps the values it started with
        model_config, train_config = with_preset(preset, model_config, train_config, explicit(ctx))
    if not resume:
        model_config = with_vectors_dim(model_config, train_config, explicit(ctx))
    if resume:  # options not typed again are those the run started with
        saved_model, saved_train = saved_configs(out)
        typed = explicit(ctx)
        model_config = typed_over(saved_model, model_config, typed)
        train_config = typed_over(saved_train, train_config, typed | {"out"})  # the run is where it is now
    recipe = None
    if train_config.max_time is not None and not resume:  # the model that learns most in the budget here
        recipe = budget_recipe(preset, model_config.level, explicit(ctx))
    with curves_when_done(out, plot), training_progress(err) as on_event:
        result = seqtext.train_lm(
            model_config, train_config, resume=resume, callback=on_event, recipe=recipe, progress=False
        )
    if not writes():  # under torchrun, rank 0 reports
        return
    best = result.best_metrics
    err.print(
        f"[green]saved[/] {escape(str(result.out_dir))}: best at step {result.best_step:,}, val loss "
        f"{best['val_loss']:.4f}, perplexity {best['val_ppl']:.2f}, bits/char {best['val_bpc']:.4f} "
        f"({result.steps:,} steps, stopped by {result.stopped_by}, {result.tokens_per_s:,.0f} tok/s, "
        f"{result.precision})"
    )
    if "ngram" in result.extras:
        built = result.extras["ngram"]
        err.print(
            f"[green]n-gram[/] order {built['order']}, {built['mb']:.1f} MB, mixed with weights "
            f"{', '.join(f'{w:.2f}' for w in built['weights'])} by the longest context it knows "
            f"(chosen on {built['valid_words']:,} validation words)"
        )
        if built.get("lexicon_weight"):
            words = built["lexicon_words"]
            err.print(
                f"[green]lexicon[/] weight {built['lexicon_weight']:g} ({words:,} validation words known only to it)"
            )
        for key, what in (("oov_weights", "for the words the model lacks"), ("memory_weights", "of the memory")):
            if built.get(key):
                err.print(f"  shares {what}: {', '.join(f'{w:.2f}' for w in built[key])}")


@friendly_errors
def generate_cmd(
    run: Annotated[Path, typer.Argument(help="Language-model run directory")],
    prompt: Annotated[str | None, typer.Option(help="Text to continue [default: none]")] = None,
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
    from seqtext.textfiles import valid_unicode

    if prompt is not None and prompt_file is not None:
        raise ConfigError("--prompt and --prompt-file both give the prompt: pass only one")
    out = stdout()
    text = read_prompt(prompt_file) if prompt_file else valid_unicode(prompt or "", "--prompt")
    for piece in seqtext.generate_stream(
        run, text, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
    ):
        out.write(piece)
        out.flush()
    out.write("\n")


@friendly_errors
def gradients_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Language-model run directories (several are overlaid in --plot)")],
    data: Annotated[str, typer.Argument(help="Text to take the windows from (a validation file, say)")],
    steps: Annotated[
        int | None, typer.Option(min=1, help="How far back from T [default: the run's --bptt; lines: the median line]")
    ] = None,
    windows: Annotated[int, typer.Option(min=1, help="Windows of DATA to average over")] = 64,
    batches: Annotated[int, typer.Option(min=1, help="Training-style batches for the parameter-gradient norms")] = 16,
    clip: Annotated[
        float | None, typer.Option(min=0, help="Count clipping against this limit [default: the run's --clip]")
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Column holding the text in tables")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per run on stdout, with the whole curve")
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="Draw the curves (log scale, runs overlaid) to this PNG")] = None,
) -> None:
    """How far back the loss reaches: ‖∂L_T/∂h_t‖ for t = T … T−steps, and the gradient norm per layer."""
    from seqtext import plots
    from seqtext.lm.gradients import gradients

    if plot is not None:  # refused before the work starts
        plots.check_output(plot, "--plot")
        plots.pyplot("--plot")
    with err.status("unrolling the network step by step…"):
        reports = [
            gradients(run, data, steps=steps, windows=windows, batches=batches, clip=clip, text_column=text_column)
            for run in runs
        ]
    if plot is not None:
        err.print(f"[green]wrote[/] {escape(str(plots.plot_gradients([r.to_dict() for r in reports], plot)))}")
    for report in reports:
        if as_json:
            print(json.dumps(report.to_dict()))
        else:
            show_gradients(report)


def show_gradients(report: Any) -> None:
    """Tables on stderr: the curve at k = 0, 1, 2, 4, …, steps, then the norms per parameter group."""
    curve, figures = report.through_time, report.parameters
    last = curve["steps_back"][-1]
    shown = sorted({0, last, *(2**i for i in range(last.bit_length()) if 2**i < last)})
    table = Table(title=f"{report.run} on {report.data}: ‖∂L_T/∂h_t‖ over {report.windows} windows")
    for name in ("k = T − t", "mean", "std", "p10", "median", "p90"):
        table.add_column(name, justify="right")
    for k in shown:
        table.add_row(str(k), *(f"{curve[name][k]:.3g}" for name in ("mean", "std", "p10", "median", "p90")))
    err.print(table)
    err.print(f"signal left after {last} steps: {report.ratio:.3g} of the gradient at T")
    sizes = f"on {figures['batches']} batches of {figures['batch_size']} × {figures['bptt']} tokens"
    norms = Table(title="gradient norm per parameter group, before clipping", caption=sizes)
    for name in ("group", "mean", "max"):
        norms.add_column(name, justify="left" if name == "group" else "right")
    for name, value in figures["norms"].items():
        norms.add_row(name, f"{value['mean']:.3g}", f"{value['max']:.3g}")
    err.print(norms)
    if figures["clip"]:
        err.print(f"--clip {figures['clip']:g} would have clipped {figures['clipped']:.0%} of these batches")
    else:
        err.print("clipping is off for this run (--clip 0); pass --clip X to count against a limit")
