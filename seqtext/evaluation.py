"""`evaluate()`: the figures of any run on a data file, dispatched on the run's kind.

It spans the product areas (a language model's figures, the keyboard's typist, a classifier's
accuracy), so it sits above them; nothing in the areas imports it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from seqtext.data import read_texts
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.typist import simulate_typing
from seqtext.lm.evaluation import LMMetrics, evaluate_lm
from seqtext.runs.loading import Loaded, as_loaded, load
from seqtext.sentiment.metrics import ClassifierMetrics, evaluate_classifier


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
        metrics = replace(metrics, keyboard=simulate_typing(suggest, [ln for t in texts for ln in t.split("\n")], k))
    return metrics
