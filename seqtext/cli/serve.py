"""`seqtext serve`: the HTTP API and the page, over runs loaded once at start-up."""

from __future__ import annotations

from typing import Annotated

import typer

from seqtext.cli import Device, app, friendly_errors


@app.command("serve")
@friendly_errors
def serve_cmd(
    runs: Annotated[
        list[str], typer.Argument(help="Run directories to serve, each as RUN (named after its directory) or NAME=RUN")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on; the default is this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="SEQTEXT_API_KEY", help="Require 'Authorization: Bearer KEY' on every /v1/ request"),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (413 over it)")] = 1_000_000,
    max_text_chars: Annotated[int, typer.Option(help="Longest text, prompt or classified text (413 over it)")] = 10_000,
    max_texts: Annotated[int, typer.Option(help="Most texts in one /v1/classify request (413 over it)")] = 256,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on /v1/generate's max_new_tokens (422 over it)")] = 1_000,
    max_k: Annotated[int, typer.Option(help="Most suggestions one /v1/complete request may ask for")] = 20,
    device: Annotated[Device, typer.Option(help="Where the models run")] = Device.cpu,
    access_log: Annotated[bool, typer.Option(help="Log one line per request on stderr")] = True,
    workers: Annotated[
        int, typer.Option(help="Server processes on the one port, each with its own copy of the models")
    ] = 1,
) -> None:
    """Serve language models and classifiers over HTTP, with a page for the keyboard, generation and sentiment."""
    import seqtext.serve as serve

    config = serve.ServeConfig(
        host=host,
        port=port,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        max_text_chars=max_text_chars,
        max_texts=max_texts,
        max_new_tokens=max_new_tokens,
        max_k=max_k,
        device=device.value,
        access_log=access_log,
        workers=workers,
    )
    serve.require_extra()  # before loading anything: say what to install at once
    if config.workers > 1:
        serve.run_workers(runs, config)
    else:
        serve.run(serve.load_runs(runs, config.device), config)
