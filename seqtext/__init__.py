"""seqtext: recurrent language models and sentiment classifiers for text, from one command line.

The public API is imported lazily, so `seqtext --help` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load": "seqtext.runs.loading",
    "Loaded": "seqtext.runs.loading",
    "LMConfig": "seqtext.config",
    "TrainConfig": "seqtext.config",
    "train_lm": "seqtext.api",
    "TrainEvent": "seqtext.training.loop",
    "TrainResult": "seqtext.training.loop",
    "generate": "seqtext.lm.generation",
    "generate_stream": "seqtext.lm.generation",
    "complete": "seqtext.keyboard.completion",
    "Completion": "seqtext.keyboard.completion",
    "Completer": "seqtext.keyboard.completion",
    "KeyboardMetrics": "seqtext.keyboard.typist",
    "evaluate": "seqtext.api",
    "LMMetrics": "seqtext.lm.evaluation",
    "ClassifierConfig": "seqtext.config",
    "ClassifierTrainConfig": "seqtext.config",
    "train_classifier": "seqtext.sentiment.training",
    "classify": "seqtext.sentiment.classification",
    "Prediction": "seqtext.sentiment.classification",
    "ClassifierMetrics": "seqtext.sentiment.metrics",
    "SeqtextError": "seqtext.errors",
    "gradients": "seqtext.lm.gradients",
    "GradientReport": "seqtext.lm.gradients",
    "inspect_run": "seqtext.runs.inspection",
    "RunSummary": "seqtext.runs.inspection",
    "plot_curves": "seqtext.plots",
    "plot_gradients": "seqtext.plots",
    "plot_confusion": "seqtext.plots",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'seqtext' has no attribute {name!r}")
