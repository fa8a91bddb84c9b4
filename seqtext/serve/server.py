"""Run the app with uvicorn: bind, log to stderr, stop cleanly on Ctrl-C or SIGTERM.

On a stop signal uvicorn stops accepting connections, lets the requests in flight finish (streams
included, for up to GRACE_SECONDS), and then the model threads end; the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import signal
import socket
import threading
from typing import Any

from seqtext.errors import ConfigError
from seqtext.serve.config import ServeConfig
from seqtext.serve.hosted import Hosted, describe_all

log = logging.getLogger("seqtext.serve")
GRACE_SECONDS = 30  # the longest a stop waits for requests in flight before cancelling them
KEEP_ALIVE_SECONDS = 5  # a connection idle after an answer is closed then (uvicorn's default, stated here)
FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class _Stopped(Exception):
    """A stop signal arrived before uvicorn handled signals, or uvicorn re-raised it after stopping."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped


def log_config(access_log: bool) -> dict[str, Any]:
    """Everything on stderr, one format; uvicorn's access lines say who asked what and the status."""
    stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    access_format = '%(asctime)s %(levelname)-7s %(client_addr)s "%(request_line)s" %(status_code)s'
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": FORMAT},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": access_format, "use_colors": False},
        },
        "handlers": {"plain": {**stderr, "formatter": "plain"}, "access": {**stderr, "formatter": "access"}},
        "loggers": {
            "uvicorn": {"handlers": ["plain"], "level": "INFO", "propagate": False},
            "uvicorn.access": {
                "handlers": ["access"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            "seqtext.serve": {"handlers": ["plain"], "level": "INFO", "propagate": False},
        },
    }


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), or a ConfigError that says what to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    if os.name != "nt":  # restart at once on the same port; on Windows this flag would allow port stealing
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port (0 picks a free one)"
        ) from exc
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def warnings(config: ServeConfig) -> list[str]:
    """What a server reachable from other machines should know before it starts."""
    if config.loopback:
        return []
    if config.api_key is None:
        return [
            f"listening on {config.host} without --api-key: anyone who can reach this machine can use the "
            "models; give --api-key KEY, or keep the default --host 127.0.0.1"
        ]
    return ["the API key travels in plain HTTP: on an untrusted network, put a TLS proxy in front of the server"]


def run(hosted: dict[str, Hosted], config: ServeConfig) -> None:
    """Serve until Ctrl-C or SIGTERM; returns after a clean stop. The model threads end with it."""
    logging.config.dictConfig(log_config(config.access_log))
    try:
        with contextlib.closing(bind(config.host, config.port)) as sock:
            url = url_of(sock)
            log.info("listening on %s  (the page: %s · API docs: %sdocs)", url, url, url)
            for line in warnings(config):
                log.warning(line)
            serve_on(hosted, config, sock)
    finally:
        for model in hosted.values():
            model.shutdown()
    log.info("stopped")


def serve_on(hosted: dict[str, Hosted], config: ServeConfig, sock: socket.socket) -> None:
    """Serve the runs on a bound socket until a stop signal (a single server, or one of --workers)."""
    import uvicorn

    from seqtext.serve.app import create_app
    from seqtext.serve.guards import bounded_protocol

    settings = log_config(config.access_log)
    logging.config.dictConfig(settings)
    app = create_app(hosted, config)
    log.info("serving %s", describe_all(hosted))
    options = {"log_config": settings, "access_log": config.access_log, "server_header": False}
    protocol = bounded_protocol(config.max_connections, config.read_timeout)  # what uvicorn lacks
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=protocol,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACE_SECONDS,
            **options,
        )
    )
    _until_stopped(server, sock)


def _until_stopped(server: Any, sock: socket.socket) -> None:
    """Run uvicorn; a stop signal, which it handles and then raises again, ends this quietly."""
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        server.run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
