"""Training on several processes: torchrun's environment, the process group, and the few messages
the processes exchange besides the gradients.

`torchrun` (PyTorch's launcher) starts the processes and sets WORLD_SIZE, RANK, LOCAL_RANK and the
rendezvous address; seqtext only reads them. Without them nothing here does anything, and a single
process trains exactly as before.

- `joined()`: the process group for the life of a training call: gloo on CPU, NCCL with LOCAL_RANK's
  GPU on CUDA, and torch's threads split so that the processes of one machine share its cores.
- Rank 0 alone writes (`writes()`); the others compute and stay quiet.
- `agree()`: the setup before the first step (reading data, building the tokenizer, checking the run
  directory) either succeeds on every rank or fails on every rank with the same message, so that no
  rank waits forever for one that has already stopped.
- Control messages (a few numbers per step, the tokenizer, the validation figures, the resume state)
  travel as bytes over a gloo group on the CPU, whatever carries the gradients. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist

from seqtext.errors import ConfigError, SeqtextError
from seqtext.runtime import allowed_cores

T = TypeVar("T")
ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
RENDEZVOUS = ("MASTER_ADDR", "MASTER_PORT")


PEER_STOPPED = "another process of this run stopped (see its message, or torchrun's report); this one stops too"


class PeerStopped(SeqtextError):
    """Another process of the run stopped (an error, a signal, a crash); this one stops with it."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run (torchrun's numbering)."""

    rank: int
    size: int
    local_rank: int
    local_size: int  # processes on this machine
    nodes: int  # machines

    @property
    def writer(self) -> bool:
        return self.rank == 0


def detect(environ: dict[str, str] | None = None) -> World | None:
    """The torchrun environment, checked; None when this process was not started by torchrun."""
    env = os.environ if environ is None else environ
    present = [name for name in ENV if name in env]
    if not present:
        return None
    if len(present) < len(ENV):
        missing = ", ".join(name for name in ENV if name not in env)
        raise ConfigError(
            f"{', '.join(present)} is set but {missing} is not; start the processes with torchrun "
            "(torchrun --nproc-per-node N -m seqtext train ...), or unset these variables for one process"
        )
    values = {}
    for name in (*ENV, "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE"):
        text = env.get(name, "1" if name == "GROUP_WORLD_SIZE" else env["WORLD_SIZE"])
        if not text.strip().isdigit():
            raise ConfigError(f"the environment variable {name} is {text!r}, not a whole number; start with torchrun")
        values[name] = int(text)
    size, rank, local_rank = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if size < 1 or rank >= size or local_rank >= values["LOCAL_WORLD_SIZE"] or local_rank > rank:
        raise ConfigError(
            f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={size} do not fit together; start with torchrun"
        )
    missing = [name for name in RENDEZVOUS if not env.get(name)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={size} is set but the rendezvous ({' and '.join(missing)}) is not, so the processes "
            "cannot find each other; start them with torchrun (--standalone on one machine; --rdzv-backend "
            "c10d --rdzv-endpoint HOST:PORT on several)"
        )
    return World(rank, size, local_rank, values["LOCAL_WORLD_SIZE"], values["GROUP_WORLD_SIZE"])


# The training call in progress: process-wide, like the process group torch keeps for it (one training
# call per process at a time). State, not a cache; set and cleared by joined().
_world: World | None = None
_control: Any = None  # the gloo group for control messages (the default group itself when it is gloo)
_setup_done = False
_joined_once = False  # this process was one of a run's processes (see leave())


def current() -> World | None:
    """The world of the training call in progress; None in a single process."""
    return _world


def writes() -> bool:
    """Whether this process writes files and shows progress: a single process, or rank 0.

    Read from the environment, so that it holds before and after the process group exists.
    """
    return os.environ.get("RANK", "0").strip() in ("0", "")


def rank_label() -> str:
    """'rank 1: ' for what a process other than rank 0 says; '' for rank 0 or a single process."""
    return "" if writes() else f"rank {os.environ.get('RANK', '').strip()}: "


def speaks(exc: BaseException) -> bool:
    """Whether this process shows `exc`: rank 0 shows everything; another rank only what rank 0 cannot
    know (its own failure outside any agreement), since an agreed stop is told once, by rank 0."""
    return writes() or not (isinstance(exc, PeerStopped) or getattr(exc, "agreed", False))


def _threads(world: World) -> None:
    """The cores of this machine shared among its processes; an explicit OMP_NUM_THREADS wins (torchrun
    sets 1 when it starts several processes and none was given)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    torch.set_num_threads(max(1, len(allowed_cores()) // world.local_size))


def _device(world: World, requested: str) -> str:
    """The backend for --device: NCCL on LOCAL_RANK's GPU, gloo on the CPU."""
    cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not cuda:
        return "gloo"
    if not torch.cuda.is_available():
        return "gloo"  # pick_device refuses --device cuda with its own message
    if world.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK {world.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
            f"start at most {torch.cuda.device_count()} processes per machine (--nproc-per-node)"
        )
    torch.cuda.set_device(world.local_rank)  # "cuda" now means this process's own GPU
    return "nccl"


