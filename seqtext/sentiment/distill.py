"""Soft labels for distillation (--distill-from): a teacher run's averaged probabilities over the
training phrases, so one student model learns what an ensemble knows and keeps one model's speed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seqtext.errors import ConfigError
from seqtext.runs.loading import as_loaded
from seqtext.runtime import resolve_precision
from seqtext.sentiment.classification import average_proba, encode_texts


def soft_labels(run: str, names: Sequence[str], texts: Sequence[str]) -> torch.Tensor:
    """The teacher's probabilities (N, C) of each text, float32; refused when it is no classifier of `names`."""
    teacher = as_loaded(run, "classifier", "--distill-from")
    if tuple(teacher.config.labels) != tuple(names):
        raise ConfigError(
            f"--distill-from {run} predicts the labels ({', '.join(teacher.config.labels)}) but the training "
            f"data has ({', '.join(names)}); distil from a classifier trained with the same label set"
        )
    ids = encode_texts(teacher.tokenizer, teacher.config, texts)  # the teacher reads with its own tokenizer
    return average_proba(teacher, ids, precision=resolve_precision("auto", teacher.device)).float()
