"""Errors a user can fix. The CLI prints them as one line without a traceback (stdlib only)."""

from __future__ import annotations

import signal


class SeqtextError(Exception):
    """Base class for errors a user can fix; the message says what is wrong and what to do."""


class ConfigError(SeqtextError, ValueError):
    """An option or configuration value is invalid.

    `field` names the configuration field at fault and `problem` says what is wrong with it, so a
    loader can name the field in its own words ("config.json: field model.hidden_dim must be ...").
    """

    def __init__(self, message: str, *, field: str | None = None, problem: str | None = None) -> None:
        super().__init__(message)
        self.field, self.problem = field, problem


class CorpusError(SeqtextError, ValueError):
    """A data file is missing, unreadable, empty, not text, or too small."""


class CheckpointError(SeqtextError, FileNotFoundError):
    """A run directory is missing, incomplete, damaged, of the wrong kind, in use, or from a newer format."""


class NotWritten(SeqtextError):
    """A file could not be written (no space, a read-only disk, an I/O error, no permission); what the
    file held before is intact. The message names the file and the reason."""


class TrainingStopped(SeqtextError):
    """Training stopped early; the last good checkpoint is kept on disk.

    `signum` is the signal that asked for the stop (SIGINT for Ctrl-C, SIGTERM from kill, systemd,
    Slurm or Kubernetes); the CLI exits with 128 + signum, the shell's convention (130, 143).
    `resumable` says whether `--resume` continues the run (after a signal or a failed write; not after a
    diverged loss, which would diverge again).
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        interrupted: bool,
        signum: int | None = None,
        resumable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.interrupted = interrupted  # True for a signal, False for a diverged loss or a failed write
        self.signum = signum if signum is not None else (signal.SIGINT if interrupted else None)
        self.resumable = interrupted if resumable is None else resumable
