"""Train a many-to-one classifier with the shared loop of `seqtext.training.loop` (ClassifierTask), an ensemble
of them in one run directory (--ensemble N), or a student of a teacher run's soft labels (--distill-from).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, to_dict
from seqtext.errors import CheckpointError, ConfigError, CorpusError
from seqtext.models import RNNLanguageModel, on_meta
from seqtext.runs.loading import Loaded, as_loaded, load
from seqtext.runs.reading import member_dir, read_tokenizer
from seqtext.runs.resume import saved_configs
from seqtext.runs.saving import write_ensemble, write_json, write_phrase_memory
from seqtext.runtime import check_fits, pick_device, resolve_precision, seed_everything
from seqtext.sentiment.classification import average_proba, encode_texts, prepare
from seqtext.sentiment.labelled import Labelled, TextBatches, read_labelled, split_labelled
from seqtext.sentiment.memory import build_memory
from seqtext.sentiment.metrics import classifier_metrics
from seqtext.sentiment.task import ClassifierTask, class_weights
from seqtext.tokenizer import SPACE_MARK, build_tokenizer, from_json, to_json, with_words
from seqtext.training import distributed, shards
from seqtext.training.loop import Callback, TrainResult, run_training
from seqtext.training.progress import progress_shown
from seqtext.training.session import TrainingSession, check_out_dir, training_session
from seqtext.vectors import check_dim, frequent_words, start_embedding

__all__ = ["ClassifierTask", "class_weights", "train_classifier"]  # the task lives in seqtext.sentiment.task


def train_classifier(
    model_config: ClassifierConfig,
    train_config: ClassifierTrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train a classifier on train_config.data; keep the most accurate checkpoint in train_config.out.

    With train_config.ensemble N > 1, train N members (seeds seed … seed+N-1, one validation split)
    one after another within the one --max-time, into one run directory. `progress`: one display
    updated in place (True; None, the default: in a notebook only; False: none), beside `callback`.
    """
    # --resume into a run of another kind hands over that run's options (a language model's, without
    # `ensemble`); _train_one's run-directory check then refuses it naming the right command.
    with (
        progress_shown(progress, callback) as callback,
        training_session(train_config) as session,  # the lock of train_config.out, members/ included
    ):
        if getattr(train_config, "ensemble", 1) > 1:
            return _train_ensemble(session, model_config, train_config, resume=resume, callback=callback)
        return _train_one(session, model_config, train_config, resume=resume, callback=callback)


