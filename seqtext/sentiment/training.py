"""Train a many-to-one classifier with the shared loop of `seqtext.train` (ClassifierTask).

The best checkpoint is the one with the highest validation accuracy: accuracy is the figure the
classifier is judged by, and on these phrases the validation loss starts rising (the model grows
over-confident) while accuracy still improves, so selecting by loss would stop too early.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from seqtext import checkpoint, distributed, shards
from seqtext.checkpoint import Loaded, as_loaded
from seqtext.config import ClassifierConfig, ClassifierTrainConfig
from seqtext.errors import CheckpointError, ConfigError, CorpusError
from seqtext.models import RNNClassifier, RNNLanguageModel, on_meta
from seqtext.rundir import check_out_dir, saved_configs, writes_run
from seqtext.runtime import autocast, check_fits, pick_device, resolve_precision, seed_everything
from seqtext.sentiment.classification import encode_texts, predict_proba, prepare
from seqtext.sentiment.labelled import Batch, Labelled, TextBatches, read_labelled, split_labelled
from seqtext.sentiment.metrics import classifier_metrics
from seqtext.tokenizer import PAD_ID, UNK_ID, build_tokenizer, from_json, to_json
from seqtext.train import Callback, TrainResult, run_training


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

    def windows(self, epoch: int, start: int) -> Any:
        return self.train.epoch(epoch, self.cfg.seed, start)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, int]:
        ids = batch.ids
        if self.cfg.word_dropout:  # drawn on the CPU generator, whose state --resume restores
            ids = ids.masked_fill((torch.rand(ids.shape) < self.cfg.word_dropout) & (ids != PAD_ID), UNK_ID)
        with autocast(self.device, self.precision):
            logits = self.model(ids.to(self.device), batch.lengths)  # (B, C)
        loss = F.cross_entropy(logits.float(), batch.labels.to(self.device), weight=self.weights)
        return loss, len(batch.labels)

    def validate(self) -> dict[str, float]:
        probs = predict_proba(self.model, self.valid_ids, self.device, precision=self.precision)
        m = classifier_metrics(probs, self.valid_labels, self.model.config.labels)
        return {"val_loss": m.loss, "val_accuracy": m.accuracy, "val_macro_f1": m.macro_f1}

    def carried(self) -> dict[str, torch.Tensor]:
        return {}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


def class_weights(labels: list[int], num_classes: int, mode: str) -> torch.Tensor | None:
    """'balanced': n / (C · count) per class (sklearn's rule), so rare labels weigh as much in total."""
    if mode == "none":
        return None
    counts = Counter(labels)
    present = len(counts)
    return torch.tensor([len(labels) / (present * counts[c]) if counts[c] else 0.0 for c in range(num_classes)])


@writes_run
def train_classifier(
    model_config: ClassifierConfig,
    train_config: ClassifierTrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train a classifier on train_config.data; keep the most accurate checkpoint in train_config.out."""
    out = Path(train_config.out)
    if resume:
        saved_model, _ = saved_configs(out)
        if not isinstance(saved_model, ClassifierConfig):
            raise CheckpointError(f"{out} holds a language-model run; resume it with: seqtext train lm --resume")
        model_config = replace(model_config, labels=model_config.labels or saved_model.labels)
    check_out_dir(out, resume, model_config, train_config)
    seed_everything(train_config.seed)
    device = pick_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    lm = language_model(train_config.init_from, model_config) if train_config.init_from else None
    train_rows, valid_rows, split, names = _read(train_config, model_config.labels)
    model_config = replace(model_config, labels=names)
    tokenizer = _tokenizer(out, resume, lm, model_config, train_rows)
    model_config = replace(model_config, vocab_size=tokenizer.get_vocab_size())
    kept = [i for i, t in enumerate(train_rows.texts) if t.strip()]  # empty texts teach nothing
    train_ids = encode_texts(tokenizer, model_config, [train_rows.texts[i] for i in kept])
    batches = TextBatches(train_ids, [train_rows.labels[i] for i in kept], train_config.batch_size)
    batches = shards.for_rank(batches, train_config.data)  # under torchrun: this process's share
    check_fits(on_meta(RNNClassifier, model_config), device)
    model = RNNClassifier(model_config)
    if lm is not None and not resume:
        init_from_lm(model, lm.model)
    info = {
        "unit": "texts",
        "train_texts": len(kept),
        "skipped_empty": len(train_rows.texts) - len(kept),
        "valid_texts": len(valid_rows.texts),
        "split": split,
        "labels": list(names),
        "init_from": train_config.init_from,
    }
    valid_ids = encode_texts(tokenizer, model_config, valid_rows.texts)
    task = ClassifierTask(
        model.to(device), batches, valid_ids, valid_rows.labels, train_config, device, precision, info
    )
    return run_training(
        task, tokenizer, train_config, out, resume=resume, callback=callback, precision=precision, device=device
    )


def _read(cfg: ClassifierTrainConfig, labels: tuple[str, ...]) -> tuple[Labelled, Labelled, str, tuple[str, ...]]:
    """Training and validation rows: --valid FILE, else whole sentences held out; and the label names."""
    columns = {"text_column": cfg.text_column, "label_column": cfg.label_column}
    rows, names = read_labelled(cfg.data, labels=labels, group_column=cfg.group_column, **columns)
    if cfg.valid:
        valid, _ = read_labelled(cfg.valid, labels=names, **columns)
        train, split = rows, f"--valid {cfg.valid}"
    else:
        train, valid, split = split_labelled(rows, cfg.valid_fraction, cfg.seed)
    if not any(t.strip() for t in train.texts):
        raise CorpusError(f"{cfg.data}: every training text is empty; give rows with text")
    return train, valid, split, names


def _tokenizer(out: Path, resume: bool, lm: Loaded | None, config: ClassifierConfig, rows: Labelled) -> Any:
    """The run's own tokenizer on --resume, the language model's with --init-from, else a new one."""
    if resume:
        saved, _ = saved_configs(out)
        tokenizer = checkpoint.load_tokenizer(out, vocab_size=saved.vocab_size, level=saved.level)
        if lm is not None and tokenizer.to_str() != lm.tokenizer.to_str():
            raise ConfigError(
                f"--init-from {lm.path} has a different tokenizer from the run in {out}; "
                "resume with the language model the run started from"
            )
        return tokenizer
    if lm is not None:
        return lm.tokenizer
    build = lambda: build_tokenizer([prepare(t, config) for t in rows.texts], config.level, config.max_vocab)  # noqa: E731
    return distributed.from_writer(build, to_json, from_json)  # built once (rank 0), shared


ARCHITECTURE = ("level", "max_vocab", "cell", "embed_dim", "hidden_dim", "layers")


def language_model(run: str, config: ClassifierConfig) -> Loaded:
    """The --init-from run, checked: a language model with this tokenizer, level and layer sizes."""
    lm = as_loaded(run, "lm", "--init-from")
    for name in ARCHITECTURE:
        mine, theirs = getattr(config, name), getattr(lm.config, name)
        if mine != theirs:
            what = "tokenizer" if name in ("level", "max_vocab") else "recurrent layers"
            raise ConfigError(
                f"--init-from {run} has --{name.replace('_', '-')} {theirs!r} but the classifier asks for "
                f"{mine!r}; the classifier reuses the language model's {what}, so pass "
                f"--{name.replace('_', '-')} {theirs} (or leave it out on the command line)"
            )
    return lm


@torch.no_grad()
def init_from_lm(model: RNNClassifier, lm: RNNLanguageModel) -> None:
    """Copy the embedding and recurrent weights of a language model into a classifier (ULMFiT).

    Each direction of a bidirectional stack starts from the language model's (forward) weights.
    Above the first layer a bidirectional layer reads both directions: the language model's matrix
    fills the columns that read the same direction and the others start at zero.
    """
    model.embed.weight.copy_(lm.embed.weight)
    hidden = model.config.hidden_dim
    for name, param in model.rnn.named_parameters():
        source = getattr(lm.rnn, name.removesuffix("_reverse"))
        if param.shape == source.shape:
            param.copy_(source)
        else:  # weight_ih_l{k}, k ≥ 1, of a bidirectional stack: (G·H, 2H) from (G·H, H)
            own = slice(hidden, 2 * hidden) if name.endswith("_reverse") else slice(0, hidden)
            param.zero_()
            param[:, own] = source
