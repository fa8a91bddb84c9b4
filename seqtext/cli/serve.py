"""`seqtext serve`: the HTTP API and the page, over runs loaded once at start-up."""

from __future__ import annotations

from typing import Annotated

import typer

from seqtext.cli.common import config_from, friendly_errors
from seqtext.config import Device
from seqtext.serve.config import ServeConfig as S  # the options' defaults


@friendly_errors
def serve_cmd(
    ctx: typer.Context,
    runs: Annotated[
        list[str], typer.Argument(help="Run directories to serve, each as RUN (named after its directory) or NAME=RUN")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on; the default is this machine only")] = S.host,
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one")] = S.port,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SEQTEXT_API_KEY", help="Require 'Authorization: Bearer KEY' on every /v1/ request"),
    ] = S.api_key,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 over it)")] = S.max_body_bytes,
    max_text_chars: Annotated[
        int, typer.Option(help="Longest text, prompt or classified text (413 over it)")
    ] = S.max_text_chars,
    max_texts: Annotated[int, typer.Option(help="Most texts in one /v1/classify request (413 over it)")] = S.max_texts,
    max_new_tokens: Annotated[
        int, typer.Option(help="Cap on /v1/generate's max_new_tokens (422 over it)")
    ] = S.max_new_tokens,
    max_k: Annotated[int, typer.Option(help="Most suggestions one /v1/complete request may ask for")] = S.max_k,
    max_connections: Annotated[
        int, typer.Option(help="Open connections at most; one more is answered 503 at once")
    ] = S.max_connections,
    read_timeout: Annotated[
        float, typer.Option(help="Seconds a request may take to arrive whole; slower or idle ones get 408")
    ] = S.read_timeout,
    device: Annotated[Device, typer.Option(help="Where the models run")] = S.device,
    access_log: Annotated[bool, typer.Option(help="Log one line per request on stderr")] = S.access_log,
    workers: Annotated[
        int, typer.Option(help="Server processes on the one port, each with its own copy of the models")
    ] = S.workers,
    user_data: Annotated[
        str | None,
        typer.Option(help="Personal data the keyboards learn into (POST /v1/learn) and suggest from; off without it"),
    ] = S.user_data,
) -> None:
    """Serve language models and classifiers over HTTP, with a page for the keyboard, generation and sentiment."""
    import seqtext.serve as serve

    config = config_from(S, ctx.params)
    serve.require_extra()  # before loading anything: say what to install at once
    if config.workers > 1:
        serve.run_workers(runs, config)
    else:
        serve.run(serve.load_runs(runs, config.device, config.user_data), config)
