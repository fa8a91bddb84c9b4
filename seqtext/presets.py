"""Recommended recipes for `seqtext train lm DATA --preset NAME`: values for config fields, which
options typed on the command line override, and which are then stored like any other.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Literal

from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import ConfigError

# keyboard: next-word suggestions within a 15-minute CPU budget, under 20 MB. A word-level LSTM beat
# a GRU of the same size at equal time in single-core trials on tatoeba_es (scripts/bench_keyboard.py); the
# 20k vocabulary covers 99% of validation words, and embedding 160 keeps a keystroke under 1.5 ms.
# With dropout 0.1 the model stopped by patience after 8 epochs (validation perplexity 33.6); dropout
# 0.25 with a sampled softmax of 4096 words (1.4× the tokens per second) trained the whole 15 minutes,
# 12.5 epochs, to perplexity 30.0, and saved 0.7 points more keystrokes (0.6 with the n-gram).
PRESETS: dict[str, dict[str, Any]] = {
    "keyboard": {
        "level": "word",
        "cell": "lstm",
        "layers": 1,
        "embed_dim": 160,
        "hidden_dim": 512,
        "tie_weights": True,
        "dropout": 0.25,
        "max_vocab": 20_000,
        "sample_by": "line",
        "batch_size": 64,
        "lr": 3e-3,
        "epochs": 30,
        "sampled_softmax": 4096,
        "ngram": True,
        "ngram_order": 4,
        "memory": True,  # the training lines for near-repeats: +0.15 points, top-1 +0.6 (held-out lines, issue 23)
        "fp16_weights": True,
    },
}


Preset = Literal[tuple(PRESETS)]  # the names of the recipes: the choices of --preset


def with_preset(name: str, model: LMConfig, train: TrainConfig, typed: set[str]) -> tuple[LMConfig, TrainConfig]:
    """Take the values of PRESETS[name] for every field the user did not type (`typed`)."""
    if name not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)} (got {name!r})")
    chosen = {key: value for key, value in PRESETS[name].items() if key not in typed}
    if "ngram" in typed and "memory" not in typed and not train.ngram:
        chosen.pop("memory", None)  # the memory joins the n-gram's mix: --no-ngram leaves the preset without both
    model_fields = {f.name for f in fields(LMConfig)}
    return (
        replace(model, **{key: value for key, value in chosen.items() if key in model_fields}),
        replace(train, **{key: value for key, value in chosen.items() if key not in model_fields}),
    )
