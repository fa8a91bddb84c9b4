"""What the shared loop of `seqtext.training.loop` runs for a classifier (ClassifierTask): the loss (cross-entropy,
with a teacher's soft labels when distilling and an ordinal term when asked), validation, and an
optional exponential moving average of the weights, which is then what is validated and kept.

The best checkpoint is the one with the highest validation accuracy: accuracy is the figure the
classifier is judged by, and on these phrases the validation loss starts rising (the model grows
over-confident) while accuracy still improves, so selecting by loss would stop too early.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F

from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierTrainConfig
from seqtext.runtime import autocast
from seqtext.sentiment.classification import predict_proba
from seqtext.sentiment.labelled import Batch, TextBatches
from seqtext.sentiment.metrics import classifier_metrics
from seqtext.tokenizer import PAD_ID, UNK_ID
from seqtext.training.averaging import WeightAverage


class ClassifierTask:
    """Cross-entropy over labels on length-bucketed batches; validation accuracy picks the best checkpoint."""

    monitor = ("val_accuracy", "max")

    def __init__(
        self,
        model: RNNClassifier,
        train: TextBatches,
        valid_ids: list[list[int]],
        valid_labels: list[int],
        cfg: ClassifierTrainConfig,
        device: torch.device,
        precision: str,
        info: dict[str, Any],
    ) -> None:
        self.model, self.train, self.cfg, self.device, self.precision = model, train, cfg, device, precision
        self.valid_ids, self.valid_labels, self.info = valid_ids, valid_labels, info
        self.steps_per_epoch = train.steps_per_epoch
        weights = class_weights(train.labels, model.config.num_classes, cfg.class_weights)
        self.weights = None if weights is None else weights.to(device)
        self.average = WeightAverage(model, cfg.ema) if cfg.ema else None
        if self.average is not None:
            self.kept_model = self.average.model  # what the loop saves as the best checkpoint

    def windows(self, epoch: int, start: int) -> Any:
        return self.train.epoch(epoch, self.cfg.seed, start)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, int]:
        if self.average is not None:
            self.average.catch_up()  # the loop has taken the step of the previous batch
        ids = batch.ids
        if self.cfg.word_dropout:  # drawn on the CPU generator, whose state --resume restores
            ids = ids.masked_fill((torch.rand(ids.shape) < self.cfg.word_dropout) & (ids != PAD_ID), UNK_ID)
        with autocast(self.device, self.precision):
            logits = self.model(ids.to(self.device), batch.lengths)  # (B, C)
        logits, target = logits.float(), batch.labels.to(self.device)
        loss = F.cross_entropy(logits, target, weight=self.weights)
        if batch.soft is not None:  # distilling: the teacher's probabilities are a second target
            soft = -(batch.soft.to(self.device) * logits.log_softmax(dim=-1)).sum(dim=-1).mean()
            loss = (1 - self.cfg.distill_weight) * loss + self.cfg.distill_weight * soft
        if self.cfg.ordinal_weight:  # labels are ordered: a guess two labels off costs more than one off
            ranks = torch.arange(logits.size(-1), device=logits.device, dtype=logits.dtype)
            expected = logits.softmax(dim=-1) @ ranks
            loss = loss + self.cfg.ordinal_weight * (expected - target.to(logits.dtype)).abs().mean()
        if self.average is not None:
            self.average.pending = True
        return loss, len(batch.labels)

    def validate(self) -> dict[str, float]:
        model = self.model
        if self.average is not None:
            self.average.catch_up()
            model = self.average.model
        probs = predict_proba(model, self.valid_ids, self.device, precision=self.precision)
        m = classifier_metrics(probs, self.valid_labels, self.model.config.labels)
        return {"val_loss": m.loss, "val_accuracy": m.accuracy, "val_macro_f1": m.macro_f1}

    def carried(self) -> dict[str, torch.Tensor]:
        return {} if self.average is None else self.average.tensors()

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.average is not None:
            self.average.restore(tensors)


def class_weights(labels: list[int], num_classes: int, mode: str) -> torch.Tensor | None:
    """'balanced': n / (C · count) per class (sklearn's rule), so rare labels weigh as much in total."""
    if mode == "none":
        return None
    counts = Counter(labels)
    present = len(counts)
    return torch.tensor([len(labels) / (present * counts[c]) if counts[c] else 0.0 for c in range(num_classes)])
