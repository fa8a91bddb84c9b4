"""`seqtext serve` bounds its connections (issue 22, class 4): more sockets than --max-connections are
answered 503 at once; an idle, half-sent or slowly sent request is answered 408 and closed after
--read-timeout, so /health is answered again; headers are bounded; surrogates in a JSON request are a
422, not a crash. Real server processes on localhost, always stopped."""

import json
import socket
import time

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")

from serve_harness import serving  # noqa: E402

from seqtext.errors import ConfigError  # noqa: E402
from seqtext.serve.config import ServeConfig  # noqa: E402

GENEROUS = 60.0  # seconds a socket waits for an answer that must come: a hang guard, not a speed target


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def connect(url: str) -> socket.socket:
    """A socket to the server (the log says it listens a moment before it accepts: retried meanwhile)."""
    deadline = time.monotonic() + GENEROUS
    while True:
        try:
            return socket.create_connection(address(url), timeout=GENEROUS)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends on this socket until it closes it."""
    sock.settimeout(GENEROUS)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def status_and_error(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.fixture(scope="module")
def server(word_run, sentiment_run):
    """One server for the module: 4 connections at most, a second for a request to arrive."""
    with serving([word_run, sentiment_run], "--no-access-log", "--max-connections", "4", "--read-timeout", "1") as s:
        yield s


def test_more_sockets_than_the_limit_then_health_is_answered_again(server):
    idle = [connect(server.url) for _ in range(2)]  # say nothing at all
    half = [connect(server.url) for _ in range(2)]  # slowloris: a request line, never finished
    for sock in half:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    extra = connect(server.url)  # the fifth: over the limit, answered at once
    status, error = status_and_error(answer_of(extra))
    assert status == 503 and error["code"] == "too_many_connections" and "--max-connections" in error["message"]
    for sock in idle + half:  # each is closed once its read timeout passes, with a 408 saying why
        status, error = status_and_error(answer_of(sock))
        assert status == 408 and "--read-timeout" in error["message"]
        sock.close()
    assert httpx.get(server.url + "health", timeout=GENEROUS).json()["status"] == "ok"


def test_a_body_that_never_ends_is_answered_408(server):
    with connect(server.url) as sock:
        head = b"POST /v1/complete HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        sock.sendall(head + b'Content-Length: 100\r\n\r\n{"text": ')
        status, error = status_and_error(answer_of(sock))
    assert status == 408 and error["code"] == "too_slow"
    answer = httpx.post(server.url + "v1/complete", json={"text": "Voy al par"}, timeout=GENEROUS)
    assert answer.status_code == 200, "a slow client leaves the server as it was"


def test_kept_alive_connections_serve_request_after_request(server):
    with connect(server.url) as sock:
        received = b""
        for _ in range(5):  # one connection, several requests, each answered
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head, _, received = received.partition(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
            while len(received) < length:
                received += sock.recv(65536)
            assert head.startswith(b"HTTP/1.1 200") and json.loads(received[:length])["status"] == "ok"
            received = received[length:]


def test_endless_headers_are_refused(server):
    with connect(server.url) as sock:
        answer = b""
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
            for _ in range(200):  # 200 KB of headers, more than the server reads
                sock.sendall(b"X-Pad: " + b"a" * 1024 + b"\r\n")
            answer = answer_of(sock)
        except OSError:  # closed while we were still sending: the answer may be lost in the reset
            pass
    assert answer == b"" or status_and_error(answer)[0] == 431
    assert httpx.get(server.url + "health", timeout=GENEROUS).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("v1/complete", '{"text": "ab\\ud800c"}', 'field "text" is not valid Unicode (an unpaired surrogate, U+D800'),
        ("v1/generate", '{"prompt": "\\udcff Hola"}', 'field "prompt" is not valid Unicode'),
        ("v1/classify", '{"texts": ["good", "\\udfff"]}', 'field "texts[1]" is not valid Unicode'),
        ("v1/complete", '{"text": "Mi per", "k": 1, "k": 50}', 'the key "k" appears twice in one object'),
        ("v1/generate", '{"prompt": "Hola", "seed": 1' + "0" * 30 + "}", 'field "seed" is out of range'),
        ("v1/generate", '{"prompt": "Hola", "temperature": 1e400}', 'field "temperature" is out of range'),
        ("v1/complete", '{"text": ' + "[" * 100 + "]" * 100 + "}", "nested too deeply"),
    ],
)
def test_request_bodies_are_read_as_strictly_as_files(server, path, body, words):
    answer = httpx.post(server.url + path, content=body, headers={"Content-Type": "application/json"}, timeout=GENEROUS)
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("the request body: ") and words in message and "\n" not in message, message


def test_request_fields_that_are_not_text_are_refused_from_python_too():
    from seqtext.serve.schemas import CompleteRequest

    with pytest.raises(ValueError, match="not valid Unicode"):
        CompleteRequest(text="ab\ud800")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"max_connections": 0}, "--max-connections must be a whole number from 1"),
        ({"max_connections": 10**400}, "--max-connections must be a whole number from 1"),
        ({"read_timeout": 0.0}, "--read-timeout must be above 0"),
        ({"read_timeout": float("inf")}, "--read-timeout must be a finite number"),
        ({"read_timeout": 1e9}, "at most 3,600 s"),
    ],
)
def test_the_connection_bounds_are_checked(fields, words):
    with pytest.raises(ConfigError, match=words):
        ServeConfig(**fields)
