"""The FastAPI app: the page at /, the API under /v1/, /health, and the OpenAPI page at /docs.

Every model call runs on the model's own thread (see hosted.py); the event loop only parses,
checks and writes. Requests are bounded by the ServeConfig: body size, text length, batch size,
suggestions and tokens.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import seqtext
from seqtext.errors import SeqtextError
from seqtext.keyboard.words import WORD
from seqtext.serve import schemas
from seqtext.serve.config import ServeConfig
from seqtext.serve.guards import ApiError, Guard, check_key, install_error_handlers, log
from seqtext.serve.hosted import KINDS, Hosted
from seqtext.serve.inpage import add_export_files
from seqtext.serve.keystrokes import Keystrokes
from seqtext.serve.page import OFFLINE_DOCS, add_page

STREAM_STEP, TEXT_STEP = 1, 32  # tokens per job on the model thread: streams flow token by token
BEARER = HTTPBearer(auto_error=False, description="The key given to `seqtext serve --api-key`")
ERRORS = {status: {"model": schemas.ErrorResponse} for status in (400, 401, 404, 409, 413, 422, 503)}


def create_app(hosted: dict[str, Hosted], config: ServeConfig | None = None) -> FastAPI:
    """The app serving these loaded runs, bounded by `config`."""
    config = config or ServeConfig()
    app = FastAPI(
        title="seqtext",
        version=seqtext.__version__,
        description="Keyboard suggestions, text generation and sentiment from recurrent models trained with seqtext.",
        docs_url=None if OFFLINE_DOCS else "/docs",  # with Swagger UI's files at hand, /docs serves them itself
        redoc_url=None,
    )
    app.state.hosted, app.state.config = hosted, config
    install_error_handlers(app)
    limits = Limits(config)
    # Guard first, then the keystroke's short way (keystrokes.py), then FastAPI's routes
    app.add_middleware(Keystrokes, hosted=hosted, config=config, pick=pick, limits=limits)
    app.add_middleware(Guard, max_body_bytes=config.max_body_bytes, loopback=config.loopback)

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        check_key(config.api_key, credentials and f"{credentials.scheme} {credentials.credentials}")

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses=ERRORS)

    @app.get("/health", response_model=schemas.Health, tags=["server"])
    async def health() -> dict:
        """Always open (no key): the server is up and holds this many models."""
        return {"status": "ok", "version": seqtext.__version__, "models": len(hosted)}

    @api.get("/models", response_model=schemas.ModelsResponse, response_model_exclude_none=True, tags=["server"])
    async def models() -> dict:
        """The models this server holds: name, kind, tokenizer level, cell, vocabulary size."""
        return {"models": [h.describe() for h in hosted.values()]}

    @api.post("/complete", response_model=schemas.CompleteResponse, tags=["keyboard"])
    async def complete(body: schemas.CompleteRequest) -> dict:
        """Whole-word suggestions for the word at the end of `text` (the engine of `seqtext complete`)."""
        model = pick(hosted, body.model, "lm", "/v1/complete")
        limits.text("text", body.text)
        limits.cap("k", body.k, config.max_k, "--max-k")
        if model.completer is None:
            raise ApiError(409, "wrong_kind", f"model {model.name!r} cannot complete: {model.completer_error}")
        found = await model.suggest(body.text, body.k)
        return {"model": model.name, "suggestions": [{"word": s.word, "prob": s.prob} for s in found]}

    @api.post("/learn", response_model=schemas.LearnResponse, tags=["keyboard"])
    async def learn(body: schemas.LearnRequest) -> dict:
        """Learn finished text into the keyboard's personal data (a server started with --user-data):
        its words are suggested from then on, and written to the file within a second."""
        model = pick(hosted, body.model, "lm", "/v1/learn")
        limits.text("text", body.text)
        if model.completer is None:
            raise ApiError(409, "wrong_kind", f"model {model.name!r} cannot complete: {model.completer_error}")
        if model.completer.personal.file is None:
            raise ApiError(409, "not_learning", "this server does not learn: start it with --user-data FILE")
        try:
            await model.run(model.completer.learn, body.text)
        except SeqtextError as exc:  # the file could not be written: the server's problem, not the request's
            log.error("/v1/learn: %s", exc)
            raise ApiError(
                503,
                "not_saved",
                "what was learned could not be written (the server log says why); it is kept "
                "in memory and written with the next text learned",
            ) from None
        return {"model": model.name, "words": len(WORD.findall(body.text))}

    @api.post(
        "/generate",
        response_model=schemas.GenerateResponse,
        tags=["generation"],
        responses={200: {"content": {"text/event-stream": {}}, "description": "JSON, or events when stream is true"}},
    )
    async def generate(body: schemas.GenerateRequest) -> Response | dict:
        """Continue `prompt`; with `stream`, server-sent events as the tokens are sampled."""
        model = pick(hosted, body.model, "lm", "/v1/generate")
        limits.text("prompt", body.prompt)
        limits.cap("max_new_tokens", body.max_new_tokens, config.max_new_tokens, "--max-new-tokens")
        pieces = seqtext.generate_stream(
            model.loaded,
            body.prompt,
            max_new_tokens=body.max_new_tokens,
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p,
            seed=body.seed,
        )
        if body.stream:
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(events(model, pieces), media_type="text/event-stream", headers=headers)
        try:
            text: list[str] = []
            while batch := await model.run(take, pieces, TEXT_STEP):
                text += batch
        finally:
            model.close_later(pieces)
        return {"model": model.name, "text": "".join(text), "tokens": len(text)}

    @api.post("/classify", response_model=schemas.ClassifyResponse, tags=["sentiment"])
    async def classify(body: schemas.ClassifyRequest) -> dict:
        """Label, label name and the probability of every label, for each text, in order."""
        model = pick(hosted, body.model, "classifier", "/v1/classify")
        if len(body.texts) > config.max_texts:
            raise ApiError(
                413,
                "too_large",
                f"{len(body.texts):,} texts in one request; this server takes at most "
                f"{config.max_texts:,} (--max-texts)",
            )
        for i, text in enumerate(body.texts):
            limits.text(f"texts[{i}]", text)
        found = await model.run(seqtext.classify, model.loaded, body.texts) if body.texts else []
        predictions = [{"label": p.label, "name": p.name, "probs": p.probs} for p in found]
        return {"model": model.name, "labels": list(model.loaded.config.labels), "predictions": predictions}

    add_export_files(api, hosted)
    app.include_router(api)
    add_page(app)
    return app


class Limits:
    """The checks of the server's flags, each answering with the flag to change."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config

    def text(self, field: str, text: str) -> None:
        if len(text) > self.config.max_text_chars:
            raise ApiError(
                413,
                "too_large",
                f"{field} is {len(text):,} characters; this server takes at most "
                f"{self.config.max_text_chars:,} (--max-text-chars)",
            )

    def cap(self, field: str, value: int, cap: int, flag: str) -> None:
        if value > cap:
            raise ApiError(422, "invalid_request", f"{field}: {value:,} is over this server's cap of {cap:,} ({flag})")