def _train_one(
    session: TrainingSession,
    model_config: ClassifierConfig,
    train_config: ClassifierTrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    out = Path(train_config.out)
    if resume:
        saved_model, saved_train = saved_configs(out)
        if not isinstance(saved_model, ClassifierConfig):
            raise CheckpointError(f"{out} holds a language-model run; resume it with: seqtext train lm --resume")
        model_config = replace(model_config, labels=model_config.labels or saved_model.labels)
        train_config = replace(train_config, embeddings_coverage=saved_train.embeddings_coverage)
    check_out_dir(out, resume, model_config, train_config)
    if train_config.embeddings and not resume:
        check_embeddings(model_config, train_config)
    seed_everything(train_config.seed)
    device = pick_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    lm = language_model(train_config.init_from, model_config) if train_config.init_from else None
    train_rows, valid_rows, split, names = _read(train_config, model_config.labels)
    model_config = replace(model_config, labels=names)
    tokenizer = _tokenizer(out, resume, lm, model_config, train_rows, train_config)
    model_config = replace(model_config, vocab_size=tokenizer.get_vocab_size())
    kept = [i for i, t in enumerate(train_rows.texts) if t.strip()]  # empty texts teach nothing
    train_ids = encode_texts(tokenizer, model_config, [train_rows.texts[i] for i in kept])
    memory = (
        build_memory(train_rows.texts, train_rows.labels, train_config.data) if train_config.phrase_memory else None
    )
    soft = None
    if train_config.distill_from:
        from seqtext.sentiment.distill import soft_labels

        soft = soft_labels(train_config.distill_from, names, [train_rows.texts[i] for i in kept])
    batches = TextBatches(train_ids, [train_rows.labels[i] for i in kept], train_config.batch_size, soft)
    batches = shards.for_rank(batches, train_config.data)  # under torchrun: this process's share
    check_fits(on_meta(RNNClassifier, model_config), device)
    model = RNNClassifier(model_config)
    if lm is not None and not resume:
        init_from_lm(model, lm.model)
    if train_config.embeddings and not resume:
        counts = torch.bincount(
            torch.tensor([i for ids in train_ids for i in ids], dtype=torch.long), minlength=model_config.vocab_size
        )
        coverage = start_embedding(model.embed, train_config.embeddings, tokenizer.get_vocab(), counts)
        train_config = replace(train_config, embeddings_coverage=coverage)
    model.embed.weight.requires_grad_(not train_config.freeze_embeddings)
    info = {
        "unit": "texts",
        "train_texts": len(kept),
        "skipped_empty": len(train_rows.texts) - len(kept),
        "valid_texts": len(valid_rows.texts),
        "split": split,
        "labels": list(names),
        "init_from": train_config.init_from,
        "distill_from": train_config.distill_from,
        "embeddings": train_config.embeddings_coverage,
    }
    valid_ids = encode_texts(tokenizer, model_config, valid_rows.texts)
    task = ClassifierTask(
        model.to(device), batches, valid_ids, valid_rows.labels, train_config, device, precision, info
    )
    result = run_training(
        session,
        task,
        tokenizer,
        train_config,
        out,
        resume=resume,
        callback=callback,
        precision=precision,
        device=device,
    )
    if memory is not None and session.writes:  # under torchrun, rank 0 alone writes
        with session.finishing("the phrase memory"):
            write_phrase_memory(out, memory)
    return result


def _read(cfg: ClassifierTrainConfig, labels: tuple[str, ...]) -> tuple[Labelled, Labelled, str, tuple[str, ...]]:
    """Training and validation rows: --valid FILE, else whole sentences held out; and the label names."""
    columns = {"text_column": cfg.text_column, "label_column": cfg.label_column}
    rows, names = read_labelled(cfg.data, labels=labels, group_column=cfg.group_column, **columns)
    if cfg.valid:
        valid, _ = read_labelled(cfg.valid, labels=names, **columns)
        train, split = rows, f"--valid {cfg.valid}"
    else:
        train, valid, split = split_labelled(rows, cfg.valid_fraction, split_seed(cfg))
    if not any(t.strip() for t in train.texts):
        raise CorpusError(f"{cfg.data}: every training text is empty; give rows with text")
    return train, valid, split, names


def split_seed(cfg: ClassifierTrainConfig) -> int:
    """The seed of the validation split: --split-seed, else --seed."""
    return cfg.seed if cfg.split_seed is None else cfg.split_seed


def _train_ensemble(
    session: TrainingSession,
    model_config: ClassifierConfig,
    cfg: ClassifierTrainConfig,
    *,
    resume: bool,
    callback: Callback | None,
) -> TrainResult:
    """Members one after another, each in a fair share of what is left of --max-time; then ensemble.json."""
    out = Path(cfg.out)
    if resume:
        raise ConfigError(
            f"--resume continues a single-model run; an --ensemble run is trained in one go: delete {out} "
            "(or choose another --out) and train it again"
        )
    check_out_dir(out, False, model_config, cfg)
    started, results = time.monotonic(), []
    for index in range(cfg.ensemble):
        left = None if cfg.max_time is None else cfg.max_time - (time.monotonic() - started)
        member = replace(
            cfg,
            out=str(member_dir(out, index)),
            ensemble=cfg.ensemble if index == 0 else 1,  # member 0 is the run: unfinished, it says it is an ensemble
            seed=cfg.seed + index,
            split_seed=split_seed(cfg),  # one split: one tokenizer, and no member validates on another's data
            max_time=None if left is None else max(1.0, left / (cfg.ensemble - index)),
        )
        results.append(_train_one(session, model_config, member, callback=callback))
    if not session.writes:
        return results[0]  # under torchrun rank 0 alone writes the ensemble and reports it
    with session.finishing("the ensemble"):
        write_json(out / "train_config.json", to_dict(cfg))  # how the ensemble was trained, not member 0 alone
        write_ensemble(out, cfg.ensemble)  # last: until then the run is no ensemble
    clf = load(out, device=results[0].device)
    _, valid_rows, _, names = _read(cfg, clf.config.labels)
    probs = average_proba(clf, encode_texts(clf.tokenizer, clf.config, valid_rows.texts))  # loads, checks members
    m = classifier_metrics(probs, valid_rows.labels, names)
    return TrainResult(
        out_dir=out,
        steps=sum(r.steps for r in results),
        best_step=results[0].best_step,
        best_metrics={"val_loss": m.loss, "val_accuracy": m.accuracy, "val_macro_f1": m.macro_f1},
        stopped_by=results[-1].stopped_by,
        precision=results[0].precision,
        device=results[0].device,
        tokens_per_s=sum(r.tokens_per_s for r in results) / len(results),
        seconds=sum(r.seconds for r in results),
    )


def _tokenizer(
    out: Path, resume: bool, lm: Loaded | None, config: ClassifierConfig, rows: Labelled, cfg: ClassifierTrainConfig
) -> Any:
    """The run's own tokenizer on --resume, the language model's with --init-from, else a new one (with
    the most frequent words of --embeddings added, for --embeddings-vocab)."""
    if resume:
        saved, _ = saved_configs(out)
        tokenizer = read_tokenizer(out, vocab_size=saved.vocab_size, level=saved.level)
        if lm is not None and tokenizer.to_str() != lm.tokenizer.to_str():
            raise ConfigError(
                f"--init-from {lm.path} has a different tokenizer from the run in {out}; "
                "resume with the language model the run started from"
            )
        return tokenizer
    if lm is not None:
        return lm.tokenizer

    def build() -> Any:
        tokenizer = build_tokenizer([prepare(t, config) for t in rows.texts], config.level, config.max_vocab)
        if not cfg.embeddings_vocab:
            return tokenizer
        known = {token.removeprefix(SPACE_MARK) for token in tokenizer.get_vocab() if token.startswith(SPACE_MARK)}
        words = frequent_words(cfg.embeddings, cfg.embeddings_vocab, known)
        return with_words(tokenizer, [w for w in words if not config.lowercase or w == w.lower()])

    return distributed.from_writer(build, to_json, from_json)  # built once (rank 0), shared


def check_embeddings(config: ClassifierConfig, cfg: ClassifierTrainConfig) -> None:
    """--embeddings: word vectors for a word or sub-word vocabulary, of the embedding's dimension."""
    if config.level == "char":
        raise ConfigError("--embeddings holds word vectors; a --level char classifier has no words (use word)")
    if cfg.embeddings_vocab and config.level != "word":
        raise ConfigError("--embeddings-vocab adds whole words to a word vocabulary; it needs --level word")
    check_dim(cfg.embeddings, config.embed_dim)


ARCHITECTURE = ("level", "max_vocab", "cell", "embed_dim", "hidden_dim", "layers")


def language_model(run: str, config: ClassifierConfig) -> Loaded:
    """The --init-from run, checked: a language model with this tokenizer, level and layer sizes."""
    lm = as_loaded(run, "lm", "--init-from")
    if lm.config.cell == "cifg":  # language models only (seqtext.cells): a classifier also reads backwards
        raise ConfigError(f"--init-from {run} has a cifg cell, which classifiers lack; start from an lstm run")
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
