"""`seqtext serve --workers N`: N server processes answering on one port, each with its own copy of the models.

The parent binds the socket and starts N processes (`python -m seqtext.serve.workers`), each handed
the listening socket and the configuration as JSON (nothing pickled); the kernel gives each new
connection to one of them. Each worker loads the runs and serves as a single server does, so every
worker holds the models and its own state caches: a typist whose connections land on different
workers gets the same answers (a cache is only a cache), and memory grows by one copy of the models
and of Python and torch per worker. Ctrl-C or SIGTERM stops every worker cleanly; a worker that
fails to start stops the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import logging.config
import os
import signal
import subprocess
import sys
from typing import Any

from seqtext.errors import ConfigError
from seqtext.serve.config import ServeConfig

log = logging.getLogger("seqtext.serve")
STOP_SECONDS = 40  # a worker's graceful stop (server.GRACE_SECONDS) and some


def run_workers(specs: list[str], config: ServeConfig) -> None:
    """Serve with config.workers processes on one socket until Ctrl-C or SIGTERM; raises when a worker fails."""
    from seqtext.serve.server import bind, log_config, url_of, warnings

    logging.config.dictConfig(log_config(config.access_log))
    with contextlib.closing(bind(config.host, config.port)) as sock:
        url = url_of(sock)
        log.info("starting %d workers, each with its own copy of the models", config.workers)
        log.info("listening on %s  (the page: %s · API docs: %sdocs)", url, url, url)
        for line in warnings(config):
            log.warning(line)
        threads = max(1, (os.cpu_count() or 1) // config.workers)  # the cores shared out, not oversubscribed
        workers, errors = [], []
        for _ in range(config.workers):
            read_end, write_end = os.pipe()  # where a worker that cannot start says why, in one line
            settings = {"runs": specs, "config": dataclasses.asdict(config), "fd": sock.fileno(), "error_fd": write_end}
            env = {**os.environ, "SEQTEXT_WORKER": json.dumps(settings), "OMP_NUM_THREADS": str(threads)}
            command = [sys.executable, "-m", "seqtext.serve.workers"]
            workers.append(subprocess.Popen(command, env=env, pass_fds=[sock.fileno(), write_end]))
            os.close(write_end)
            errors.append(read_end)
        try:
            _supervise(workers)
        except _WorkerFailed as failed:
            index = workers.index(failed.worker)
            message = os.read(errors[index], 4096).decode("utf-8", "replace").strip()
            raise ConfigError(message or f"a worker stopped with exit code {failed.worker.returncode}") from None
        finally:
            for fd in errors:
                os.close(fd)
        log.info("stopped")


class _WorkerFailed(Exception):
    def __init__(self, worker: subprocess.Popen) -> None:
        self.worker = worker


def _supervise(workers: list[subprocess.Popen]) -> None:
    """Wait for a stop signal or a worker's end; then stop them all. A worker that failed is an error."""
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed = None
        while failed is None and not stopping:
            for worker in workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if worker.wait(0.2) != 0 and not stopping:
                        failed = worker
        stop(signal.SIGTERM, None)
        for worker in workers:
            try:
                worker.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        raise _WorkerFailed(failed)


def _worker() -> int:
    """One worker: load the runs, serve on the inherited socket until told to stop."""
    import socket

    from seqtext.errors import SeqtextError
    from seqtext.serve.hosted import load_runs
    from seqtext.serve.server import serve_on

    settings = json.loads(os.environ["SEQTEXT_WORKER"])
    sock = socket.socket(fileno=settings["fd"])
    config = ServeConfig(**{**settings["config"], "workers": 1})
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        serve_on(load_runs(settings["runs"], config.device, config.user_data), config, sock)
    except SeqtextError as exc:
        os.write(settings["error_fd"], str(exc).encode("utf-8"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
