"""Training: teacher forcing over truncated-BPTT windows, clipping, AdamW with warm-up and decay,
early stopping, best-checkpoint keeping, exact resume. Quiet: progress goes to a callback.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from seqtext import checkpoint
from seqtext.config import LMConfig, TrainConfig, from_dict, read_json, to_dict
from seqtext.data import (
    Window,
    check_lm_size,
    count_characters,
    lm_windows,
    looks_like_lines,
    read_texts,
    split_texts,
)
from seqtext.errors import ConfigError, CorpusError, TrainingStopped
from seqtext.evaluation import eval_windows, lm_metrics, lm_nll
from seqtext.models import RNNLanguageModel, State, detach_state, state_from_tensors, state_tensors
from seqtext.runtime import autocast, pick_device, resolve_precision, seed_everything
from seqtext.tokenizer import PAD_ID, build_tokenizer


@dataclass(frozen=True)
class TrainEvent:
    """What the trainer reports: a step, an evaluation, or a saved best checkpoint."""

    kind: Literal["start", "step", "eval", "save"]
    step: int
    epoch: float  # epochs done, fractional (1.5 = halfway through the second pass)
    progress: float  # fraction of the budget (epochs or --max-time) used, 0..1
    loss: float | None = None
    tokens_per_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[TrainEvent], None]


@dataclass(frozen=True)
class TrainResult:
    """Where the best checkpoint is and how training went."""

    out_dir: Path
    steps: int
    best_step: int
    best_metrics: dict[str, float]
    stopped_by: str  # "epochs", "max_time" or "patience"
    precision: str
    device: str
    tokens_per_s: float
    seconds: float


class Task(Protocol):
    """What differs between language models and classifiers; the loop below is shared."""

    model: nn.Module
    steps_per_epoch: int
    monitor: tuple[str, str]  # validation figure that picks the best checkpoint, and "min" or "max"
    info: dict[str, Any]  # shown once when training starts (data sizes, split, ...)

    def windows(self, epoch: int, start: int) -> Iterator[Any]: ...
    def loss(self, batch: Any) -> tuple[torch.Tensor, int]: ...
    def validate(self) -> dict[str, float]: ...
    def carried(self) -> dict[str, torch.Tensor]: ...
    def restore(self, tensors: dict[str, torch.Tensor]) -> None: ...


class LMTask:
    """Next-token prediction with teacher forcing (or scheduled sampling below ratio 1)."""

    monitor = ("val_loss", "min")
    info: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        model: RNNLanguageModel,
        train: Any,
        valid: Any,
        valid_chars: int,
        cfg: TrainConfig,
        device: torch.device,
        precision: str,
    ) -> None:
        self.model, self.train_windows, self.valid_windows = model, train, valid
        self.valid_chars, self.cfg, self.device, self.precision = valid_chars, cfg, device, precision
        self.steps_per_epoch = train.steps_per_epoch
        self.state: State | None = None

    def windows(self, epoch: int, start: int) -> Iterator[Window]:
        return self.train_windows.epoch(epoch, self.cfg.seed, start)

    def loss(self, window: Window) -> tuple[torch.Tensor, int]:
        inputs, targets = window.inputs.to(self.device), window.targets.to(self.device)
        state = self.state if window.carry else None
        with autocast(self.device, self.precision):
            if self.cfg.teacher_forcing < 1.0:
                logits, state = self._scheduled_sampling(inputs, state)  # (B, T, V)
                real = targets != PAD_ID
                nll = F.cross_entropy(logits[real].float(), targets[real], reduction="none")  # (N,)
            else:
                nll, state = self.model.nll(inputs, targets, state, PAD_ID)  # (N,)
        self.state = detach_state(state)
        return nll.mean(), nll.numel()

    def _scheduled_sampling(self, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Step by step: each input is the true token with probability R, else the model's own sample."""
        outputs, previous = [], None
        for t in range(inputs.size(1)):
            step_input = inputs[:, t : t + 1]  # (B, 1)
            if previous is not None:
                keep = torch.rand(step_input.shape, device=self.device) < self.cfg.teacher_forcing
                step_input = torch.where(keep | (step_input == PAD_ID), step_input, previous)
            logits, state = self.model(step_input, state)  # (B, 1, V)
            outputs.append(logits)
            previous = torch.multinomial(logits[:, 0].float().softmax(-1).detach(), 1)  # (B, 1)
        return torch.cat(outputs, dim=1), state

    def validate(self) -> dict[str, float]:
        # Training precision: validation is for picking the checkpoint, and bf16 makes it ~3× cheaper;
        # `seqtext evaluate` reports final figures in fp32.
        nll, tokens = lm_nll(self.model, self.valid_windows, self.device, self.precision)
        m = lm_metrics(nll, tokens, self.valid_chars)
        return {"val_loss": m.loss, "val_ppl": m.perplexity, "val_bpc": m.bits_per_char}

    def carried(self) -> dict[str, torch.Tensor]:
        if self.state is None:
            return {}
        return {f"state.{i}": s for i, s in enumerate(state_tensors(self.state))}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        parts = [tensors[k] for k in sorted(tensors) if k.startswith("state.")]
        self.state = state_from_tensors(parts) if parts else None


