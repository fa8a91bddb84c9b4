"""`seqtext serve` from the command line: start-up errors, flags, and a real server process that logs to
stderr, survives clients that leave, and stops cleanly on Ctrl-C or SIGTERM with requests in flight."""

import json
import signal
import socket
import sys
import time

import pytest
from helpers import assert_clean_error, invoke

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")

from serve_harness import serving  # noqa: E402

import seqtext.serve  # noqa: E402


def test_a_directory_that_is_not_a_run_is_one_line(tmp_path):
    assert "is not a seqtext run" in assert_clean_error(invoke("serve", tmp_path))


def test_names_must_be_plain_and_distinct(word_run):
    assert "model name 'a/b'" in assert_clean_error(invoke("serve", f"a/b={word_run}"))
    assert "two runs are named 'x'" in assert_clean_error(invoke("serve", f"x={word_run}", f"x={word_run}"))


def test_a_missing_extra_says_what_to_install(monkeypatch, word_run):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails as if not installed
    assert 'pip install "seqtext[serve]"' in assert_clean_error(invoke("serve", word_run))


def test_a_port_in_use_is_one_line(word_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in assert_clean_error(invoke("serve", word_run, "--port", port))


def test_flags_become_the_serve_config(monkeypatch, word_run, sentiment_run):
    started = {}
    monkeypatch.setattr(seqtext.serve, "run", lambda hosted, config: started.update(hosted=hosted, config=config))
    flags = ["--port", 0, "--max-body-bytes", 5000, "--max-text-chars", 50, "--max-texts", 4, "--max-new-tokens", 9]
    result = invoke("serve", f"es={word_run}", sentiment_run, *flags, "--max-k", 5, "--no-access-log")
    assert result.exit_code == 0, result.output
    config = started["config"]
    assert (config.port, config.max_body_bytes, config.max_text_chars, config.max_texts) == (0, 5000, 50, 4)
    assert (config.max_new_tokens, config.max_k, config.access_log, config.host) == (9, 5, False, "127.0.0.1")
    assert list(started["hosted"]) == ["es", "sentiment"]
    assert invoke("serve", word_run, "--api-key", "k1").exit_code == 0 and started["config"].api_key == "k1"
    assert invoke("serve", word_run, env={"SEQTEXT_API_KEY": "k2"}).exit_code == 0 and started["config"].api_key == "k2"
    assert "--api-key must be non-empty" in assert_clean_error(invoke("serve", word_run, "--api-key", ""))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_lets_the_request_in_flight_finish(prose_run, sig):
    with serving([f"prose={prose_run}"], "--max-new-tokens", "4000") as server:
        assert "listening on http://127.0.0.1:" in server.stderr()
        answer = httpx.post(server.url + "v1/complete", json={"text": "En un lugar de la Man"}).json()
        assert answer["suggestions"]
        body = {"prompt": "En un lugar", "max_new_tokens": 4000, "stream": True, "temperature": 1.0}
        with httpx.stream("POST", server.url + "v1/generate", json=body, timeout=60) as response:
            lines = response.iter_lines()
            assert next(lines) == "event: token"  # the stream has begun: now stop the server
            server.process.send_signal(sig)
            rest = list(lines)
        done = json.loads(rest[rest.index("event: done") + 1].removeprefix("data: "))
        assert done["tokens"] == 4000  # a prose model never ends a line: every token came
        # The one signal was enough: the server exits by itself (a second SIGTERM from stop() could hit
        # an interpreter already shutting down). The timeout only guards against a hang.
        assert server.process.wait(timeout=300) == 0
        log = server.stderr()
        assert "Waiting for connections to close" in log  # the stream was still going when the stop began
        assert log.rstrip().endswith("stopped")
        assert '"POST /v1/complete HTTP/1.1" 200' in log  # the access log is on stderr
        assert server.process.stdout.read() == ""  # nothing on stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "health")


def test_clients_that_leave_mid_stream_or_send_too_much_leave_the_server_up(prose_run):
    with serving([f"prose={prose_run}"], "--max-new-tokens", "4000", "--no-access-log") as server:
        body = {"prompt": "En un lugar", "max_new_tokens": 4000, "stream": True}
        for _ in range(3):
            with httpx.stream("POST", server.url + "v1/generate", json=body) as response:
                assert next(response.iter_lines()) == "event: token"
        # every client left after its first token; the model is free and the server answers
        answer = httpx.post(server.url + "v1/generate", json={"prompt": "En", "max_new_tokens": 5}, timeout=60)
        assert answer.json()["tokens"] == 5
        for _ in range(600):
            if server.stderr().count("a client left a generation on prose") == 3:
                break
            time.sleep(0.1)
        assert server.stderr().count("a client left a generation on prose") == 3
        for _ in range(2):  # the sender of an oversized body reads the 413, not a reset connection
            big = httpx.post(
                server.url + "v1/complete", content=b"x" * 3_000_000, headers={"content-type": "text/json"}
            )
            assert big.status_code == 413 and "--max-body-bytes" in big.json()["error"]["message"]
        assert "Traceback" not in server.stderr() and "ERROR" not in server.stderr()
        assert server.process.poll() is None
