"""Gradient norms per parameter group, and their running summary for `--log-gradients`.

The norms are taken after backward and before clipping: what `--clip` compares with its limit, so
the share of clipped steps is exact. They are L2 norms, as torch.nn.utils.clip_grad_norm_ computes
them, and the total is the norm over all groups together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from seqtext.models import parameter_groups


def group_norms(groups: dict[str, list[nn.Parameter]]) -> dict[str, float]:
    """The gradient norm of each group and, under "total", of all of them (parameters without a gradient count 0)."""
    norms: dict[str, float] = {}
    for name, parameters in groups.items():
        grads = [p.grad for p in parameters if p.grad is not None]
        norms[name] = (
            float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0
        )
    norms["total"] = math.sqrt(sum(n * n for n in norms.values()))
    return norms


class GradientLog:
    """`--log-gradients`: every step's gradient norms (before clipping), summarised at each evaluation.

    A language model's task adds the gradient through time (`probe`), measured at each evaluation on
    fixed validation windows. Nothing here draws random numbers, so logging leaves training unchanged.
    """

    def __init__(self, model: nn.Module, clip: float, probe: Callable[[], dict[str, Any]] | None = None) -> None:
        self.groups, self.clip, self.probe = parameter_groups(model), clip, probe
        self._reset()

    def _reset(self) -> None:
        self.steps, self.clipped, self.largest = 0, 0, 0.0
        self.sums: dict[str, float] = {}

    def observe(self) -> None:
        """Call after backward, before clipping."""
        norms = group_norms(self.groups)
        self.steps += 1
        self.clipped += bool(self.clip) and norms["total"] > self.clip
        self.largest = max(self.largest, norms["total"])
        for name, value in norms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value

    def summary(self) -> dict[str, Any]:
        """Figures for the evaluation's metrics.jsonl record since the previous one; then start afresh.

        grad_norm: mean total norm per step; grad_norm_max: the largest; grad_clipped: share of steps
        that --clip clipped; grad_norm.GROUP: mean norm of one parameter group; plus the probe's figures.
        """
        figures: dict[str, Any] = {}
        if self.steps:
            figures = {
                "grad_norm": self.sums["total"] / self.steps,
                "grad_norm_max": self.largest,
                "grad_clipped": self.clipped / self.steps,
                "grad_steps": self.steps,
                **{f"grad_norm.{name}": s / self.steps for name, s in self.sums.items() if name != "total"},
            }
        if self.probe is not None:
            figures.update(self.probe())
        self._reset()
        return figures
