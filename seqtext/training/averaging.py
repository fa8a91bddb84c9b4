"""An exponential moving average of a model's weights (--ema), for any task of the shared loop: what a
classifier or a language model then validates and keeps."""

from __future__ import annotations

import copy

import torch
from torch import nn

from seqtext.errors import CheckpointError


class WeightAverage:
    """An exponential moving average of the weights (Polyak averaging), updated after every step.

    The decay ramps up as (1 + t) / (10 + t) towards --ema, so the first steps' random weights are
    soon forgotten. The average is kept in a copy of the model, in eval mode, on the same device.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source, self.decay = model, decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.updates, self.pending = 0, False

    @torch.no_grad()
    def catch_up(self) -> None:
        """Fold in the weights of the step just taken (once per step)."""
        if not self.pending:
            return
        self.pending, self.updates = False, self.updates + 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = list(self.model.parameters()), [p.detach() for p in self.source.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - decay)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What --resume needs: the averaged weights and the update count (pending folded in first)."""
        self.catch_up()
        state = {f"ema.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        return {**state, "ema_updates": torch.tensor(self.updates, dtype=torch.long)}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        own = self.model.state_dict()
        saved = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        shapes = {k: v.shape for k, v in saved.items()}
        if "ema_updates" not in tensors or shapes != {k: v.shape for k, v in own.items()}:
            raise CheckpointError(
                "optimizer.safetensors holds no weight average of this model (--ema); "
                "resume with the options the run started with, or start a new run"
            )
        self.model.load_state_dict(saved)
        self.updates, self.pending = int(tensors["ema_updates"]), False
