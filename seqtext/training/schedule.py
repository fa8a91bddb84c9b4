"""The learning-rate schedule, planned in the steps a run will take: linear warm-up, then cosine decay
to a tenth of the base rate at the last planned step.

Without a wall-clock budget the plan is the step limit (--epochs × steps per epoch, or --max-steps).
With --max-time the number of steps depends on the machine: a laptop without bf16 takes a third of the
steps a bf16 server takes in the same minutes, and a schedule planned for the server's steps would still
be warming up when the laptop's budget ran out. So the plan starts from the step limit, is made
after the first steps from their measured speed (the steps the rest of the budget buys, evaluations
included), and is made again at every twentieth of the budget, from the speed since the last plan
(another process, or a slower phase, changes it). A new plan keeps the rate continuous: it decays from
where it is to its floor over the new number of steps.

Every plan is a function of the step counter and the run's clock (seconds of training and of
evaluation, as saved with the counters), and the plans are saved with the resume state: a resumed run
follows the same schedule as one that was never stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtext.runs import checks

WARMUP_SHARE = 20  # warm-up: a twentieth of the planned steps …
WARMUP_CAP = 100  # … and at most this many
MEASURED_STEPS = 4  # the first plan: the speed of these steps (the very first step, which sets up kernels, aside)
REPLANS = 20  # plan again at every twentieth of the budget
SAME_PLAN = 0.01  # a new plan within this share of the planned steps (or 2 steps) keeps the old one


def learning_rate(base: float, step: int, warmup: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the base rate at the end of the plan."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def warmup_for(steps: int) -> int:
    """Warm-up steps for a plan of `steps`: a twentieth, at least 1, at most WARMUP_CAP."""
    return max(1, min(WARMUP_CAP, steps // WARMUP_SHARE))


@dataclass
class Schedule:
    """The plan of a run's learning rate, and what it is re-planned from.

    `segments` holds (first step, progress then, last planned step) for each plan: the decay's progress
    runs linearly from the one to 1 at the other, so a new plan never makes the rate jump.
    """

    step_limit: int  # what the epochs (or --max-steps) allow: a plan never goes beyond it
    warmup: int
    segments: list[tuple[int, float, int]]
    budget: float | None = None  # --max-time in seconds; None: the step limit is the plan
    eval_every: int = 1
    measured: tuple[int, float] | None = None  # (step, training seconds) where the current measurement began
    next_plan: float = 0.0  # training seconds at which to plan again (0: the first plan is still to come)
    plans: list[dict[str, Any]] = field(default_factory=list)  # what each plan measured, for the record

    @classmethod
    def planned(cls, step_limit: int, budget: float | None, eval_every: int) -> Schedule:
        """The plan at step 0: the step limit (which stays the plan when there is no budget)."""
        return cls(step_limit, warmup_for(step_limit), [(0, 0.0, step_limit)], budget, eval_every)

    @property
    def total_steps(self) -> int:
        """The step at which the rate reaches its floor, as planned now."""
        return self.segments[-1][2]

    def progress(self, step: int) -> float:
        """How far the decay is at `step`, 0..1."""
        start, done, end = self.segments[-1]
        return min(1.0, done + (1 - done) * (step - start) / max(1, end - start))

    def rate(self, base: float, step: int) -> float:
        """The learning rate of step `step` (0-based)."""
        return learning_rate(base, step, self.warmup, self.progress(step))

    def observe(self, step: int, seconds: float, eval_seconds: float) -> dict[str, Any] | None:
        """After step `step` (1-based count of steps done) at `seconds` of the run's clock, `eval_seconds`
        of them spent validating: plan again when it is time. Returns the new plan, or None."""
        if self.budget is None:
            return None
        training = seconds - eval_seconds
        if self.measured is None:  # the first step sets up kernels and buffers: its time says little
            self.measured = (step, training)
            return None
        first, since = self.measured
        measured_steps = step - first
        if self.next_plan == 0.0:
            if measured_steps < MEASURED_STEPS and training - since < self.budget / REPLANS:
                return None
        elif training < self.next_plan:
            return None
        per_step = (training - since) / max(1, measured_steps)
        evals = step // self.eval_every
        per_eval = eval_seconds / evals if evals else 0.0  # the next plan counts them once one was timed
        left = max(0.0, self.budget - seconds)
        affordable = step + max(1, math.floor(left / max(1e-9, per_step + per_eval / self.eval_every)))
        total = min(self.step_limit, affordable)
        self.measured, self.next_plan = (step, training), training + self.budget / REPLANS
        if abs(total - self.total_steps) <= max(2, SAME_PLAN * self.total_steps):
            return None
        if len(self.plans) == 0:  # the first plan also sets the warm-up, unless it is already over
            self.warmup = min(self.warmup, max(step, warmup_for(total)))
        self.segments.append((step, self.progress(step), total))
        plan = {"step": step, "total_steps": total, "seconds_per_step": per_step, "seconds_per_eval": per_eval}
        self.plans.append(plan)
        return plan

    def state(self) -> dict[str, Any]:
        """What the resume state saves (trainer_state.json's "schedule")."""
        return {
            "step_limit": self.step_limit,
            "warmup": self.warmup,
            "segments": [list(s) for s in self.segments],
            "measured": list(self.measured) if self.measured else None,
            "next_plan": self.next_plan,
            "plans": self.plans,
        }

    def restore(self, saved: Any, step: int, file: Path) -> None:
        """Take the plans of an interrupted run (saved by state()), every field checked."""
        if not isinstance(saved, dict):
            raise checks.problem(file, 'field "schedule" is not an object')
        limit = _number(file, saved, "step_limit", int, 1)
        if limit != self.step_limit:
            raise checks.problem(file, f'field "schedule.step_limit" is {limit}, but this run allows {self.step_limit}')
        warmup = _number(file, saved, "warmup", int, 1)
        segments = saved.get("segments")
        if not isinstance(segments, list) or not segments:
            raise checks.problem(file, 'field "schedule.segments" is not a list of plans')
        parsed, previous = [], -1
        for item in segments:
            if not (isinstance(item, list) and len(item) == 3 and all(_is_number(x) for x in item)):
                raise checks.problem(file, f'field "schedule.segments" holds {item!r}, not [step, progress, total]')
            start, done, end = item
            if not (isinstance(start, int) and isinstance(end, int) and previous < start <= step and start < end):
                raise checks.problem(file, f'field "schedule.segments" holds steps out of order ({item!r})')
            if not 0.0 <= done <= 1.0 or end > limit:
                raise checks.problem(file, f'field "schedule.segments" holds a plan out of range ({item!r})')
            parsed.append((start, float(done), end))
            previous = start
        measured = saved.get("measured")
        if measured is not None and not (
            isinstance(measured, list)
            and len(measured) == 2
            and isinstance(measured[0], int)
            and 0 <= measured[0] <= step
            and _is_number(measured[1])
            and measured[1] >= 0
        ):
            raise checks.problem(file, f'field "schedule.measured" is {measured!r}, not [step, seconds]')
        plans = saved.get("plans", [])
        if not isinstance(plans, list) or not all(isinstance(p, dict) for p in plans):
            raise checks.problem(file, 'field "schedule.plans" is not a list of objects')
        self.warmup, self.segments = warmup, parsed
        self.measured = (measured[0], float(measured[1])) if measured else None
        self.next_plan, self.plans = _number(file, saved, "next_plan", float, 0), plans


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(file: Path, saved: dict[str, Any], name: str, kind: type, least: float) -> Any:
    value = saved.get(name)
    if not _is_number(value) or (kind is int and not isinstance(value, int)) or value < least:
        raise checks.problem(file, f'field "schedule.{name}" is {value!r}, expected a number of at least {least}')
    return kind(value)
