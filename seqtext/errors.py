"""Errors a user can fix. The CLI prints them as one line without a traceback (stdlib only)."""


class SeqtextError(Exception):
    """Base class for errors a user can fix; the message says what is wrong and what to do."""


class ConfigError(SeqtextError, ValueError):
    """An option or configuration value is invalid."""


class CorpusError(SeqtextError, ValueError):
    """A data file is missing, unreadable, empty or too small."""


class CheckpointError(SeqtextError, FileNotFoundError):
    """A run directory is missing, incomplete, of the wrong kind or from a newer format."""


class TrainingStopped(SeqtextError):
    """Training stopped early; the last good checkpoint is kept on disk."""

    def __init__(self, message: str, *, step: int, interrupted: bool) -> None:
        super().__init__(message)
        self.step = step
        self.interrupted = interrupted  # True for Ctrl-C (exit 130), False for a diverged loss
