"""ServeConfig: where `seqtext serve` listens and how much one request may ask for (stdlib only: the CLI
reads its defaults)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import get_args

from seqtext.config import Device
from seqtext.errors import ConfigError
from seqtext.schema import MAX_INT, check_finite

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MAX_READ_TIMEOUT = 3_600  # an hour: a client slower than that holds a connection for nothing


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """One field per `seqtext serve` flag of the same name. Every request is bounded by these."""

    host: str = "127.0.0.1"  # loopback by default: nothing outside this machine can reach it
    port: int = 8000  # 0 picks a free port (the log line says which)
    api_key: str | None = None  # when set, every /v1/ request needs `Authorization: Bearer KEY`
    max_body_bytes: int = 1_000_000  # larger request bodies are refused with 413 before they are read
    max_text_chars: int = 10_000  # a text, a prompt or a classified text longer than this: 413
    max_texts: int = 256  # texts per /v1/classify request
    max_new_tokens: int = 1_000  # the cap on /v1/generate's max_new_tokens (over it: 422)
    max_k: int = 20  # the most suggestions /v1/complete returns
    max_connections: int = 64  # open connections at most; one more is answered 503 and closed at once
    read_timeout: float = 10.0  # seconds for a request to arrive whole (headers, then body), else 408 and closed
    device: Device = "cpu"
    access_log: bool = True  # one line per request on stderr
    workers: int = 1  # server processes on the one port, each with its own copy of the models
    user_data: str | None = None  # the keyboard's personal data: POST /v1/learn adds to it, suggestions use it

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ConfigError(f"--port must be in 0..65535 (got {self.port}); 0 picks a free port")
        for flag, value in (
            ("--max-body-bytes", self.max_body_bytes),
            ("--max-text-chars", self.max_text_chars),
            ("--max-texts", self.max_texts),
            ("--max-new-tokens", self.max_new_tokens),
            ("--max-k", self.max_k),
            ("--workers", self.workers),
            ("--max-connections", self.max_connections),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
                raise ConfigError(f"{flag} must be a whole number from 1 to 2^63 - 1 (got {value})")
        check_finite("--read-timeout", self.read_timeout)
        if not 0 < self.read_timeout <= MAX_READ_TIMEOUT:
            raise ConfigError(
                f"--read-timeout must be above 0 and at most {MAX_READ_TIMEOUT:,} s (got {self.read_timeout})"
            )
        key = self.api_key
        if key is not None and (not key or not key.isprintable() or any(c.isspace() for c in key)):
            raise ConfigError("--api-key must be non-empty printable text without spaces")
        if self.device not in get_args(Device):
            raise ConfigError(f"--device must be one of {', '.join(get_args(Device))} (got {self.device!r})")

    @property
    def loopback(self) -> bool:
        """True when only this machine can connect (the default): no key needed, Host headers are checked."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost may resolve anywhere
            return False
