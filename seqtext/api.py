"""`train_lm()` as the public API gives it: the recurrent language model (seqtext.lm), then, with
TrainConfig.ngram, the keyboard's n-gram and its mixing weight beside it (seqtext.keyboard).

It spans two product areas, so it sits above them, as evaluate() does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import ConfigError
from seqtext.keyboard.building import build_run_ngram
from seqtext.lm import training
from seqtext.runs import reading, saving
from seqtext.runs.loading import load
from seqtext.training import distributed
from seqtext.training.loop import Callback, TrainResult
from seqtext.training.rundir import writes_run


@writes_run  # the n-gram is written under the same lock as the model, by the same (rank-0) process
def train_lm(
    model_config: LMConfig,
    train_config: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train a language model on train_config.data; keep the best-validation checkpoint in train_config.out.

    With train_config.ngram (on in --preset keyboard) a word-level run also gets the keyboard's
    n-gram of the same training text (ngram.safetensors), and the mixing weight chosen on the
    validation text is saved in config.json (LMConfig.ngram_weights); `result.extras["ngram"]` says
    what was built. With train_config.fp16_weights (also in the preset) the final weights are stored
    in float16.
    """
    if train_config.ngram and model_config.level != "word":
        raise ConfigError("--ngram builds the keyboard's word n-gram for a word-level model; add --no-ngram")
    out = Path(train_config.out)
    result = training.train_lm.__wrapped__(model_config, train_config, resume=resume, callback=callback)  # type: ignore[attr-defined]
    if not distributed.writes():
        return result  # under torchrun the other processes are done: rank 0 alone writes the run
    if train_config.fp16_weights:  # before the n-gram, whose budget is what the weights leave
        saving.save_weights_fp16(out, load(out).model)
    if not train_config.ngram:
        return result
    saved = reading.model_config(out, reading.read_header(out))  # sample_by resolved by training
    train_texts, valid_texts, _ = training.lm_texts(saved, train_config)
    summary = build_run_ngram(out, train_texts, valid_texts, train_config.ngram_order, train_config.ngram_mb)
    return dataclasses.replace(result, extras={"ngram": dataclasses.asdict(summary)})
