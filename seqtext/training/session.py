"""The training session: a training call's hold on its run directory (the process group under
torchrun, the run's lock: one writer at a time), and the checks before it writes: never overwrite a
run, and resume with the options it started with. A run is a place, not a string: it resumes wherever
it was moved or copied to, and whatever path names it.

A run is finished when its session ends without an error: the steps after training (the 16-bit
weights, the keyboard's n-gram, the phrase memory) run inside it, stopped by Ctrl-C or SIGTERM like
training, and the resume state goes only then, last. Until then --resume continues the run, and a
write that fails (no space, a read-only disk) stops it with one line, resumable.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from seqtext.config import TrainConfig
from seqtext.errors import CheckpointError, ConfigError, NotWritten, TrainingStopped
from seqtext.files import run_lock
from seqtext.limits import VALID_TWICE
from seqtext.runs.reading import COMMAND_FOR_KIND, CONFIG_TYPES
from seqtext.runs.resume import clear_resume_state, saved_run
from seqtext.runtime import free_core_threads
from seqtext.training import distributed
from seqtext.training.stopping import stops_at_once

KIND_NAMES = {"lm": "language-model", "classifier": "classifier"}


@dataclass(frozen=True)
class TrainingSession:
    """A training call's hold on its run directory, from `training_session()`."""

    out: Path
    world: distributed.World | None  # this process's place among the run's processes; None in a single process
    runs: list[Path] = field(default_factory=list)  # the run directories trained in it (an ensemble's members)
    threads: str = ""  # why it trains with fewer threads than torch's default (runtime.free_core_threads); "" if not

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory and reports: a single process, or rank 0."""
        return self.world is None or self.world.writer

    def finishes(self, run: Path) -> None:
        """`run` is trained in this session: it is finished (its resume state removed) when the session ends."""
        self.runs.append(run)

    def finishing(self, what: str) -> contextlib.AbstractContextManager[None]:
        """The block writes what the run promised after training (`what`: "the n-gram"): Ctrl-C or SIGTERM
        stop it at once, resumable (every step there is redone whole by --resume)."""
        return stops_at_once(what)


@contextlib.contextmanager
def training_session(train_config: TrainConfig) -> Iterator[TrainingSession]:
    """Hold train_config.out for a whole training call: a second writer into the same directory is
    refused at once. Every public training function opens one around everything it writes.

    Under torchrun the process joins the run's process group for the session, and only rank 0 (the one
    that writes) takes the lock; a failure before training starts stops every process. A single process
    trains with a thread per core no other process keeps busy (runtime.free_core_threads).
    """
    if train_config.valid is not None and train_config.valid_fraction != TrainConfig.valid_fraction:
        raise ConfigError(VALID_TWICE)  # checked here, not in TrainConfig: runs saved before this rule still load
    with (
        distributed.joined(train_config.device) as world,
        distributed.setup_agreed(),
        free_core_threads() if world is None else contextlib.nullcontext("") as threads,  # torchrun shares cores itself
    ):
        session = TrainingSession(Path(train_config.out), world, threads=threads)
        with run_lock(session.out) if session.writes else contextlib.nullcontext(), _written_or_stopped(session):
            yield session
            if session.writes:
                for run in reversed(session.runs):  # the run itself (an ensemble's member 0) last
                    clear_resume_state(run)


@contextlib.contextmanager
def _written_or_stopped(session: TrainingSession) -> Iterator[None]:
    """A write that failed stops the run with one line naming the file; the run keeps its last good
    checkpoint, resumable when it has a resume state."""
    try:
        yield
    except NotWritten as exc:
        state = session.out / "trainer_state.json"
        kept = "the run keeps its last good checkpoint" if state.is_file() else "nothing was trained yet"
        raise TrainingStopped(f"{exc}; {kept}", step=0, interrupted=False, resumable=state.is_file()) from None


def check_out_dir(out: Path, resume: bool, model_config: Any, train_config: TrainConfig) -> Any:
    """Never overwrite a finished run; on --resume, insist on the options the run started with.

    Returns the saved model config on --resume (None otherwise). Call it holding the run's lock.
    """
    if not resume:
        if (out / "config.json").exists() or (out / "trainer_state.json").exists():
            raise ConfigError(
                f"{out} already holds a run; choose another --out, delete it, or pass --resume "
                "to continue an interrupted run"
            )
        return None
    saved_model, saved_train, sources = saved_run(out)
    if type(saved_model) is not type(model_config):
        kind = next(k for k, cls in CONFIG_TYPES.items() if isinstance(saved_model, cls))
        raise CheckpointError(
            f"{out} holds an interrupted {KIND_NAMES[kind]} run; resume it with: "
            f"{COMMAND_FOR_KIND[kind]} --out {out} --resume"
        )
    for name, saved, given in [
        *_differences(saved_model, model_config, {"vocab_size", "sample_by"}),
        *_differences(saved_train, train_config, {"out", "embeddings_coverage"}),  # the run is where it is now
    ]:
        if name in ("data", "valid", "embeddings") and same_file(given, saved, sources.get(name)):
            continue
        raise ConfigError(
            f"--{name.replace('_', '-')} is {given!r} but the run in {out} was started with {saved!r}; "
            "--resume continues with the original options"
        )
    return saved_model


def _differences(saved: Any, given: Any, ignore: set[str]) -> Iterator[tuple[str, Any, Any]]:
    for f in fields(saved):
        if f.name not in ignore and getattr(saved, f.name) != getattr(given, f.name):
            yield f.name, getattr(saved, f.name), getattr(given, f.name)


def same_file(given: str | None, saved: str | None, source: Any) -> bool:
    """Whether a data path typed on --resume names the data the run started on, however it is spelt.

    The same file, or one with the same bytes, is the same data. When the original is nowhere to be
    found from here (the run and its data were copied to another machine), a file of the recorded
    size is taken for it.
    """
    if given == saved:
        return True
    if given is None or saved is None or not os.path.isfile(given):
        return False
    recorded = source if isinstance(source, dict) else {}
    originals = [p for p in (recorded.get("path"), saved) if isinstance(p, str) and os.path.isfile(p)]
    if originals:
        return any(os.path.samefile(given, p) or filecmp.cmp(given, p, shallow=False) for p in originals)
    return recorded.get("bytes") == os.path.getsize(given)


def sources(train_config: TrainConfig) -> dict[str, dict[str, Any]]:
    """Where the local data files are and their sizes, saved with the resume state so that --resume
    from another directory, or of a copied run, recognises them."""
    named = {"data": train_config.data, "valid": train_config.valid, "embeddings": train_config.embeddings}
    return {
        name: {"path": os.path.abspath(path), "bytes": os.path.getsize(path)}
        for name, path in named.items()
        if path and os.path.isfile(path)
    }
