"""A real `seqtext serve` in a subprocess on a free local port, always stopped: for the tests and bench_serve.py.

Use: `with serving(["es=runs/keyboard"], "--no-access-log") as server: httpx.get(server.url + "health")`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"listening on (http://\S+/)")
READY = "Application startup complete"


@dataclass
class Server:
    """A running server: its URL, its process, and every line it has written to stderr so far."""

    url: str
    process: subprocess.Popen
    log: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return "".join(self.log)


@contextlib.contextmanager
def serving(runs: list[str | Path], *flags: str, timeout: float = 180.0, env: dict | None = None) -> Iterator[Server]:
    """Start `python -m seqtext serve RUNS --port 0 FLAGS`, wait until it serves, stop it on exit (even on failure)."""
    command = [sys.executable, "-m", "seqtext", "serve", *map(str, runs), "--port", "0", *flags]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            log.append(line)
            if READY in line:
                ready.set()
        ready.set()  # the process ended: stop waiting

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"seqtext serve did not start within {timeout:.0f} s:\n{''.join(log)}")
        found = [m.group(1) for line in log if (m := LISTENING.search(line))]
        if process.poll() is not None or not found:
            raise RuntimeError(f"seqtext serve exited with {process.wait()}:\n{''.join(log)}")
        yield Server(found[0], process, log)
    finally:
        stop(process)
        reader.join(timeout=10)


def stop(process: subprocess.Popen, grace: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if it has not ended within `grace` seconds; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
