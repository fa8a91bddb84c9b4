"""seqtext: recurrent language models and sentiment classifiers for text, from one command line.

The public API is imported lazily, so `seqtext --help` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load": "seqtext.checkpoint",
    "Loaded": "seqtext.checkpoint",
    "LMConfig": "seqtext.config",
    "TrainConfig": "seqtext.config",
    "train_lm": "seqtext.train",
    "TrainEvent": "seqtext.train",
    "TrainResult": "seqtext.train",
    "generate": "seqtext.generation",
    "generate_stream": "seqtext.generation",
    "complete": "seqtext.completion",
    "Completion": "seqtext.completion",
    "Completer": "seqtext.completion",
    "KeyboardMetrics": "seqtext.completion",
    "evaluate": "seqtext.evaluation",
    "LMMetrics": "seqtext.evaluation",
    "ClassifierConfig": "seqtext.config",
    "ClassifierTrainConfig": "seqtext.config",
    "train_classifier": "seqtext.classifier_training",
    "classify": "seqtext.classification",
    "Prediction": "seqtext.classification",
    "ClassifierMetrics": "seqtext.classification",
    "SeqtextError": "seqtext.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'seqtext' has no attribute {name!r}")
