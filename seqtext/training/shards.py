"""Each process's share of every epoch, when torchrun runs several (see `seqtext.training.distributed`).

Every process computes the same epoch order (it depends only on the seed and the epoch) and keeps
its own part of it, so no data is sent between processes and an epoch is seen once in all:

- line corpora: the length-bucketed batches are dealt out, each to the process with the fewest
  windows so far (a long line is several windows and stays on one process, with its state carried);
- prose: the stream is laid out as (batch size × processes) columns and each process reads its own
  contiguous block of columns with its own carried state, which is exactly what one process with the
  whole global batch reads;
- classifier: the length-sorted batches are dealt out in turn.

Every process takes the same number of steps per epoch (so none waits in a collective for a step
that never comes): a process with fewer windows in an epoch reads its first ones again, one with
more stops at the common count, as torch's DistributedSampler pads. `--batch-size` is per process.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import torch

from seqtext.data import LineWindows, StreamWindows, Window, _gen
from seqtext.errors import ConfigError
from seqtext.tokenizer import PAD_ID
from seqtext.training.distributed import World, current


def for_rank(batches: Any, source: str, world: World | None = None) -> Any:
    """This process's share of `batches` (LineWindows, StreamWindows or the classifier's TextBatches);
    `batches` itself in a single process."""
    world = world or current()
    if world is None:
        return batches
    if isinstance(batches, StreamWindows):
        return StreamShard(batches, world, source)
    if isinstance(batches, LineWindows):
        return LineShard(batches, world, source)
    return DealtShard(batches, world, source)


def _too_few(source: str, count: int, what: str, world: World, batch_size: int) -> ConfigError:
    return ConfigError(
        f"{source} gives {count:,} {what} of --batch-size {batch_size} per epoch, fewer than the {world.size} "
        f"processes: each process needs at least one. Lower --batch-size (it is per process) or start fewer "
        "processes"
    )


def _cycled(items: list[Any], steps: int, start: int) -> Iterator[Any]:
    """`steps` items from `items` read in turn (again from the first when they run out), from `start`."""
    if not items:
        return iter(())
    return itertools.islice(itertools.cycle(items), start, steps)


class LineShard:
    """One process's length-bucketed line batches; steps_per_epoch is the same on every process."""

    def __init__(self, inner: LineWindows, world: World, source: str) -> None:
        self.inner, self.world, self.batch_size = inner, world, inner.batch_size
        self.lines = inner.lines
        batches = inner._batches(None)
        if len(batches) < world.size:
            raise _too_few(source, len(batches), "batches", world, inner.batch_size)
        self.steps_per_epoch = math.ceil(inner.steps_per_epoch / world.size)

    def mine(self, epoch: int, seed: int | None) -> list[list[int]]:
        """The batches of this process in one epoch: each to the least loaded process (ties: lowest rank)."""
        loads, kept = [0] * self.world.size, []
        for batch in self.inner._batches(None if seed is None else _gen(seed, epoch)):
            rank = loads.index(min(loads))
            loads[rank] += self.inner._count(batch)
            if rank == self.world.rank:
                kept.append(batch)
        return kept

    def epoch(self, epoch: int, seed: int | None, start: int = 0) -> Iterator[Window]:
        windows = (w for batch in itertools.cycle(self.mine(epoch, seed)) for w in self.inner._windows(batch))
        return itertools.islice(windows, start, self.steps_per_epoch)


class StreamShard(StreamWindows):
    """One process's contiguous block of the columns that one process with the global batch would read."""

    def __init__(self, inner: StreamWindows, world: World, source: str) -> None:
        columns = inner.columns  # (B, L + 1): column b is padded[b*L : (b+1)*L + 1]
        ids = torch.cat([columns[:, :-1].reshape(-1), columns[-1, -1:]])
        ids = ids[: int((ids != PAD_ID).nonzero().max()) + 1]  # PAD only at the very end
        size = inner.batch_size * world.size
        super().__init__(ids, inner.bptt, size)
        needed = size * (inner.bptt + 1)
        if self.targets < needed:
            raise ConfigError(
                f"{source} gives {self.targets:,} training tokens; --bptt {inner.bptt} × --batch-size "
                f"{inner.batch_size} per process × {world.size} processes needs at least {needed:,}. Lower "
                "--bptt or --batch-size (it is per process), start fewer processes, or give more text."
            )
        self.batch_size = inner.batch_size
        self.columns = self.columns[world.rank * inner.batch_size : (world.rank + 1) * inner.batch_size]
        self.targets = int((self.columns[:, 1:] != PAD_ID).sum())


class DealtShard:
    """One process's classifier batches, dealt out in turn from the epoch's shuffled length batches."""

    def __init__(self, inner: Any, world: World, source: str) -> None:
        self.inner, self.world, self.labels, self.batch_size = inner, world, inner.labels, inner.batch_size
        if inner.steps_per_epoch < world.size:
            raise _too_few(source, inner.steps_per_epoch, "batches", world, inner.batch_size)
        self.steps_per_epoch = math.ceil(inner.steps_per_epoch / world.size)

    def epoch(self, epoch: int, seed: int, start: int = 0) -> Iterator[Any]:
        mine = [b for i, b in enumerate(self.inner.epoch(epoch, seed)) if i % self.world.size == self.world.rank]
        return _cycled(mine, self.steps_per_epoch, start)
