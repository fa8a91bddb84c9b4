"""The model that learns most in a wall-clock budget on this machine, chosen by measurement.

A budget recipe lists candidate models, the default first. Each carries its learning curve: the
validation loss it reached after N optimizer steps, measured in experiments in steps, which do not
depend on the machine (docs/benchmarks.md, "Choosing the model for the budget"). What depends on the
machine is how many steps the budget buys each: before training, every candidate's step is timed
here, on the run's own batches, and the one whose curve promises the lowest loss at the steps it
would get is chosen. A later candidate replaces the default only when it promises at least MARGIN
less, beyond what one seed moves a curve. A CPU with native bf16 buys the largest model its steps in
minutes; a laptop training in fp32 does not, and the same recipe trains a cheaper model for more
steps there. A recipe never chooses for a user who typed one of its fields, or a field its evidence
was measured with (`Recipe.open_to`).

The curves hold as far as they were measured, in passes over a text as well as in steps. Where the budget
buys the default more epochs of the run's text than its curve was measured over (a small text, or a fast
machine), they do not say which model learns more, and the default is kept: on a small text the run
stops by patience once it has learned the lines, and there the default learned them better.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

TIMED_STEPS = 2  # timed steps per candidate, after one that sets up kernels and buffers
MARGIN = 0.05  # the loss a later candidate must promise to save over the default: a seed moves a curve about this


@dataclass(frozen=True)
class Candidate:
    """A model a recipe may train: the config fields it sets, and its learning curve."""

    name: str
    fields: dict[str, Any]
    curve: tuple[tuple[int, float], ...]  # (steps, validation loss after a run planned for that many), ascending

    def expected_loss(self, steps: float) -> float:
        """The loss the curve promises after `steps`: interpolated in log-steps between measured points,
        the first segment's slope below them, and no better than the last point beyond it (the evidence
        promises nothing there)."""
        points = self.curve
        if steps >= points[-1][0] or len(points) == 1:
            return points[-1][1]
        index = min(max(bisect.bisect_left([n for n, _ in points], steps), 1), len(points) - 1)
        (n0, loss0), (n1, loss1) = points[index - 1], points[index]
        slope = (loss1 - loss0) / math.log(n1 / n0)
        return loss0 + slope * math.log(max(steps, 1.0) / n0)


@dataclass(frozen=True)
class Recipe:
    """Candidates, the default first, what their curves measure, and the fields their evidence was
    measured with at their defaults."""

    name: str
    candidates: tuple[Candidate, ...]
    loss: str = "loss"  # what the curves hold, as the reason names it ("bpc")
    assumes: frozenset[str] = frozenset()
    steps_per_epoch: int = 0  # an epoch of the text the curves were measured on, in steps (0: not known)

    def epochs_measured(self) -> float:
        """The passes over its text the default's curve reaches (inf when the recipe does not know its text)."""
        return self.candidates[0].curve[-1][0] / self.steps_per_epoch if self.steps_per_epoch else math.inf

    def open_to(self, typed: Iterable[str]) -> Recipe | None:
        """The recipe, unless the user typed a field it chooses or assumes: then they chose the model."""
        owned = {name for c in self.candidates for name in c.fields} | self.assumes
        return None if owned & set(typed) else self


@dataclass(frozen=True)
class Choice:
    """What a recipe chose, why, and what it measured (the run's train_config.json keeps `chosen: why`)."""

    recipe: str
    chosen: str
    fields: dict[str, Any]
    why: str
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # spent measuring: counted in the budget

    @property
    def summary(self) -> str:
        """What train_config.json keeps and the command line prints."""
        return f"{self.chosen} ({self.why})"


def choose(
    recipe: Recipe,
    budget: float,
    step_limit: float,
    time_step: Callable[[dict[str, Any]], float],
    clock: Callable[[], float] = time.perf_counter,
    steps_per_epoch: int = 0,
) -> Choice:
    """Time every candidate's step (`time_step(fields)`: seconds of one step), give each the steps what
    is left of the `budget` (seconds) buys it, at most `step_limit` (the epochs, --max-steps), and choose
    the lowest expected loss; the default keeps its place unless another promises MARGIN less, and when the
    budget buys it more passes over this text (`steps_per_epoch` steps each) than its curve measured."""
    started = clock()
    measured = {candidate.name: time_step(candidate.fields) for candidate in recipe.candidates}
    spent = clock() - started
    bought = {name: int(min(step_limit, max(0.0, budget - spent) / seconds)) for name, seconds in measured.items()}
    expected = {c.name: c.expected_loss(bought[c.name]) for c in recipe.candidates}
    default, *others = recipe.candidates
    best = min(others, key=lambda c: expected[c.name], default=default)
    epochs = bought[default.name] / steps_per_epoch if steps_per_epoch else 0.0
    beyond_evidence = epochs > recipe.epochs_measured()
    chosen = best if not beyond_evidence and expected[best.name] <= expected[default.name] - MARGIN else default
    why = "; ".join(
        f"{c.name}: {bought[c.name]:,} steps here at {measured[c.name]:.2f} s a step, "
        f"{recipe.loss} {expected[c.name]:.2f} expected"
        for c in recipe.candidates
    )
    if beyond_evidence:
        why = (
            f"{default.name} kept: the budget buys it {epochs:,.1f} epochs of this text, beyond the "
            f"{recipe.epochs_measured():.1f} its curve was measured over; " + why
        )
    return Choice(recipe.name, chosen.name, chosen.fields, why, measured, spent)


def seconds_per_step(
    model: torch.nn.Module,
    loss: Callable[[Any], torch.Tensor],
    batches: list[Any],
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """One training step of `model` on this machine: forward, backward, clipping and a fused AdamW update,
    on the run's own batches. The first step sets up kernels and is not counted; the median of the next
    TIMED_STEPS is. The model is a throwaway: the caller keeps the random state as it was."""
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    times = []
    for index in range(TIMED_STEPS + 1):
        started = clock()
        optimizer.zero_grad(set_to_none=True)
        loss(batches[index % len(batches)]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if index:
            times.append(clock() - started)
    return statistics.median(times)
