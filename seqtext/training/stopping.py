"""Stopping training between steps: Ctrl-C (SIGINT) or SIGTERM sets a flag that the loop checks, so a
step is never cut in half and the loop saves before it stops."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from seqtext.errors import TrainingStopped
from seqtext.training import distributed

STOP_SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
REPEAT_SECONDS = 2.0


class StopFlag(threading.Event):
    """Set when a stop is asked for; `signum` says which signal asked (None when set by code)."""

    signum: int | None = None
    at: float = 0.0  # when it was set (time.monotonic)


@contextmanager
def stop_flag() -> Iterator[StopFlag]:
    """Ctrl-C (SIGINT) or SIGTERM (kill, systemd, Slurm, Kubernetes) sets a flag checked between steps,
    so a step is never cut in half and the loop saves before it stops; a second signal aborts at once."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        # Under torchrun, Ctrl-C reaches each process twice at once (the terminal's, then torchrun's
        # forwarded copy): only a second signal a moment later means "abort now".
        if flag.is_set() and (distributed.current() is None or time.monotonic() - flag.at > REPEAT_SECONDS):
            raise KeyboardInterrupt
        if not flag.is_set():
            flag.signum, flag.at = signum, time.monotonic()
            flag.set()

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _StopNow(KeyboardInterrupt):
    """A stop signal during stops_at_once (a KeyboardInterrupt, so that no `except Exception` keeps it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def stops_at_once(what: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM during the block stop it at once with a resumable TrainingStopped: for work that
    --resume redoes whole (the steps after training), whose every write is atomic, so nothing is half
    written and no step needs to wait for its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _StopNow(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt as exc:  # ours, or Python's own Ctrl-C when another handler was in place
        signum = getattr(exc, "signum", signal.SIGINT)
        raise TrainingStopped(
            f"{STOP_SIGNALS.get(signum, 'stopped')} while writing {what}", step=0, interrupted=True, signum=signum
        ) from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
