"""`seqtext serve`: loaded runs behind an HTTP API (FastAPI + uvicorn) and a static page.

An optional extra: `pip install "seqtext[serve]"`. Importing this package needs neither FastAPI nor
uvicorn, so the CLI can say what to install; `seqtext.serve.app` and `seqtext.serve.server` do.

    from seqtext.serve import ServeConfig, load_runs, run
    run(load_runs(["es=runs/keyboard", "runs/sentiment"]), ServeConfig(port=8000))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqtext.errors import ConfigError
from seqtext.serve.config import ServeConfig

if TYPE_CHECKING:
    from seqtext.serve.hosted import Hosted, load_runs

__all__ = ["Hosted", "ServeConfig", "load_runs", "require_extra", "run", "run_workers"]


def __getattr__(name: str) -> Any:
    """Hosted and load_runs, imported when first used: they import torch, which the CLI's `seqtext --help`
    (reading ServeConfig's defaults) does not need."""
    if name in ("Hosted", "load_runs"):
        from seqtext.serve import hosted

        return getattr(hosted, name)
    raise AttributeError(f"module 'seqtext.serve' has no attribute {name!r}")


def require_extra() -> None:
    """Raise a one-line ConfigError when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "fastapi"
        raise ConfigError(
            f'seqtext serve needs FastAPI and uvicorn ({missing} is missing): pip install "seqtext[serve]"'
        ) from exc


def run(hosted: dict[str, Hosted], config: ServeConfig) -> None:
    """Serve the loaded runs until Ctrl-C or SIGTERM (see seqtext.serve.server)."""
    require_extra()
    from seqtext.serve import server

    server.run(hosted, config)


def run_workers(specs: list[str], config: ServeConfig) -> None:
    """Serve with config.workers processes on one port, each loading the runs (see seqtext.serve.workers)."""
    require_extra()
    from seqtext.serve import workers

    workers.run_workers(specs, config)
