"""The clients of scripts/bench_serve.py: typists, a classify client, streams that leave, and faults.

Each runs in one asyncio loop against a real `seqtext serve`, until a deadline, and records its
latencies, its failures (no answer, or an unexpected status) and its answers, checked afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from urllib.parse import urlsplit

import httpx

from seqtext.keyboard.typist import percentile

BATCH = 64  # texts per /v1/classify request


class Tally:
    """Latencies and failures of one kind of request."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.answers: list[tuple] = []  # (request, answer) pairs, checked after the load

    def summary(self, seconds: float, wrong: int) -> dict:
        ms = [1000 * t for t in self.latencies]
        return {
            "requests": len(ms),
            "requests_per_s": len(ms) / seconds,
            "latency_ms_p50": percentile(ms, 50) if ms else None,
            "latency_ms_p99": percentile(ms, 99) if ms else None,
            "errors": len(self.errors),
            "error_examples": sorted(set(self.errors))[:5],
            "wrong": wrong,
        }


async def timed(tally: Tally, client: httpx.AsyncClient, path: str, body: dict, want: int = 200) -> dict | None:
    start = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        tally.errors.append(f"{path}: {type(exc).__name__}")
        return None
    tally.latencies.append(time.perf_counter() - start)
    if response.status_code != want:
        tally.errors.append(f"{path}: {response.status_code} (wanted {want})")
        return None
    return response.json()


class Connection:
    """One keep-alive HTTP/1.1 connection, a request at a time: a typist's client. Much lighter than httpx
    (which costs about a millisecond of CPU per request), so that the clients, on the same cores as the
    server, take less of the machine from what is measured."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        content = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        answer = await reader.readexactly(int(headers["content-length"]))
        if headers.get("connection") == "close":
            writer.close()
            self.streams = None
        return int(lines[0].split()[1]), json.loads(answer)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def typist(url: str, sentences: list[str], start: int, tally: Tally, until: float) -> None:
    """Type sentence after sentence, one /v1/complete per keystroke, on a connection of its own."""
    n, connection = start, Connection(url)
    try:
        while time.monotonic() < until:
            sentence = sentences[n % len(sentences)]
            for end in range(len(sentence) + 1):
                if time.monotonic() >= until:
                    return
                began = time.perf_counter()
                try:
                    body = {"model": "lm", "text": sentence[:end], "k": 3}
                    status, answer = await connection.post("/v1/complete", body)
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
                    tally.errors.append(f"/v1/complete: {type(exc).__name__}")
                    connection.close()
                    connection = Connection(url)
                    continue
                tally.latencies.append(time.perf_counter() - began)
                if status != 200:
                    tally.errors.append(f"/v1/complete: {status} (wanted 200)")
                    continue
                tally.answers.append((sentence[:end], [(s["word"], s["prob"]) for s in answer["suggestions"]]))
            n += 1
    finally:
        connection.close()


async def classifier_client(client: httpx.AsyncClient, batches: list[list[str]], tally: Tally, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        answer = await timed(tally, client, "/v1/classify", {"model": "classifier", "texts": batches[n % len(batches)]})
        if answer is not None:
            tally.answers.append((n % len(batches), [p["label"] for p in answer["predictions"]]))
        n += 1


async def leaver(client: httpx.AsyncClient, prompts: list[str], tally: Tally, until: float, seed: int) -> None:
    """Start streamed generations and leave each after a few tokens."""
    rng = random.Random(seed)
    while time.monotonic() < until:
        body = {"model": "lm", "prompt": rng.choice(prompts), "max_new_tokens": 500, "stream": True, "seed": seed}
        try:
            async with client.stream("POST", "/v1/generate", json=body) as response:
                if response.status_code != 200:
                    tally.errors.append(f"stream: {response.status_code}")
                    continue
                wanted, seen = rng.randint(1, 5), 0
                async for line in response.aiter_lines():
                    seen += line.startswith("event: token")
                    if seen >= wanted:
                        break  # leaving: the connection closes with the stream unread
            tally.latencies.append(0.0)
        except httpx.HTTPError as exc:
            tally.errors.append(f"stream: {type(exc).__name__}")


def faults(limits: dict) -> list[tuple[str, bytes, dict, int]]:
    """(path, body, headers, the status it must get)."""
    json_type = {"content-type": "application/json"}
    big_text = json.dumps({"model": "lm", "text": "a" * (limits["max_text_chars"] + 1)}).encode()
    return [
        ("/v1/complete", b'{"model": "lm", "text": "Voy al', json_type, 422),
        ("/v1/classify", b"\xff\xfe not json", json_type, 422),
        ("/v1/complete", b"[1, 2, 3]", json_type, 422),
        ("/v1/complete", b"x" * (limits["max_body_bytes"] + 1), json_type, 413),
        ("/v1/complete", big_text, json_type, 413),
        ("/v1/complete", json.dumps({"model": "nope", "text": "a"}).encode(), json_type, 404),
        ("/v1/complete", json.dumps({"model": "classifier", "text": "a"}).encode(), json_type, 409),
        ("/v1/generate", json.dumps({"model": "lm", "max_new_tokens": 10**6}).encode(), json_type, 422),
    ]


async def fault_client(client: httpx.AsyncClient, limits: dict, tally: Tally, until: float) -> None:
    cases, n = faults(limits), 0
    while time.monotonic() < until:
        path, content, headers, want = cases[n % len(cases)]
        start = time.perf_counter()
        try:
            response = await client.post(path, content=content, headers=headers)
            tally.latencies.append(time.perf_counter() - start)
            error = response.json().get("error", {}) if response.status_code == want else {}
            if response.status_code != want or not error.get("message"):
                tally.errors.append(f"fault {n % len(cases)}: {response.status_code} (wanted {want})")
        except (httpx.HTTPError, ValueError) as exc:
            tally.errors.append(f"fault {n % len(cases)}: {type(exc).__name__}")
        n += 1
        await asyncio.sleep(0.02)


async def phase(url: str, seconds: float, clients: int, work: dict, mixed: bool) -> dict[str, Tally]:
    tallies = {name: Tally() for name in ("complete", "classify", "streams", "faults")}
    until = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 16, max_keepalive_connections=clients + 16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        jobs = [typist(url, work["sentences"], i * 7, tallies["complete"], until) for i in range(clients)]
        if mixed:
            jobs.append(classifier_client(client, work["batches"], tallies["classify"], until))
            jobs += [leaver(client, work["sentences"], tallies["streams"], until, seed) for seed in range(2)]
            jobs.append(fault_client(client, work["limits"], tallies["faults"], until))
        await asyncio.gather(*jobs)
    return tallies
