"""POST /v1/complete, the keystroke, answered without the framework when it is well formed.

A keystroke is the request a keyboard sends most, and its model step, batched with the other
typists' (hosted.py), costs less CPU than FastAPI's way through a request: routing, the key's
dependency, pydantic for the body and again for the response. This ASGI layer sits behind Guard
(the Host check, the body limit and strict JSON have passed, and Guard hands on the parsed body)
and answers a keystroke whose body is exactly what the schema asks for (`text` a string, `k` a
whole number in range, `model` a name or absent, nothing else) from a model that can complete,
with the same JSON FastAPI's route writes. Anything else, including every error to report, goes
on to FastAPI's route, which answers it as it always has, so no message or status differs.
"""

from __future__ import annotations

import json
from typing import Any

from seqtext.errors import SeqtextError
from seqtext.schema import MAX_INT
from seqtext.serve.config import ServeConfig
from seqtext.serve.guards import PARSED_BODY, ApiError, check_key, error_response, log
from seqtext.serve.hosted import Hosted
from seqtext.textfiles import unicode_problem

FIELDS = frozenset(("model", "text", "k"))  # schemas.CompleteRequest
DEFAULT_K = 3  # schemas.CompleteRequest.k's default
JSON_HEADERS = [(b"content-type", b"application/json")]


class Keystrokes:
    """ASGI: answers the well-formed POST /v1/complete itself; hands every other request to `app`."""

    def __init__(self, app: Any, hosted: dict[str, Hosted], config: ServeConfig, pick: Any, limits: Any) -> None:
        self.app, self.hosted, self.config, self.pick, self.limits = app, hosted, config, pick, limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/complete" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = self._keystroke(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        model, text, k = request
        try:
            found = await model.suggest(text, k)
        except SeqtextError as exc:  # as guards.install_error_handlers answers it
            await error_response(400, "invalid_request", str(exc))(scope, receive, send)
            return
        except Exception:
            log.exception("internal error on POST /v1/complete")
            await error_response(500, "internal_error", "internal server error; the server log has the details")(
                scope, receive, send
            )
            return
        answer = {"model": model.name, "suggestions": [{"word": s.word, "prob": s.prob} for s in found]}
        # the bytes of FastAPI's JSONResponse: no spaces, UTF-8, no NaN
        body = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        headers = [(b"content-length", str(len(body)).encode()), *JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _keystroke(self, scope: dict) -> tuple[Hosted, str, int] | None:
        """(model, text, k) of a keystroke this layer answers; None hands the request to FastAPI's route."""
        body = scope.get(PARSED_BODY)
        if type(body) is not dict or not FIELDS.issuperset(body) or type(body.get("text")) is not str:
            return None
        text, k, name = body["text"], body.get("k", DEFAULT_K), body.get("model")
        if type(k) is not int or not 1 <= k <= MAX_INT or (name is not None and type(name) is not str):
            return None
        authorization, content_type = None, None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
        if content_type is None or content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            check_key(self.config.api_key, authorization)
            model = self.pick(self.hosted, name, "lm", "/v1/complete")
            self.limits.text("text", text)
            self.limits.cap("k", k, self.config.max_k, "--max-k")
        except ApiError:
            return None
        if model.completer is None or unicode_problem(text) is not None:
            return None
        return model, text, k