def pick(hosted: dict[str, Hosted], name: str | None, kind: str, endpoint: str) -> Hosted:
    """The model a request names, or the only one of the kind it needs."""
    loaded = ", ".join(f"{h.name} ({KINDS[h.kind]})" for h in hosted.values())
    if name is None:
        fitting = [h for h in hosted.values() if h.kind == kind]
        if len(fitting) == 1:
            return fitting[0]
        if not fitting:
            raise ApiError(
                404, "unknown_model", f"{endpoint} needs a {KINDS[kind]}, and none is loaded (loaded: {loaded})"
            )
        names = ", ".join(h.name for h in fitting)
        raise ApiError(400, "invalid_request", f'several {KINDS[kind]}s are loaded ({names}); name one in "model"')
    model = hosted.get(name)
    if model is None:
        raise ApiError(404, "unknown_model", f"unknown model {name!r}; this server has: {loaded}")
    if model.kind != kind:
        raise ApiError(409, "wrong_kind", f"model {name!r} is a {KINDS[model.kind]}; {endpoint} needs a {KINDS[kind]}")
    return model


def take(pieces: Iterator[str], n: int) -> list[str]:
    """The next n pieces of a generation (fewer at its end); runs on the model thread."""
    return list(itertools.islice(pieces, n))


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def events(model: Hosted, pieces: Generator[str, None, None]) -> AsyncIterator[str]:
    """`token` events as they are sampled, then `done`; a client that leaves stops the generation."""
    text: list[str] = []
    finished = False
    try:
        while batch := await model.run(take, pieces, STREAM_STEP):
            for piece in batch:
                text.append(piece)
                yield sse("token", {"text": piece})
        finished = True
        yield sse("done", {"text": "".join(text), "tokens": len(text)})
    except seqtext.SeqtextError as exc:  # headers are sent: the error can only be an event
        finished = True
        yield sse("error", {"code": "invalid_request", "message": str(exc)})
    finally:
        model.close_later(pieces)
        if not finished:
            log.info("a client left a generation on %s after %d tokens; the generation stopped", model.name, len(text))