@contextlib.contextmanager
def joined(requested_device: str = "auto") -> Iterator[World | None]:
    """Join the run's process group for the block (nothing at all without torchrun)."""
    global _world, _control, _setup_done, _joined_once
    world = detect()
    if world is None or _world is not None:  # a single process, or already inside a training call
        yield _world
        return
    backend = _device(world, requested_device)
    _threads(world)
    try:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"the processes could not meet at the rendezvous ({first}); start them with torchrun"
        ) from None
    _world, _setup_done, _joined_once = world, False, True
    _control = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    try:
        yield world
        barrier()  # nobody returns before rank 0 has written the run, and no collective is in flight
    except dist.DistError as exc:  # DDP's all-reduce in backward found a peer gone
        raise PeerStopped(PEER_STOPPED) from exc
    finally:
        _world, _control = None, None
        gc.collect()  # DDP and its reducer, freed while the group they hold still exists
        with contextlib.suppress(RuntimeError, ValueError):
            dist.destroy_process_group()


def leave(code: int | str | None) -> NoReturn:
    """sys.exit(code), but a torchrun process flushes and skips the teardown: once DDP used it, torch keeps
    the gloo group's threads alive past destroy_process_group(), and they can abort a teardown (SIGABRT)."""
    if not _joined_once:
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


@contextlib.contextmanager
def _collective() -> Iterator[None]:
    """A collective that fails because another process died becomes one clear error."""
    try:
        yield
    except (RuntimeError, ValueError) as exc:
        if _world is None:
            raise
        raise PeerStopped(PEER_STOPPED) from exc


def barrier() -> None:
    if _world is not None:
        with _collective():
            dist.barrier(group=_control)


def reduce(values: list[float], op: str = "sum") -> list[float]:
    """Element-wise sum or max of `values` over the processes (`values` itself in a single process)."""
    if _world is None:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    with _collective():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=_control)
    return tensor.tolist()


def gather_bytes(data: torch.Tensor) -> list[torch.Tensor]:
    """Every process's 1-D uint8 tensor, on every process (sizes may differ)."""
    if _world is None:
        return [data]
    size = torch.tensor([data.numel()], dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(_world.size)]
    with _collective():
        dist.all_gather(sizes, size, group=_control)
        longest = max(int(s) for s in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: data.numel()] = data
        parts = [torch.zeros(longest, dtype=torch.uint8) for _ in range(_world.size)]
        dist.all_gather(parts, padded, group=_control)
    return [part[: int(n)] for part, n in zip(parts, sizes, strict=True)]


def gather_text(text: str) -> list[str]:
    """Every process's string, on every process."""
    data = (
        torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)
        if text
        else torch.zeros(0, dtype=torch.uint8)
    )
    return [part.numpy().tobytes().decode("utf-8") for part in gather_bytes(data)]


def from_writer(make: Callable[[], T], to_text: Callable[[T], str], from_text: Callable[[str], T]) -> T:
    """What rank 0 makes, shared with every rank (the tokenizer: built once, the same ids everywhere).

    Also a setup agreement: a failure on any rank stops every rank with its message.
    """
    if _world is None:
        return make()
    made = agree(lambda: to_text(make()) if _world is not None and _world.writer else "")
    return from_text(made[0])


def agree(work: Callable[[], str]) -> list[str]:
    """Run `work` here, then exchange its result (or error) with every rank: all results, or on every
    rank an error that names the first rank that failed. Only for the setup before the first step."""
    try:
        mine = json.dumps({"ok": work()})
    except SeqtextError as exc:
        _tell(exc)
        raise
    return _answers(gather_text(mine))


def setup_done() -> None:
    """The last setup agreement: every rank is ready for the first step."""
    global _setup_done
    if _world is not None and not _setup_done:
        agree(lambda: "")
        _setup_done = True


@contextlib.contextmanager
def setup_agreed() -> Iterator[None]:
    """A failure before setup_done() on one rank is told to the others, which are waiting in their
    next agreement, so they stop too instead of waiting for ever."""
    try:
        yield
    except BaseException as exc:
        if _world is not None and not _setup_done and not getattr(exc, "agreed", False):
            _tell(exc)
        raise


def _tell(exc: BaseException) -> None:
    message = str(exc) if isinstance(exc, SeqtextError) else f"stopped before training started ({type(exc).__name__})"
    exc.agreed = True  # type: ignore[attr-defined]
    with contextlib.suppress(SeqtextError):
        _answers(gather_text(json.dumps({"error": message})), own=exc)


def _answers(replies: list[str], own: BaseException | None = None) -> list[str]:
    decoded = [json.loads(r) for r in replies]
    failed = [(rank, d["error"]) for rank, d in enumerate(decoded) if "error" in d]
    if not failed:
        return [d["ok"] for d in decoded]
    if own is not None:
        return []  # this rank raises its own error
    rank, message = failed[0]
    error = PeerStopped(f"rank {rank}: {message}" if rank else message)
    error.agreed = True  # type: ignore[attr-defined]
    raise error


def relaunch(command: list[str]) -> list[str]:
    """The command that starts this run again: under torchrun, with the same processes per machine."""
    world = detect() if all(name in os.environ for name in (*ENV, *RENDEZVOUS)) else None
    if world is None:
        return command
    module = ["-m", *command] if command[:1] == ["seqtext"] else command
    if world.nodes == 1:
        return ["torchrun", "--standalone", "--nproc-per-node", str(world.local_size), *module]
    return [
        "torchrun",
        "--nnodes",
        str(world.nodes),
        "--nproc-per-node",
        str(world.local_size),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "HOST:PORT",
        *module,
    ]
