"""The public entry points that span the product areas, above them all:

- `train_lm()`: the recurrent language model (seqtext.lm), then, with TrainConfig.ngram, the
  keyboard's n-gram and its mixing weight beside it (seqtext.keyboard), in one training session;
- `evaluate()`: the figures of any run on a data file, dispatched on the run's kind (a language
  model's figures, the keyboard's typist, a classifier's accuracy).

Nothing in the areas imports this module; the CLI and the package's public names do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from seqtext.config import LMConfig, TrainConfig
from seqtext.data import read_texts
from seqtext.errors import ConfigError
from seqtext.keyboard.building import build_run_ngram
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.lexicon import make_lexicon, save_lexicon
from seqtext.keyboard.typist import simulate_typing
from seqtext.keyboard.words import WORD
from seqtext.lm import training
from seqtext.lm.evaluation import LMMetrics, evaluate_lm
from seqtext.runs import reading, saving
from seqtext.runs.loading import Loaded, as_loaded, load
from seqtext.sentiment.metrics import ClassifierMetrics, evaluate_classifier
from seqtext.training.fitting import Recipe
from seqtext.training.loop import Callback, TrainResult
from seqtext.training.progress import progress_shown
from seqtext.training.session import training_session


def train_lm(
    model_config: LMConfig,
    train_config: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
    progress: bool | None = None,
    recipe: Recipe | None = None,
) -> TrainResult:
    """Train a language model on train_config.data; keep the best-validation checkpoint in train_config.out.

    With a `recipe` (seqtext.lm.recipe.CHAR_LM: what `seqtext train lm --max-time` uses for the default
    character model) and train_config.max_time, the recipe's fields of model_config are chosen by
    measurement: the candidate that learns most in the budget on this machine. train_config.json's
    "chosen" (and the "start" event's info) says which, and why; a resumed run keeps what it chose.

    With train_config.ngram (on in --preset keyboard) a word-level run also gets the keyboard's
    n-gram of the same training text (ngram.safetensors), and the mixing weight chosen on the
    validation text is saved in config.json (LMConfig.ngram_weights); `result.extras["ngram"]` says
    what was built. With train_config.fp16_weights (also in the preset) the final weights are stored
    in float16. `progress`: one display updated in place (True; None, the default: in a notebook only;
    False: none), beside `callback`, which receives every TrainEvent.
    """
    check_keyboard_options(model_config, train_config)
    # One session for the model and the n-gram: the n-gram is written under the same lock, by the same (rank-0) process
    with progress_shown(progress, callback) as callback, training_session(train_config) as session:
        if train_config.ngram and model_config.level != "word":
            raise ConfigError("--ngram builds the keyboard's word n-gram for a word-level model; add --no-ngram")
        out = Path(train_config.out)
        result = training.train_lm(session, model_config, train_config, resume=resume, callback=callback, recipe=recipe)
        if not session.writes:
            return result  # under torchrun the other processes are done: rank 0 alone writes the run
        # Part of the run: until they are written --resume does them (again, whole), and the run is not finished
        with session.finishing("the 16-bit weights, the lexicon and the n-gram"):
            if train_config.fp16_weights:  # before the n-gram, whose budget is what the weights leave
                saving.save_weights_fp16(out, load(out).model)
            if not train_config.ngram:
                return result
            saved = reading.model_config(out, reading.read_header(out))  # sample_by resolved by training
            train_texts, valid_texts, _ = training.lm_texts(saved, train_config)
            lexicon = None
            if train_config.lexicon is not None:  # saved first: the n-gram's size budget is what it leaves
                known = {word for text in train_texts for word in WORD.findall(text)}
                lexicon = make_lexicon(train_config.lexicon, train_config.lexicon_words, known)
                save_lexicon(out, lexicon)
            summary = build_run_ngram(
                out, train_texts, valid_texts, train_config.ngram_order, train_config.ngram_mb, lexicon,
                train_config.memory,
            )  # fmt: skip
            return dataclasses.replace(result, extras={"ngram": dataclasses.asdict(summary)})


def check_keyboard_options(model_config: LMConfig, train_config: TrainConfig) -> None:
    """Options that need others, checked once a preset has filled in its values and before anything is written."""
    if model_config.char_input and model_config.level != "word":
        raise ConfigError("--char-input spells the words of a word-level model; a char-level one reads characters")
    for name, wanted in (("lexicon", train_config.lexicon is not None), ("memory", train_config.memory)):
        if wanted and not train_config.ngram:
            raise ConfigError(f"--{name} joins the keyboard's mix, built by --ngram: add --ngram or --preset keyboard")


def evaluate(
    source: Loaded | str | Path,
    data: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    keyboard: bool = False,
    k: int = 3,
    ngram: bool = True,
) -> LMMetrics | ClassifierMetrics:
    """Evaluate a run on a data file: loss, perplexity, bits per character, tokens, characters;
    with keyboard=True also the keyboard figures (keystroke savings, next-word top-1/top-k, latency), of the
    mix with the run's n-gram when it has one (ngram=False: the recurrent model alone).
    A classifier run gets accuracy, macro-F1, per-class figures, the confusion matrix, binary accuracy."""
    loaded = source if isinstance(source, Loaded) else load(source)
    if loaded.kind == "classifier" and not keyboard:
        return evaluate_classifier(loaded, data, text_column=text_column, label_column=label_column)
    lm = as_loaded(loaded, "lm", "evaluate --keyboard" if keyboard else "evaluate")
    texts = read_texts(data, text_column)
    metrics = evaluate_lm(lm, texts)
    if keyboard:
        completer = Completer(lm, ngram=ngram)
        suggest = lambda typed, n: [c.word for c in completer.suggest(typed, n)]  # noqa: E731
        metrics = dataclasses.replace(
            metrics, keyboard=simulate_typing(suggest, [ln for t in texts for ln in t.split("\n")], k)
        )
    return metrics
