"""The training loop's side of several processes (see `seqtext.training.distributed`): DistributedDataParallel
for the gradients, and every decision that ends or shapes training taken together.

`Replicas` is what `seqtext.training.loop.run_training` talks to; in a single process every method is the
plain single-process behaviour, so the loop reads the same either way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from seqtext.errors import ConfigError
from seqtext.runs import checks
from seqtext.training import distributed

UNKNOWN_SIGNAL = 255  # a stop asked for by code, not by a signal


class _Loss(nn.Module):
    """The task's loss as a module's forward, so that DDP sees the forward pass it synchronises
    (a language model's loss goes through `nll`, or many steps of scheduled sampling)."""

    def __init__(self, task: Any) -> None:
        super().__init__()
        self.model = task.model
        self.task = [task]  # in a list: not a submodule

    def forward(self, batch: Any) -> tuple[torch.Tensor, int]:
        return self.task[0].loss(batch)


class Replicas:
    """This process among the run's processes (or alone: world None)."""

    def __init__(self, world: distributed.World | None) -> None:
        self.world = world
        self.writer = world is None or world.writer
        self.size = 1 if world is None else world.size

    def loss_of(self, task: Any, seed: int, fresh: bool) -> Callable[[Any], tuple[torch.Tensor, int]]:
        """What computes a batch's loss: the task's own, or through DDP, which starts every rank from
        rank 0's weights and averages the gradients during backward."""
        if self.world is None:
            return task.loss
        ddp = DistributedDataParallel(_Loss(task))  # RNNs have no buffers to sync
        if fresh and self.world.rank > 0:  # dropout masks of their own (a resumed run restores each RNG)
            torch.manual_seed(seed * 1_000_003 + 7919 * self.world.rank)
        return ddp

    def step(self, loss: torch.Tensor, tokens: int) -> tuple[torch.Tensor, float, int, bool]:
        """Before backward: (the loss to differentiate, the mean loss of all processes, their tokens,
        whether any process's loss is not finite).

        DDP averages gradients over processes; scaled by this process's share of the tokens, the
        average is the gradient of the mean over every token, as one process with the whole batch has
        (exactly so for a language model; a classifier with --class-weights balanced averages per text).
        """
        finite = bool(torch.isfinite(loss))
        if self.world is None:
            return loss, loss.item(), tokens, not finite
        mine = loss.item() * tokens if finite else 0.0
        total_tokens, total_loss, bad = distributed.reduce([tokens, mine, 0.0 if finite else 1.0])
        scaled = loss * (tokens * self.size / max(total_tokens, 1.0))
        mean = math.nan if bad else total_loss / max(total_tokens, 1.0)  # a diverged loss is reported as such
        return scaled, mean, int(total_tokens), bad > 0

    def clock(self, seconds: float) -> float:
        """Rank 0's clock: what --max-time reads, so every process stops after the same step."""
        if self.world is None:
            return seconds
        return distributed.reduce([seconds if self.writer else 0.0], op="max")[0]

    def stop_asked(self, flag: Any) -> bool:
        """Whether any process was asked to stop (Ctrl-C, SIGTERM); `flag` then holds the signal."""
        if self.world is None:
            return flag.is_set()
        mine = (flag.signum or UNKNOWN_SIGNAL) if flag.is_set() else 0
        asked = int(distributed.reduce([float(mine)], op="max")[0])
        if asked and not flag.is_set():  # another process's signal: this one stops with it
            flag.signum = None if asked == UNKNOWN_SIGNAL else asked
            flag.set()
        return bool(asked)

    def validated(self, validate: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Rank 0 validates; every rank gets its figures, so every rank takes the same decisions."""
        if self.world is None:
            return validate()
        text = json.dumps(validate()) if self.writer else ""
        return json.loads(distributed.gather_text(text)[0])

    def resume_parts(
        self, rng: torch.Tensor, carried: dict[str, torch.Tensor]
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """What the resume state holds for every process: rank 0's RNG and carried state under their
        single-process names, the others' as `rank_rngs` and `rankN.` tensors."""
        if self.world is None:
            return {"torch_rng": rng.tolist(), **self._gpu_rngs()}, carried
        names = json.dumps({k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in carried.items()})
        layouts = [json.loads(text) for text in distributed.gather_text(names)]
        blob = torch.cat(
            [rng.view(-1), *[v.detach().cpu().contiguous().view(-1).view(torch.uint8) for v in carried.values()]]
        )
        blobs = distributed.gather_bytes(blob)
        state: dict[str, Any] = {
            "torch_rng": rng.tolist(),
            "world_size": self.size,
            "rank_rngs": [],
            **self._gpu_rngs(),
        }
        tensors: dict[str, torch.Tensor] = {}
        for rank, (layout, data) in enumerate(zip(layouts, blobs, strict=True)):
            if rank:
                state["rank_rngs"].append(data[: rng.numel()].tolist())
            at = rng.numel()
            for name, (dtype, shape) in layout.items():
                kind = getattr(torch, dtype)
                count = int(torch.tensor(shape).prod()) * torch.empty(0, dtype=kind).element_size()
                value = data[at : at + count].clone().view(kind).view(shape)
                tensors[f"rank{rank}.{name}" if rank else name] = value
                at += count
        return state, tensors

    def own_resume(
        self, saved: dict[str, Any], tensors: dict[str, torch.Tensor], out: Path
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """This process's RNG state and carried tensors from a resume state, after checking that the
        run is resumed on as many processes as it was started on."""
        file = out / "trainer_state.json"
        started = saved.get("world_size", 1)
        if type(started) is not int or started < 1:
            raise checks.problem(file, 'field "world_size" is not a positive whole number (a foreign or edited file)')
        if started != self.size:
            raise ConfigError(
                f"{out} was trained on {started} process(es) and is resumed on {self.size}; a run resumes on the "
                f"number it started on: "
                + (
                    "seqtext train ... --resume, without torchrun"
                    if started == 1
                    else f"torchrun with {started} processes in all (e.g. --nproc-per-node {started}) ... --resume"
                )
            )
        rank = 0 if self.world is None else self.world.rank
        self._restore_gpu_rng(saved.get("gpu_rngs"), rank, file)
        if rank == 0:
            return saved["torch_rng"], {k: v for k, v in tensors.items() if not k.startswith("rank")}
        rngs = saved.get("rank_rngs")
        if not isinstance(rngs, list) or len(rngs) != self.size - 1:
            raise checks.problem(file, f'field "rank_rngs" does not hold {self.size - 1} random-generator states')
        rng = rngs[rank - 1]
        if (
            not isinstance(rng, list)
            or len(rng) != len(saved["torch_rng"])
            or not all(type(b) is int and 0 <= b < 256 for b in rng)
        ):
            raise checks.problem(file, 'field "rank_rngs" is not a list of random-generator states of this torch')
        prefix = f"rank{rank}."
        return rng, {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    def _gpu_rngs(self) -> dict[str, Any]:
        """Every process's GPU random-generator state (dropout and scheduled sampling draw there), as
        `gpu_rngs` in rank order; nothing when a process trains on the CPU. A collective under torchrun."""
        own = gpu_rng()
        every = [own] if self.world is None else [json.loads(t) for t in distributed.gather_text(json.dumps(own))]
        return {} if any(state is None for state in every) else {"gpu_rngs": every}

    def _restore_gpu_rng(self, saved: Any, rank: int, file: Path) -> None:
        """This process's GPU generator as it was saved, for an exact resume on the GPU (a run saved on
        the CPU has none, and a run resumed on the CPU needs none)."""
        own = gpu_rng()
        if saved is None or own is None:
            return
        state = saved[rank] if isinstance(saved, list) and len(saved) == self.size else None
        if (
            not isinstance(state, list)
            or len(state) != len(own)
            or not all(type(b) is int and 0 <= b < 256 for b in state)
        ):
            raise checks.problem(file, f'field "gpu_rngs" does not hold {self.size} GPU random-generator state(s)')
        torch.cuda.set_rng_state(torch.tensor(state, dtype=torch.uint8))


def gpu_rng() -> list[int] | None:
    """The current GPU's random-generator state when this process uses CUDA, else None."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return torch.cuda.get_rng_state().tolist()
