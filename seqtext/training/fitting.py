"""The model that learns most in a wall-clock budget on this machine, chosen by measurement.

A budget recipe lists candidate models, the most costly first. Each but the last names the optimizer
steps it needs to learn more than the next one in the same time (the next one, cheaper, takes several
times as many steps in those minutes): a threshold measured in experiments in steps, which do not
depend on the machine (docs/benchmarks.md, "Choosing the model for the budget"). What depends on the
machine is how many steps the budget buys: before training, each candidate's step is timed here, on
the run's own batches, and the first candidate the budget buys what it needs is chosen (the last when
none is). A CPU with native bf16 buys the largest model its steps in minutes; a laptop training in
fp32 does not, and the same recipe trains a cheaper model for more steps there. A recipe never
chooses for a user who typed one of its fields, or a field its evidence was measured with
(`Recipe.open_to`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

TIMED_STEPS = 2  # timed steps per candidate, after one that sets up kernels and buffers


@dataclass(frozen=True)
class Candidate:
    """A model a recipe may train: the config fields it sets, and the steps the budget must buy it."""

    name: str
    fields: dict[str, Any]
    needs_steps: int = 0  # to learn more than the next candidate in the same time; 0 for the last


@dataclass(frozen=True)
class Recipe:
    """Candidates, the most costly first, and the fields their evidence was measured with at their defaults."""

    name: str
    candidates: tuple[Candidate, ...]
    assumes: frozenset[str] = frozenset()

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
) -> Choice:
    """Time the candidates in order (`time_step(fields)`: seconds of one step) until what is left of the
    `budget` (seconds) buys one the steps it needs, or all `step_limit` allows (the epochs, --max-steps):
    that one is chosen, and the smaller ones are not timed."""
    started = clock()
    measured: dict[str, float] = {}
    for candidate in recipe.candidates:
        measured[candidate.name] = time_step(candidate.fields)
        steps = min(step_limit, max(0.0, budget - (clock() - started)) / measured[candidate.name])
        if steps >= min(candidate.needs_steps, step_limit):
            break
    spent = clock() - started
    bought = {name: int(min(step_limit, max(0.0, budget - spent) / seconds)) for name, seconds in measured.items()}
    why = _why(recipe, candidate, bought, measured, step_limit)
    return Choice(recipe.name, candidate.name, candidate.fields, why, measured, spent)


def _why(recipe: Recipe, chosen: Candidate, bought: dict[str, int], measured: dict[str, float], limit: float) -> str:
    """One line: the steps the budget buys each timed candidate here, against the steps each needs."""
    parts = []
    for index, candidate in enumerate(recipe.candidates):
        steps = f"{candidate.name}: {bought[candidate.name]:,} steps here at {measured[candidate.name]:.2f} s a step"
        if candidate is not chosen:
            parts.append(f"{steps}, short of the {candidate.needs_steps:,} it needs")
            continue
        later = recipe.candidates[index + 1 :]
        if later and bought[candidate.name] < candidate.needs_steps:  # the epochs or --max-steps cap them all
            steps += ", all the steps the run allows"
        elif later:
            steps += f", enough to learn more than {later[0].name}"
        parts.append(steps)
        break
    return "; ".join(parts)


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
