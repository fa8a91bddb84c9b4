"""The training loop shared by every model kind: clipping, AdamW with warm-up and decay planned in the
steps the run will take (seqtext.training.schedule), early stopping, best-checkpoint keeping, exact
resume. Quiet: progress goes to a callback.

What differs between model kinds (batches, loss, validation) is a Task: `seqtext.lm.training` and
`seqtext.sentiment.training` define theirs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from seqtext.config import TrainConfig, to_dict
from seqtext.errors import TrainingStopped
from seqtext.runs import checks, saving
from seqtext.runs.resume import RESULT_FIELDS, load_resume_state, mark_trained, save_resume_state, trained_result
from seqtext.training import distributed
from seqtext.training.gradnorms import GradientLog
from seqtext.training.replicas import Replicas
from seqtext.training.schedule import Schedule
from seqtext.training.session import TrainingSession, sources
from seqtext.training.stopping import STOP_SIGNALS, stop_flag

# What times steps and evaluations: --max-time and the schedule's plans read it. Tests put a deterministic
# clock here (a step takes what the test says), so that budget-planned runs are reproducible.
clock: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class TrainEvent:
    """What the trainer reports: a step, an evaluation, or a saved best checkpoint."""

    kind: Literal["start", "step", "eval", "save", "plan"]
    step: int
    epoch: float  # epochs done, fractional (1.5 = halfway through the second pass)
    progress: float  # fraction of the budget (epochs or --max-time) used, 0..1
    loss: float | None = None
    tokens_per_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # "start": the run; "plan": the schedule's new plan


Callback = Callable[[TrainEvent], None]


@dataclass(frozen=True)
class TrainResult:
    """Where the best checkpoint is and how training went."""

    out_dir: Path
    steps: int
    best_step: int
    best_metrics: dict[str, float]
    stopped_by: str  # "epochs", "max_steps", "max_time" or "patience"
    precision: str
    device: str
    tokens_per_s: float
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)  # what was built after training (the keyboard's n-gram)


class Task(Protocol):
    """What differs between language models and classifiers; the loop below is shared.

    A task may also offer `probe_gradients() -> dict`: figures that --log-gradients records at each
    evaluation (a language model's gradient through time), and `kept_model`: the module saved as the
    best checkpoint when it is not the one trained (a classifier's --ema weight average).
    """

    model: nn.Module
    steps_per_epoch: int
    monitor: tuple[str, str]  # validation figure that picks the best checkpoint, and "min" or "max"
    info: dict[str, Any]  # shown once when training starts (data sizes, split, ...)

    def windows(self, epoch: int, start: int) -> Iterator[Any]: ...
    def loss(self, batch: Any) -> tuple[torch.Tensor, int]: ...
    def validate(self) -> dict[str, float]: ...
    def carried(self) -> dict[str, torch.Tensor]: ...
    def restore(self, tensors: dict[str, torch.Tensor]) -> None: ...


@dataclass
class _Counters:
    MAY_BE_INFINITE: ClassVar[frozenset[str]] = frozenset({"best_score"})  # no evaluation yet

    step: int = 0
    epoch: int = 0
    position: int = 0  # windows done in the current epoch
    best_score: float = math.inf  # the monitored figure, negated when higher is better
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0  # evaluations since the best one
    seconds: float = 0.0  # wall clock spent, evaluations included (what --max-time limits)
    eval_seconds: float = 0.0
    choosing_seconds: float = 0.0  # choosing the model for the budget: in --max-time, not in the training speed
    tokens: int = 0

    @classmethod
    def resumed(cls, saved: dict[str, Any], file: Path) -> _Counters:
        """The counters of trainer_state.json, every one checked (a type, a sign, a missing entry)."""
        c = checks.config_from(cls, {f.name: saved[f.name] for f in fields(cls) if f.name in saved}, file)
        for f in fields(cls):
            if f.name != "best_score" and isinstance(getattr(c, f.name), int | float) and getattr(c, f.name) < 0:
                raise checks.problem(file, f'field "{f.name}" cannot be negative (got {getattr(c, f.name)})')
        if c.best_step > c.step:
            raise checks.problem(file, f'field "best_step" ({c.best_step}) is after field "step" ({c.step})')
        return c

    def epochs_done(self, steps_per_epoch: int) -> float:
        return self.epoch + min(1.0, self.position / max(1, steps_per_epoch))

    @property
    def tokens_per_s(self) -> float:
        """Training throughput: target tokens per second of optimizer steps (evaluations excluded)."""
        return self.tokens / max(self.seconds - self.eval_seconds - self.choosing_seconds, 1e-9)


def run_training(
    session: TrainingSession,
    task: Task,
    tokenizer: Any,
    cfg: TrainConfig,
    out: Path,
    *,
    resume: bool,
    callback: Callback | None,
    precision: str,
    device: torch.device,
    spent: float = 0.0,
) -> TrainResult:
    """The loop shared by every model kind (see Task), in the session that holds the run directory.
    Under torchrun every process runs it on its own shard of the batches; rank 0 alone writes and
    reports (see seqtext.training.replicas). `spent`: seconds of --max-time already used (choosing the model)."""
    team = Replicas(session.world)
    session.finishes(out)  # the run is finished when the session ends: trainer_state.json goes then, last
    if resume and (done := trained_result(out)) is not None:  # trained already: only the steps after it are left
        distributed.setup_done()
        return TrainResult(out_dir=out, **done)
    emit = (callback if team.writer else None) or (lambda event: None)
    model = task.model
    # fused: one kernel for all parameters, ~8× faster steps than the per-tensor loop on CPU (a word
    # embedding alone has millions of weights to update every step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    total_steps = min(cfg.epoch_limit * task.steps_per_epoch, cfg.max_steps or math.inf)
    eval_every = cfg.eval_every or max(1, math.ceil(task.steps_per_epoch / 2))
    schedule = Schedule.planned(total_steps, cfg.max_time, eval_every)
    gradients = GradientLog(model, cfg.clip, getattr(task, "probe_gradients", None)) if cfg.log_gradients else None
    c = _Counters(seconds=spent, choosing_seconds=spent)
    if resume:
        saved, tensors = load_resume_state(out, model, optimizer, device)
        c = _Counters.resumed(saved, out / "trainer_state.json")
        rng, tensors = team.own_resume(saved, tensors, out)
        if "schedule" in saved:  # runs saved before plans were saved planned from the epochs alone
            schedule.restore(saved["schedule"], c.step, out / "trainer_state.json")
        torch.set_rng_state(torch.tensor(rng, dtype=torch.uint8))
        task.restore(tensors)
    distributed.setup_done()
    if team.writer and resume:
        saving.truncate_metrics(out, c.step)
    elif team.writer:
        saving.save_tokenizer(out, tokenizer)  # --resume needs it before the first best checkpoint
    step_loss = team.loss_of(task, cfg.seed, fresh=not resume)

    def progress() -> float:  # of the budget: steps or time, whichever is further
        by_time = c.seconds / cfg.max_time if cfg.max_time else 0.0
        return min(1.0, max(c.step / total_steps, by_time))

    options = {"kind": model.kind, "model_config": to_dict(model.config), "train_config": to_dict(cfg)}
    options["sources"] = sources(cfg)  # where the data is, so --resume from elsewhere finds it

    def save_resume() -> None:
        ranks, carried = team.resume_parts(torch.get_rng_state(), task.carried())  # a collective
        if team.writer:
            state = {**c.__dict__, **ranks, **options, "schedule": schedule.state()}
            save_resume_state(out, model, optimizer, carried, state)

    if not resume:  # resumable from the start on; a disk that cannot take the state stops the run now
        save_resume()
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
                "processes": team.size,
                **({"threads": session.threads} if session.threads else {}),
                **task.info,
            },
        )
    )
    stopped_by, last_eval, window_loss, window_tokens = "epochs", c.step, 0.0, 0

    def logged() -> dict[str, Any]:  # what an evaluation record adds about the training since the last one
        if not team.writer:
            return {}
        return {"train_loss": window_loss / max(1, window_tokens), **(gradients.summary() if gradients else {})}

    model.train()
    with stop_flag() as interrupted:
        while c.epoch < cfg.epoch_limit and stopped_by == "epochs":
            for batch in task.windows(c.epoch, c.position):
                started = clock()
                for group in optimizer.param_groups:
                    group["lr"] = schedule.rate(cfg.lr, c.step)
                loss, tokens = step_loss(batch)
                loss, loss_value, tokens, diverged = team.step(loss, tokens)  # the same on every process
                if diverged:
                    raise TrainingStopped(
                        f"the training loss became {loss_value} at step {c.step + 1}; stopped. {_kept(c, out)}",
                        step=c.step + 1,
                        interrupted=False,
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if gradients is not None:
                    gradients.observe()  # before clipping: the norms --clip compares with its limit
                if cfg.clip:  # RNN gradients explode without it
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                optimizer.step()
                c.step, c.position, c.tokens = c.step + 1, c.position + 1, c.tokens + tokens
                c.seconds = team.clock(c.seconds + clock() - started)  # rank 0's, for --max-time
                window_loss, window_tokens = window_loss + loss_value * tokens, window_tokens + tokens
                epochs = c.epochs_done(task.steps_per_epoch)
                emit(TrainEvent("step", c.step, epochs, progress(), loss=loss_value, tokens_per_s=c.tokens_per_s))
                out_of_time = cfg.max_time is not None and c.seconds >= cfg.max_time
                out_of_steps = cfg.max_steps is not None and c.step >= cfg.max_steps
                evaluate = c.step % eval_every == 0 or out_of_time or out_of_steps
                if evaluate:
                    started = clock()
                    better = _evaluate(task, tokenizer, cfg, out, c, emit, progress(), logged(), team)
                    spent = clock() - started  # rank 0's below: every process plans the same schedule
                    c.seconds, c.eval_seconds = team.clock(c.seconds + spent), team.clock(c.eval_seconds + spent)
                    last_eval, window_loss, window_tokens = c.step, 0.0, 0
                    if not better and cfg.patience and c.bad_evals >= cfg.patience:
                        stopped_by = "patience"
                plan = schedule.observe(c.step, c.seconds, c.eval_seconds)
                if plan is not None:
                    emit(TrainEvent("plan", c.step, epochs, progress(), info={**plan, "warmup": schedule.warmup}))
                if evaluate:
                    save_resume()
                stopped_by = "max_time" if out_of_time else "max_steps" if out_of_steps else stopped_by
                if team.stop_asked(interrupted):  # a signal to any process stops them all, at the same step
                    save_resume()
                    why, signum = STOP_SIGNALS.get(interrupted.signum or 0, "stopped"), interrupted.signum
                    raise TrainingStopped(f"{why} at step {c.step}", step=c.step, interrupted=True, signum=signum)
                if stopped_by != "epochs":
                    break
            else:
                c.epoch, c.position = c.epoch + 1, 0
        if last_eval != c.step:
            _evaluate(task, tokenizer, cfg, out, c, emit, progress(), logged(), team)
    result = TrainResult(
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
    if team.writer:  # trained; the steps after training (the session's) are still to come
        mark_trained(out, options, {name: getattr(result, name) for name in RESULT_FIELDS})
    return result


def _evaluate(
    task: Task,
    tokenizer: Any,
    cfg: TrainConfig,
    out: Path,
    c: _Counters,
    emit: Callback,
    progress: float,
    logged: dict[str, Any],
    team: Replicas,
) -> bool:
    """Validate, log, keep the checkpoint when it is the best so far; returns whether it was."""
    metrics = team.validated(task.validate)
    record = {
        "step": c.step,
        "epoch": c.epochs_done(task.steps_per_epoch),
        **logged,
        **metrics,
        "tokens_per_s": c.tokens_per_s,
        "seconds": c.seconds,
    }
    if team.writer:
        saving.append_metrics(out, record)
    epochs = c.epochs_done(task.steps_per_epoch)
    emit(TrainEvent("eval", c.step, epochs, progress, metrics=metrics))
    if not math.isfinite(metrics["val_loss"]):
        raise TrainingStopped(
            f"the validation loss became {metrics['val_loss']} at step {c.step}; stopped. {_kept(c, out)}",
            step=c.step,
            interrupted=False,
        )
    name, mode = task.monitor
    score = metrics[name] if mode == "min" else -metrics[name]
    if score < c.best_score:
        c.best_score, c.best_step, c.best_metrics, c.bad_evals = score, c.step, metrics, 0
        if team.writer:
            saving.save(out, getattr(task, "kept_model", task.model), tokenizer, cfg)  # a task may keep an average
        emit(TrainEvent("save", c.step, epochs, progress, metrics=metrics))
        return True
    c.bad_evals += 1
    return False


def _kept(c: _Counters, out: Path) -> str:
    """What a diverged run leaves behind, truthfully: the best checkpoint, or none yet."""
    advice = "Lower --lr or --clip and train again."
    if c.best_step == 0:
        return f"No checkpoint had been saved yet (it diverged before its first evaluation). {advice}"
    return f"The best checkpoint (step {c.best_step}) is kept in {out}. {advice}"
