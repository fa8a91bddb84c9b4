"""Where and how tensors run: device choice, precision, seeding, threads."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from seqtext.errors import ConfigError

DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice for this machine, before anyone sets it
_RANDOM_FILLS = {"normal_", "uniform_", "bernoulli_", "exponential_", "geometric_", "log_normal_", "cauchy_", "random_"}


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU is an error, not a silent fallback."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 matmuls run natively (AVX-512 BF16 / AMX on CPU, Ampere+ on GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(requested: str, device: torch.device) -> str:
    """'auto' → bf16 where the hardware has it (about 2-3× faster LSTM training), else fp32.

    An explicit 'bf16' on hardware without it is refused: oneDNN has no bf16 LSTM kernel there and
    would fail inside the first step.
    """
    if requested == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if requested == "bf16" and not bf16_supported(device):
        what = "this CPU has no native bf16 (AVX-512 BF16 or AMX)" if device.type == "cpu" else "this GPU has no bf16"
        raise ConfigError(f"--precision bf16: {what}; use --precision auto or fp32")
    return requested


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast for the forward pass; weights and optimizer state stay fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory on the device (physical memory for the CPU), None where it cannot be known."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def check_fits(model: torch.nn.Module, device: torch.device) -> None:
    """Refuse to train a model (built on the "meta" device) whose weights, gradients and AdamW moments
    would not fit in the device's memory, before allocating any of it."""
    parameters = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    needed, memory = 16 * parameters, device_memory(device)  # 4 fp32 copies: weights, gradients, 2 moments
    if memory is not None and needed > memory:
        raise ConfigError(
            f"the model would have {parameters:,} parameters: training needs about {needed / 2**30:,.1f} GiB for "
            f"weights, gradients and optimizer state, but this {device.type} has {memory / 2**30:,.1f} GiB. "
            "Lower --embed-dim, --hidden-dim, --layers or --max-vocab"
        )


def seed_everything(seed: int) -> None:
    """Seed Python and torch; data order uses its own generators seeded from the same number."""
    random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op threads, then restore the caller's setting (None: leave it).

    Single-row inference (one keystroke, one sampled token) is too small to share among threads, and a
    parallel region waits for its slowest thread: when another process holds one of the cores, every
    step waits for a time slice of the scheduler (tens of ms at p99). One thread never waits for another.
    """
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def allowed_cores() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU since boot, from /proc/stat: (all ticks, idle and I/O-wait ticks)."""
    ticks = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                counts = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
                ticks[int(name[3:])] = (sum(counts), counts[3] + counts[4])
    return ticks


def busy_cores_elsewhere(window: float = 0.1, read: Callable[[], dict[int, tuple[int, int]]] = _cpu_ticks) -> float:
    """How many of this process's cores other processes keep busy: their busy share over `window` seconds,
    less this process's own CPU time. 0.0 where /proc/stat cannot be read (not Linux)."""
    cores = allowed_cores()
    try:
        before, own = read(), time.process_time()
        time.sleep(window)
        after, own = read(), time.process_time() - own
    except (OSError, ValueError):
        return 0.0
    busy = 0.0
    for cpu in cores & before.keys() & after.keys():
        total, idle = after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1]
        busy += (total - idle) / total if total > 0 else 0.0
    return max(0.0, busy - own / window)


@contextlib.contextmanager
def free_core_threads() -> Iterator[str]:
    """Train the block with one intra-op thread per core that no other process keeps busy (at least one), and
    restore the caller's setting after; yields a line saying so when that is fewer than torch's default
    ("" otherwise). A parallel region waits for its slowest thread, and a thread that shares its core with a
    busy process waits for a time slice at every step: in scripts/demo.sh beside one busy loop on 2 cores, one
    thread trained the character LSTM 2.4× and the classifier 25-37× faster than two (docs/benchmarks.md).
    OMP_NUM_THREADS, or a thread count the caller set (torch.set_num_threads), wins. Measured once, as the
    block starts."""
    cores = len(allowed_cores())
    if os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads() != DEFAULT_THREADS or DEFAULT_THREADS < 2:
        yield ""
        return
    busy = busy_cores_elsewhere()
    threads = max(1, min(DEFAULT_THREADS, int(cores - busy + 0.5)))
    if threads == DEFAULT_THREADS:
        yield ""
        return
    with intra_op_threads(threads):
        yield (
            f"{threads} thread{'s' if threads > 1 else ''} of {DEFAULT_THREADS}: other processes keep {busy:.1f} of "
            f"the {cores} cores busy (OMP_NUM_THREADS=N sets them)"
        )


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Switch off dropout for the block, then restore the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class UninitialisedOnMeta(TorchFunctionMode):
    """The random fills of weights on the "meta" device skipped (with torch.device("meta"), UninitialisedOnMeta():
    build a module). Meta tensors hold no values, and torch runs their random fills through Python reference
    code whose first call imports torch._dynamo: about 2 CPU-seconds, once more than all of loading a run."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        tensor = args[0] if args else kwargs.get("tensor")  # Tensor.normal_(…), or nn.init.normal_(tensor=…)
        if getattr(func, "__name__", None) in _RANDOM_FILLS and getattr(tensor, "is_meta", False):
            return tensor  # filled in place: the tensor itself
        return func(*args, **kwargs)
