"""What stands before the endpoints: JSON errors, the body limit, the Host check, the API key.

Every error is `{"error": {"code", "message"}}` with one line of message and the right status, so
a client never has to parse FastAPI's lists of validation details or an HTML page.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqtext import jsonfiles
from seqtext.errors import SeqtextError

log = logging.getLogger("seqtext.serve")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
DRAIN_BYTES = 16_000_000  # the most of an oversized body read (and dropped) so that its sender sees the 413
MAX_HEADER_BYTES = 65_536  # a request's line and headers; a browser sends a few hundred bytes
PARSED_BODY = "seqtext.body"  # the scope key where Guard hands on the body it parsed (keystrokes.py reads it)


class ApiError(Exception):
    """An answer other than success: the HTTP status, a stable code, and one line for a person."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def validation_message(errors: list[Any]) -> str:
    """One line from pydantic's list of errors: 'k: Input should be greater than or equal to 1'."""
    parts = []
    for error in errors[:3]:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(loc)
        kind = error.get("type", "")
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            return f"the request body is not valid JSON ({reason}); send a JSON object"
        if kind == "missing" and not loc:
            return "the request body is missing; send a JSON object with Content-Type: application/json"
        if kind == "model_attributes_type" or (kind == "dict_type" and not loc):
            return "the request body must be a JSON object"
        if kind == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            said = str(error.get("msg", "invalid")).removeprefix("Value error, ")  # a validator's own words
            parts.append(f"{where}: {said}" if where else said)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_message(list(exc.errors())))

    @app.exception_handler(SeqtextError)
    async def refused(request: Request, exc: SeqtextError) -> JSONResponse:
        return error_response(400, "invalid_request", str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(404, "not_found", f"no such endpoint: {request.url.path}; see /docs")
        if exc.status_code == 400:  # FastAPI could not decode the body (not UTF-8): still a malformed body
            return error_response(
                422, "invalid_request", "the request body is not valid JSON in UTF-8; send a JSON object"
            )
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
            return error_response(405, "method_not_allowed", message, exc.headers)
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error; the server log has the details")


def check_key(expected: str | None, authorization: str | None) -> None:
    """Refuse a /v1/ request without the right `Authorization: Bearer KEY` (compared in constant time)."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        what = "a wrong API key" if authorization else "no API key"
        raise ApiError(
            401,
            "unauthorized",
            f"{what}: this server needs the header 'Authorization: Bearer KEY' with the key given to --api-key",
            {"WWW-Authenticate": "Bearer"},
        )


class Guard:
    """ASGI middleware: refuses bodies over the limit (413) and, on loopback, foreign Host headers.

    The Host check stops DNS rebinding: a web page from elsewhere that points its own host name at
    127.0.0.1 still sends that name, and is refused. The body is read here, up to the limit, and
    handed on; a Content-Length over the limit is refused before a byte of the body is read.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, loopback: bool) -> None:
        self.app, self.max_body_bytes, self.loopback = app, max_body_bytes, loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.loopback and _host_name(host) not in LOOPBACK_HOSTS:
            message = f"Host {host!r} is not this server's; it listens on this machine only (use localhost)"
            await error_response(400, "bad_host", message)(scope, receive, send)
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            drain = length.isdigit() and int(length) <= self.max_body_bytes + DRAIN_BYTES
            await self._too_large(scope, receive, send, more=drain)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._too_large(scope, receive, send, more=more)
                return
        parsed, problem = strict_json(bytes(body))
        if problem:
            await error_response(422, "invalid_request", f"the request body: {problem}")(scope, receive, send)
            return
        scope[PARSED_BODY] = parsed
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the disconnect a streaming response listens for

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, more: bool = True) -> None:
        """Answer 413. The rest of the body is read and dropped first (up to DRAIN_BYTES): a client that is
        still sending when the connection closes sees a reset, not the answer."""
        drained = 0
        while more and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        message = f"the request body is over this server's limit of {self.max_body_bytes:,} bytes (--max-body-bytes)"
        await error_response(413, "too_large", message, {"Connection": "close"})(scope, receive, send)


def strict_json(body: bytes) -> tuple[Any, str | None]:
    """The body's JSON value, and what the JSON reader of every seqtext file refuses in it (seqtext.jsonfiles:
    a key given twice, a number out of range, an unpaired surrogate, deep nesting), naming the field. A body
    that is not JSON at all is (None, None): left to the endpoint, which says what it expects."""
    if not body.strip():
        return None, None
    try:
        return jsonfiles.parse(body), None
    except jsonfiles.JsonError as exc:
        return None, None if exc.problem.startswith("not readable JSON") else exc.problem


def _host_name(host: str) -> str:
    """'localhost:8000' → 'localhost', '[::1]:8000' → '[::1]'."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole JSON error response as bytes, for a connection the app never sees (then closed)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return (head + "connection: close\r\nretry-after: 1\r\n\r\n").encode() + body


def bounded_protocol(max_connections: int, read_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
    """uvicorn's HTTP protocol (httptools where installed, else h11), with what it lacks: connections
    beyond `max_connections` are answered 503 at once and closed; a request must arrive whole (headers,
    then body) within `read_timeout` seconds of the connection opening or of the previous answer, or it
    is answered 408 and closed (an idle or half-sent connection, slowloris); headers are at most
    `max_header_bytes` (431). uvicorn itself only closes a connection idle after an answer."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    too_many = raw_error(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"this server holds {max_connections:,} connections at most (--max-connections); try again",
    )
    too_slow = raw_error(
        408,
        "Request Timeout",
        "too_slow",
        f"the request did not arrive whole within {read_timeout:g} s (--read-timeout); send it at once",
    )
    too_long = raw_error(
        431, "Request Header Fields Too Large", "too_large", f"the request's headers pass {max_header_bytes:,} bytes"
    )

    class BoundedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _header_bytes = 0
        _tail = b""  # the last bytes of the headers read so far: their end may come split across two reads

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning(
                    "refused a connection: %d open, --max-connections is %d", len(self.connections) - 1, max_connections
                )
                self._close_with(too_many)
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # still reading a request's headers
                # Only the headers count: one read often holds them and the start of the body too.
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                self._header_bytes += len(data) if end < 0 else max(0, end + 4 - len(self._tail))
                self._tail = seen[-3:] if end < 0 else b""
                if self._header_bytes > max_header_bytes:
                    if not self.transport.is_closing():
                        self._close_with(too_long)
                    return
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._header_bytes, self._tail = 0, b""
            self._arm()  # the next request on this connection gets its own read_timeout

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _incoming(self) -> bool:
            """A request is being read: none yet, or its body is still arriving."""
            return self.cycle is None or self.cycle.response_complete or self.cycle.more_body

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(read_timeout, self._expire)

        def _expire(self) -> None:
            if self._incoming() and not self.transport.is_closing():
                started = self.cycle is not None and not self.cycle.response_complete and self.cycle.response_started
                self._close_with(b"" if started else too_slow)

        def _close_with(self, answer: bytes) -> None:
            if answer:
                self.transport.write(answer)
            self.transport.close()

    return BoundedProtocol