def train_lm(
    model_config: LMConfig,
    train_config: TrainConfig,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train a language model on train_config.data; keep the best-validation checkpoint in train_config.out."""
    out = Path(train_config.out)
    check_out_dir(out, resume, model_config, train_config)
    seed_everything(train_config.seed)
    device = pick_device(train_config.device)
    precision = resolve_precision(train_config.precision, device)
    texts = read_texts(train_config.data, train_config.text_column)
    stream = model_config.sample_by == "stream" or (model_config.sample_by == "auto" and not looks_like_lines(texts))
    if train_config.valid:
        train_texts, valid_texts = texts, read_texts(train_config.valid, train_config.text_column)
    else:
        train_texts, valid_texts = split_texts(
            texts, train_config.valid_fraction, stream=stream, seed=train_config.seed
        )
    if resume:
        tokenizer = checkpoint.load_tokenizer(out)
    else:
        tokenizer = build_tokenizer(train_texts, model_config.level, model_config.max_vocab)
    model_config = replace(
        model_config, vocab_size=tokenizer.get_vocab_size(), sample_by="stream" if stream else "line"
    )
    train_windows = lm_windows(
        train_texts, tokenizer, stream=stream, bptt=train_config.bptt, batch_size=train_config.batch_size
    )
    check_lm_size(train_windows, train_config.data, train_config.bptt, train_config.batch_size)
    valid_windows = eval_windows(valid_texts, tokenizer, stream=stream, bptt=train_config.bptt)
    valid_chars = count_characters(valid_texts, stream=stream)
    if valid_chars == 0:
        raise CorpusError(f"{train_config.valid or train_config.data}: the validation text is empty")
    model = RNNLanguageModel(model_config).to(device)
    task = LMTask(model, train_windows, valid_windows, valid_chars, train_config, device, precision)
    return run_training(
        task,
        tokenizer,
        train_config,
        out,
        resume=resume,
        callback=callback,
        precision=precision,
        device=device,
    )


def check_out_dir(out: Path, resume: bool, model_config: Any, train_config: TrainConfig) -> None:
    """Never overwrite a finished run; on --resume, insist on the options the run started with."""
    if not resume:
        if (out / "config.json").exists() or (out / "trainer_state.json").exists():
            raise ConfigError(
                f"{out} already holds a run; choose another --out, delete it, or pass --resume "
                "to continue an interrupted run"
            )
        return
    saved_model, saved_train = saved_configs(out)
    ignore = {"vocab_size", "sample_by"}
    for name, saved, given in [
        *_differences(saved_model, model_config, ignore),
        *_differences(saved_train, train_config),
    ]:
        raise ConfigError(
            f"--{name.replace('_', '-')} is {given!r} but the run in {out} was started with {saved!r}; "
            "--resume continues with the original options"
        )


def _differences(saved: Any, given: Any, ignore: set[str] | None = None) -> Iterator[tuple[str, Any, Any]]:
    for f in fields(saved):
        if f.name not in (ignore or set()) and getattr(saved, f.name) != getattr(given, f.name):
            yield f.name, getattr(saved, f.name), getattr(given, f.name)


def saved_configs(out: Path) -> tuple[Any, TrainConfig]:
    """The model and training configs an interrupted run was started with (what --resume continues)."""
    if not (out / "trainer_state.json").is_file():
        raise checkpoint.CheckpointError(
            f"{out} has nothing to resume (no trainer_state.json): the run finished or never saved a step. "
            "Start a new run with another --out."
        )
    state = read_json(out / "trainer_state.json")
    model_config = from_dict(checkpoint.CONFIG_TYPES[state["kind"]], state["model_config"])
    return model_config, from_dict(checkpoint.TRAIN_CONFIG_TYPES[state["kind"]], state["train_config"])


@dataclass
class _Counters:
    step: int = 0
    epoch: int = 0
    position: int = 0  # windows done in the current epoch
    best_score: float = math.inf  # the monitored figure, negated when higher is better
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0  # evaluations since the best one
    seconds: float = 0.0  # wall clock spent, evaluations included (what --max-time limits)
    eval_seconds: float = 0.0
    tokens: int = 0

    def epochs_done(self, steps_per_epoch: int) -> float:
        return self.epoch + min(1.0, self.position / max(1, steps_per_epoch))

    @property
    def tokens_per_s(self) -> float:
        """Training throughput: target tokens per second of optimizer steps (evaluations excluded)."""
        return self.tokens / max(self.seconds - self.eval_seconds, 1e-9)


def learning_rate(base: float, step: int, warmup: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the base rate at the end of the budget."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def run_training(
    task: Task,
    tokenizer: Any,
    cfg: TrainConfig,
    out: Path,
    *,
    resume: bool,
    callback: Callback | None,
    precision: str,
    device: torch.device,
) -> TrainResult:
    """The loop shared by every model kind (see Task)."""
    emit = callback or (lambda event: None)
    model = task.model
    # fused: one kernel for all parameters, ~8× faster steps than the per-tensor loop on CPU (a word
    # embedding alone has millions of weights to update every step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    total_steps = cfg.epoch_limit * task.steps_per_epoch
    warmup = max(1, min(100, total_steps // 20))
    eval_every = cfg.eval_every or max(1, math.ceil(task.steps_per_epoch / 2))
    c = _Counters()
    if resume:
        saved, tensors = checkpoint.load_resume_state(out, model, optimizer, device)
        torch.set_rng_state(torch.tensor(saved["torch_rng"], dtype=torch.uint8))
        c = _Counters(**{f.name: saved[f.name] for f in fields(_Counters)})
        task.restore(tensors)
        checkpoint.truncate_metrics(out, c.step)
    else:
        checkpoint.save_tokenizer(out, tokenizer)  # --resume needs it before the first best checkpoint

    def progress() -> float:
        by_time = c.seconds / cfg.max_time if cfg.max_time else 0.0
        return min(1.0, max(c.step / total_steps, by_time))

    def save_resume() -> None:
        state = {
            **c.__dict__,
            "torch_rng": torch.get_rng_state().tolist(),
            "kind": model.kind,
            "model_config": to_dict(model.config),
            "train_config": to_dict(cfg),
        }
        checkpoint.save_resume_state(out, model, optimizer, task.carried(), state)

    emit(
        TrainEvent(
            "start",
            c.step,
            c.epoch,
            progress(),
            info={
                "precision": precision,
                "device": str(device),
                "total_steps": total_steps,
                "steps_per_epoch": task.steps_per_epoch,
                "parameters": sum(p.numel() for p in model.parameters()),
                **task.info,
            },
        )
    )
    stopped_by, last_eval, window_loss, window_tokens = "epochs", c.step, 0.0, 0
    model.train()
    with _sigint_flag() as interrupted:
        while c.epoch < cfg.epoch_limit and stopped_by == "epochs":
            for batch in task.windows(c.epoch, c.position):
                started = time.perf_counter()
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(cfg.lr, c.step, warmup, progress())
                loss, tokens = task.loss(batch)
                if not torch.isfinite(loss):
                    raise TrainingStopped(
                        f"the training loss became {loss.item()} at step {c.step + 1}; stopped. The best checkpoint "
                        f"(step {c.best_step}) is kept in {out}. Lower --lr or --clip and train again.",
                        step=c.step + 1,
                        interrupted=False,
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)  # RNN gradients explode without it
                optimizer.step()
                c.step, c.position, c.tokens = c.step + 1, c.position + 1, c.tokens + tokens
                c.seconds += time.perf_counter() - started
                window_loss, window_tokens = window_loss + loss.item() * tokens, window_tokens + tokens
                epochs = c.epochs_done(task.steps_per_epoch)
                emit(TrainEvent("step", c.step, epochs, progress(), loss=loss.item(), tokens_per_s=c.tokens_per_s))
                out_of_time = cfg.max_time is not None and c.seconds >= cfg.max_time
                if c.step % eval_every == 0 or out_of_time:
                    started = time.perf_counter()
                    better = _evaluate(
                        task,
                        tokenizer,
                        cfg,
                        out,
                        c,
                        emit,
                        progress(),
                        train_loss=window_loss / max(1, window_tokens),
                    )
                    spent = time.perf_counter() - started
                    c.seconds, c.eval_seconds = c.seconds + spent, c.eval_seconds + spent
                    last_eval, window_loss, window_tokens = c.step, 0.0, 0
                    if not better and cfg.patience and c.bad_evals >= cfg.patience:
                        stopped_by = "patience"
                    save_resume()
                if out_of_time:
                    stopped_by = "max_time"
                if interrupted.is_set():
                    save_resume()
                    raise TrainingStopped(f"interrupted at step {c.step}", step=c.step, interrupted=True)
                if stopped_by != "epochs":
                    break
            else:
                c.epoch, c.position = c.epoch + 1, 0
        if last_eval != c.step:
            _evaluate(task, tokenizer, cfg, out, c, emit, progress(), train_loss=window_loss / max(1, window_tokens))
    checkpoint.clear_resume_state(out)
    return TrainResult(
        out_dir=out,
        steps=c.step,
        best_step=c.best_step,
        best_metrics=c.best_metrics,
        stopped_by=stopped_by,
        precision=precision,
        device=str(device),
        tokens_per_s=c.tokens_per_s,
        seconds=c.seconds,
    )


def _evaluate(
    task: Task,
    tokenizer: Any,
    cfg: TrainConfig,
    out: Path,
    c: _Counters,
    emit: Callback,
    progress: float,
    *,
    train_loss: float,
) -> bool:
    """Validate, log, keep the checkpoint when it is the best so far; returns whether it was."""
    metrics = task.validate()
    record = {
        "step": c.step,
        "epoch": c.epochs_done(task.steps_per_epoch),
        "train_loss": train_loss,
        **metrics,
        "tokens_per_s": c.tokens_per_s,
        "seconds": c.seconds,
    }
    checkpoint.append_metrics(out, record)
    epochs = c.epochs_done(task.steps_per_epoch)
    emit(TrainEvent("eval", c.step, epochs, progress, metrics=metrics))
    if not math.isfinite(metrics["val_loss"]):
        raise TrainingStopped(
            f"the validation loss became {metrics['val_loss']} at step {c.step}; stopped. The best "
            f"checkpoint (step {c.best_step}) is kept in {out}. Lower --lr or --clip and train "
            "again.",
            step=c.step,
            interrupted=False,
        )
    name, mode = task.monitor
    score = metrics[name] if mode == "min" else -metrics[name]
    if score < c.best_score:
        c.best_score, c.best_step, c.best_metrics, c.bad_evals = score, c.step, metrics, 0
        checkpoint.save(out, task.model, tokenizer, cfg)
        emit(TrainEvent("save", c.step, epochs, progress, metrics=metrics))
        return True
    c.bad_evals += 1
    return False


@contextmanager
def _sigint_flag() -> Iterator[threading.Event]:
    """Ctrl-C sets a flag checked between steps, so a step is never cut in half; a second Ctrl-C aborts."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
