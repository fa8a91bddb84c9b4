"""A real `seqtext serve` in a subprocess on a free local port, always stopped, and a headless Chromium to
open its page: for the tests, bench_serve.py and bench_page.py.

Use: `with serving(["es=runs/keyboard"], "--no-access-log") as server: httpx.get(server.url + "health")`.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"listening on (http://\S+/)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's: playwright never downloads a browser
# Without these flags chromium reaches for the network (closed here) and stalls at start.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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


@contextlib.contextmanager
def chromium_page(profile: Path) -> Iterator:
    """A page in a fresh headless chromium (playwright) with an empty profile folder, closed however it ends."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),  # a new, empty --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 820},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)  # a busy machine, not a speed limit
            yield page
        finally:
            context.close()


def type_keystroke_by_keystroke(page, sentence: str, where: str) -> list[list[tuple[str, float]]]:
    """Type `sentence` into the page one key at a time, with suggestions from `where` ("server" or "page");
    after each key, wait for the suggestions that answer the text so far; return them (word, probability)."""
    from playwright.sync_api import expect

    page.locator(f'#keyboard-where input[value="{where}"]').check()
    text, bar = page.locator("#text"), page.locator("#suggestions")
    text.fill("")
    text.focus()
    seen = []
    for n in range(1, len(sentence) + 1):
        page.keyboard.type(sentence[n - 1])
        # the first key in the page waits for the model to load: long on a busy machine, no speed limit
        expect(bar).to_have_attribute("data-for", sentence[:n], timeout=120_000)
        expect(bar).to_have_attribute("data-from", where)
        pairs = bar.locator("button").evaluate_all("bs => bs.map((b) => [b.dataset.word, Number(b.dataset.prob)])")
        seen.append([(word, prob) for word, prob in pairs])
    return seen


def in_page_latency(page) -> dict:
    """The page's own figures for the keyboard in the page: its kernel, keystrokes, p50 / p99 / max ms."""
    latencies = sorted(page.evaluate("inPageLatencies"))

    def at(q: float) -> float:  # as the page computes its figures
        return latencies[min(len(latencies) - 1, math.ceil(q * len(latencies)) - 1)]

    keyboard = "readyKeyboards.values().next().value"
    return {
        "kernel": page.evaluate(f"{keyboard}.reader.network.kernel.name"),
        "load_s": round(page.evaluate(f"{keyboard}.loadSeconds"), 2),
        "keystrokes": len(latencies),
        "p50_ms": round(at(0.5), 3),
        "p99_ms": round(at(0.99), 3),
        "max_ms": round(latencies[-1], 3),
    }
