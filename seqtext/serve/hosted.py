"""The runs a server holds: each loaded once at start-up, by name, with its own model thread.

Nothing a request sends can name a file: requests name a model, and only the runs given on the
command line have names.

Every call into a model runs on that model's single worker thread, so the event loop never waits
for torch, one model is never used by two threads at once (the Completer's state cache is not
thread-safe), and work on two models runs side by side. A long generation is cut into short jobs
on that thread, so keystrokes on the same model are answered between its tokens.

Keystrokes are batched: those that arrive while the model thread is busy wait together, and the
next job on that thread answers all of them (up to MAX_KEYSTROKES) with one batched model step
(Completer.suggest_many). Nothing waits for a batch to fill: an idle server answers a lone
keystroke at once, and under load a keystroke waits for at most the job in progress and its own
batch. Generation tokens and classify batches are jobs on the same queue, in arrival order, so
neither starves the other.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import threading
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import seqtext
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.personal import SAVE_DELAY
from seqtext.keyboard.words import Completion
from seqtext.runs.loading import Loaded
from seqtext.runtime import pick_device

T = TypeVar("T")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
KINDS = {"lm": "language model", "classifier": "classifier"}
COMPLETION_CACHE = 256  # texts whose RNN state is kept: ~5 per typist for 50 typists (word level, 20k vocab: ~20 MB)
MAX_KEYSTROKES = 64  # keystrokes answered by one batched step at most (bounds the wait of the last one)


@dataclass
class Hosted:
    """A loaded run behind a name, with the one thread that runs it."""

    name: str
    loaded: Loaded
    completer: Completer | None = None  # language models: the engine of `seqtext complete`, shared by all typists
    completer_error: str | None = None  # why a language model cannot complete (no words in its vocabulary)
    thread: ThreadPoolExecutor = field(init=False)
    _keystrokes: list[tuple[str, int, asyncio.Future]] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")

    @property
    def kind(self) -> str:
        return self.loaded.kind

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models says about this model."""
        config = self.loaded.config
        info: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "level": config.level,
            "cell": config.cell,
            "vocab_size": config.vocab_size,
        }
        if self.kind == "classifier":
            info["labels"] = list(config.labels)
        else:
            info["can_complete"] = self.completer is not None
        return info

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on this model's thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, functools.partial(fn, *args))

    async def suggest(self, text: str, k: int) -> list[Completion]:
        """Suggestions for one keystroke, answered in a batch with those waiting beside it."""
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            self._keystrokes.append((text, k, future))
            first = len(self._keystrokes) == 1
        if first:  # no batch job is queued yet: queue one; later keystrokes join it until it starts
            self.thread.submit(self._answer_keystrokes)
        return await future

    def _answer_keystrokes(self) -> None:
        """On the model thread: answer the waiting keystrokes (up to MAX_KEYSTROKES) with one batched step."""
        with self._lock:
            batch, self._keystrokes = self._keystrokes[:MAX_KEYSTROKES], self._keystrokes[MAX_KEYSTROKES:]
            if self._keystrokes:  # more than one batch waits: the rest queue behind the jobs already waiting
                self.thread.submit(self._answer_keystrokes)
        assert self.completer is not None
        requests = [(text, k) for text, k, _ in batch]
        try:
            answers: list[Any] = self.completer.suggest_many(requests)
        except Exception:  # a text the model cannot read fails its own request, not its neighbours'
            answers = [_outcome(self.completer.suggest, text, k) for text, k in requests]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for (_, _, future), answer in zip(batch, answers, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, answer))
        for loop, settled in by_loop.items():  # one wake-up of the event loop per batch, not per keystroke
            loop.call_soon_threadsafe(_settle, settled)

    def close_later(self, pieces: Generator[Any, None, None]) -> None:
        """Close a generation on the model thread, after the step it may be running (a client left)."""
        self.thread.submit(pieces.close)

    def shutdown(self) -> None:
        """Finish the model's work, then write what its keyboard learned in the last SAVE_DELAY seconds."""
        self.thread.shutdown(wait=True, cancel_futures=True)
        if self.completer is not None:
            self.completer.save()


def _outcome(fn: Callable[..., T], *args: Any) -> T | BaseException:
    """fn(*args), or the exception it raised."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def _settle(settled: list[tuple[asyncio.Future, Any]]) -> None:
    """On the event loop: hand each keystroke its answer (unless its client has gone)."""
    for future, answer in settled:
        if future.done():
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


def parse_run(spec: str) -> tuple[str, Path]:
    """'NAME=RUN' or 'RUN' (named after its directory) → (name, path)."""
    name, sep, path = spec.partition("=")
    if not sep or Path(spec).is_dir():  # a directory whose own name has '=' in it is still a run
        name, path = Path(os.path.abspath(spec)).name, spec  # not resolve(): a loop of links is load()'s to name
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"model name {name!r} (from {spec!r}) must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit; name it with NAME=RUN"
        )
    return name, Path(path)


def load_runs(specs: list[str], device: str = "cpu", user_data: str | Path | None = None) -> dict[str, Hosted]:
    """Load every run once; a bad run or a repeated name is a SeqtextError naming it. With `user_data`
    the keyboards learn into that file (POST /v1/learn) and mix what it holds into their suggestions."""
    if not specs:
        raise ConfigError("give at least one run directory to serve")
    where = pick_device(device)
    hosted: dict[str, Hosted] = {}
    for spec in specs:
        name, path = parse_run(spec)
        if name in hosted:
            raise ConfigError(f"two runs are named {name!r}; name them apart with NAME=RUN")
        loaded = seqtext.load(path, device=where)
        model = Hosted(name, loaded)
        if loaded.kind == "lm":
            try:
                # fp32: the server batches many typists' keystrokes, and a batch reads the weights once
                model.completer = Completer(
                    loaded, cache_size=COMPLETION_CACHE, int8=False, user_data=user_data, save_delay=SAVE_DELAY
                )
            except CheckpointError as exc:  # it can still generate
                model.completer_error = str(exc)
            else:
                model.completer.personal.check_writable()  # before serving, not at the first line learned
        hosted[name] = model
    return hosted


def describe_all(hosted: dict[str, Hosted]) -> str:
    """'es (word lstm language model), sentiment (word lstm classifier)' for the start-up log."""
    return ", ".join(
        f"{h.name} ({h.loaded.config.level} {h.loaded.config.cell} {KINDS[h.kind]})" for h in hosted.values()
    )
