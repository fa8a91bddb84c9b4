"""The HTTP API of `seqtext serve` through FastAPI's test client: every endpoint, every error, the key."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

import seqtext
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.completion import Completer
from seqtext.serve import ServeConfig, load_runs
from seqtext.serve import app as serve_app
from seqtext.serve.app import create_app
from seqtext.serve.hosted import parse_run
from seqtext.serve.page import OFFLINE_DOCS
from seqtext.serve.server import warnings

TYPED = "Voy al parque con mi per"


@pytest.fixture(scope="module")
def hosted(word_run, char_run, sentiment_run):
    return load_runs([f"es={word_run}", f"chars={char_run}", str(sentiment_run)])


def client_for(hosted, **config) -> TestClient:
    return TestClient(create_app(hosted, ServeConfig(**config)), base_url="http://localhost")


@pytest.fixture(scope="module")
def client(hosted):
    with client_for(hosted) as c:
        yield c


def error_of(response, status: int) -> str:
    """The one-line message of a JSON error with this status (and the body has nothing else)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


# --- the endpoints ---------------------------------------------------------------------------------


def test_health_says_ok_and_how_many_models(client):
    assert client.get("/health").json() == {"status": "ok", "version": seqtext.__version__, "models": 3}


def test_models_lists_name_kind_level_cell_and_vocabulary(client, word_run, sentiment_run):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"es", "chars", "sentiment"}  # NAME=RUN, or the directory's name
    vocab_size = seqtext.load(word_run).config.vocab_size
    assert models["es"] == {
        "name": "es",
        "kind": "lm",
        "level": "word",
        "cell": "lstm",
        "vocab_size": vocab_size,
        "can_complete": True,
    }
    assert models["chars"]["level"] == "char"
    assert models["sentiment"]["kind"] == "classifier"
    assert models["sentiment"]["labels"] == list(seqtext.load(sentiment_run).config.labels)


def test_complete_gives_what_seqtext_complete_gives(client, word_run, char_run):
    answer = client.post("/v1/complete", json={"model": "es", "text": TYPED, "k": 3}).json()
    assert answer["model"] == "es"
    assert [s["word"] for s in answer["suggestions"]][:1] == ["perro"]
    for name, run in (("es", word_run), ("chars", char_run)):
        for typed in (TYPED, "Mi ", "El ni", ""):
            expected = Completer(run, int8=False).suggest(typed, 3)  # the server steps in fp32
            got = client.post("/v1/complete", json={"model": name, "text": typed}).json()["suggestions"]
            assert [s["word"] for s in got] == [c.word for c in expected]
            assert [s["prob"] for s in got] == pytest.approx([c.prob for c in expected], rel=1e-4)


def test_generate_gives_what_seqtext_generate_gives(client, word_run):
    params = {"prompt": "Voy al", "max_new_tokens": 12, "temperature": 0.8, "top_k": 10, "top_p": 0.9, "seed": 3}
    answer = client.post("/v1/generate", json={"model": "chars", **params}).json()
    expected = seqtext.generate(client.app.state.hosted["chars"].loaded, **params)
    assert answer == {"model": "chars", "text": expected, "tokens": answer["tokens"]}
    assert 0 < answer["tokens"] <= 12
    again = client.post("/v1/generate", json={"model": "chars", **params}).json()
    assert again == answer  # same seed, same text


def test_generate_streams_server_sent_events(client):
    params = {"model": "chars", "prompt": "Mi perro", "max_new_tokens": 20, "temperature": 1.0, "seed": 1}
    whole = client.post("/v1/generate", json=params).json()
    with client.stream("POST", "/v1/generate", json={**params, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_events(response.read().decode("utf-8"))
    tokens = [data["text"] for name, data in events if name == "token"]
    assert events[-1] == ("done", {"text": whole["text"], "tokens": whole["tokens"]})
    assert "".join(tokens) == whole["text"] and len(tokens) == whole["tokens"]


def parse_events(stream: str) -> list[tuple[str, dict]]:
    events = []
    for frame in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_classify_gives_labels_names_and_probabilities(client, sentiment_run):
    texts = ["a warm , funny and deeply moving film", "dull , lifeless and far too long", "", "ok"]
    answer = client.post("/v1/classify", json={"texts": texts}).json()  # the only classifier: no name needed
    expected = seqtext.classify(client.app.state.hosted["sentiment"].loaded, texts)
    assert answer["model"] == "sentiment"
    assert answer["labels"] == list(seqtext.load(sentiment_run).config.labels)
    assert [(p["label"], p["name"]) for p in answer["predictions"]] == [(e.label, e.name) for e in expected]
    for got, want in zip(answer["predictions"], expected, strict=True):
        assert got["probs"] == pytest.approx(want.probs, abs=1e-6)
        assert sum(got["probs"]) == pytest.approx(1.0, abs=1e-5)
    assert client.post("/v1/classify", json={"texts": []}).json()["predictions"] == []


def test_the_page_and_the_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/page.js", "/page.css", "/network.js", "/keyboard.js"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    if OFFLINE_DOCS:  # Swagger UI from here, not from a CDN
        assert "cdn" not in docs.text and "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/models", "/v1/complete", "/v1/generate", "/v1/classify"} <= set(paths)


def test_the_page_loads_nothing_from_elsewhere(client):
    for asset in ("/", "/page.js", "/page.css", "/network.js", "/keyboard.js"):
        text = client.get(asset).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/complete", {"model": "nope", "text": "x"}, 404, "unknown model 'nope'"),
        ("/v1/complete", {"model": "../../etc/passwd", "text": "x"}, 404, "unknown model"),  # names, never paths
        ("/v1/complete", {"model": "sentiment", "text": "x"}, 409, "is a classifier"),
        ("/v1/generate", {"model": "sentiment"}, 409, "needs a language model"),
        ("/v1/classify", {"model": "es", "texts": ["x"]}, 409, "needs a classifier"),
        ("/v1/complete", {"text": "x"}, 400, "several language models are loaded"),
        ("/v1/complete", {"model": "es"}, 422, "text: Field required"),
        ("/v1/complete", {"model": "es", "text": 5}, 422, "text: Input should be a valid string"),
        ("/v1/complete", {"model": "es", "text": "x", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ("/v1/complete", {"model": "es", "text": "x", "k": 21}, 422, "over this server's cap of 20 (--max-k)"),
        ("/v1/generate", {"model": "es", "temprature": 1}, 422, "unknown field 'temprature'"),
        ("/v1/generate", {"model": "es", "temperature": -1}, 422, "temperature"),
        ("/v1/generate", {"model": "es", "top_p": 0}, 422, "top_p"),
        ("/v1/generate", {"model": "es", "top_k": 0}, 422, "top_k"),
        ("/v1/generate", {"model": "es", "max_new_tokens": 1001}, 422, "cap of 1,000 (--max-new-tokens)"),
        ("/v1/classify", {"texts": "one text"}, 422, "texts: Input should be a valid list"),
        ("/v1/classify", {"texts": ["x"] * 257}, 413, "at most 256 (--max-texts)"),
        ("/v1/classify", {"texts": ["ok", "x" * 10_001]}, 413, "texts[1] is 10,001 characters"),
        ("/v1/complete", {"model": "es", "text": "x" * 10_001}, 413, "at most 10,000 (--max-text-chars)"),
        ("/v1/generate", {"model": "es", "prompt": "x" * 10_001}, 413, "prompt is 10,001 characters"),
    ],
)
def test_bad_requests_get_one_clear_json_error(client, path, body, status, words):
    assert words in error_of(client.post(path, json=body), status)


@pytest.mark.parametrize(
    ("content", "headers", "words"),
    [
        (b'{"text": "x",', {"content-type": "application/json"}, "not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, "must be a JSON object"),
        (b"", {}, "the request body is missing"),
        (b'{"text": "x"}', {"content-type": "text/plain"}, "must be a JSON object"),  # no cross-site simple POST
        (b'{"text": "\xff"}', {"content-type": "application/json"}, "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json_objects_are_422(client, content, headers, words):
    assert words in error_of(client.post("/v1/complete", content=content, headers=headers), 422)


def test_bodies_over_the_limit_are_413_with_or_without_a_length(hosted):
    with client_for(hosted, max_body_bytes=1000) as small:
        body = json.dumps({"model": "es", "text": "x" * 2000}).encode()
        assert "limit of 1,000 bytes (--max-body-bytes)" in error_of(small.post("/v1/complete", content=body), 413)
        chunks = (body[i : i + 100] for i in range(0, len(body), 100))  # chunked: no Content-Length to trust
        assert "--max-body-bytes" in error_of(small.post("/v1/complete", content=chunks), 413)
        assert small.post("/v1/complete", json={"model": "es", "text": "Mi "}).status_code == 200


def test_unknown_endpoints_methods_and_hosts(client):
    assert "no such endpoint: /v1/nothing" in error_of(client.get("/v1/nothing"), 404)
    assert "no such endpoint" in error_of(client.get("/../../etc/passwd"), 404)
    assert "GET is not allowed" in error_of(client.get("/v1/complete"), 405)
    # DNS rebinding: a page elsewhere that points its name at 127.0.0.1 still sends its name
    assert "listens on this machine only" in error_of(client.get("/health", headers={"host": "evil.example"}), 400)
    assert client.get("/health", headers={"host": "127.0.0.1:8000"}).status_code == 200


def test_limits_follow_the_configuration(hosted):
    with client_for(hosted, max_new_tokens=5, max_text_chars=3, max_k=2) as c:
        assert c.post("/v1/generate", json={"model": "es", "max_new_tokens": 5}).status_code == 200
        assert "cap of 5" in error_of(c.post("/v1/generate", json={"model": "es", "max_new_tokens": 6}), 422)
        assert "at most 3" in error_of(c.post("/v1/complete", json={"model": "es", "text": "abcd"}), 413)
        assert "cap of 2" in error_of(c.post("/v1/complete", json={"model": "es", "text": "a", "k": 3}), 422)


def test_a_kind_that_is_not_loaded_is_named(word_run):
    with client_for(load_runs([str(word_run)])) as c:
        message = error_of(c.post("/v1/classify", json={"texts": ["x"]}), 404)
        assert "/v1/classify needs a classifier, and none is loaded (loaded: word (language model))" in message
        assert c.post("/v1/complete", json={"text": TYPED}).json()["suggestions"][0]["word"] == "perro"


# --- the API key ---------------------------------------------------------------------------------------


def test_with_an_api_key_every_v1_request_needs_it(hosted):
    with client_for(hosted, api_key="s3cret-key") as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-key"}):
            response = c.get("/v1/models", headers=headers)
            assert "Authorization: Bearer KEY" in error_of(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            assert c.post("/v1/complete", json={"model": "es", "text": "x"}, headers=headers).status_code == 401
        good = {"authorization": "Bearer s3cret-key"}
        assert c.get("/v1/models", headers=good).status_code == 200
        assert c.post("/v1/complete", json={"model": "es", "text": "Mi "}, headers=good).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200  # the page asks for the key


def test_without_a_key_nothing_is_asked(client):
    assert client.get("/v1/models", headers={"authorization": "Bearer anything"}).status_code == 200


# --- concurrency -----------------------------------------------------------------------------------------


def test_concurrent_requests_give_the_sequential_answers(hosted):
    prefixes = [TYPED[:n] for n in range(len(TYPED) + 1)] + ["El niño juega con el p", "Mañana voy al tra", "Mi "]
    requests = [("/v1/complete", {"model": m, "text": t}) for m in ("es", "chars") for t in prefixes]
    requests += [("/v1/classify", {"texts": [t, t.upper()]}) for t in prefixes[::4]]
    requests += [
        ("/v1/generate", {"model": "chars", "prompt": t, "max_new_tokens": 8, "seed": 2}) for t in prefixes[::6]
    ]
    with client_for(hosted) as c:
        sequential = [c.post(path, json=body).json() for path, body in requests]
    cold = load_runs([f"{name}={h.loaded.path}" for name, h in hosted.items()])  # caches start empty
    with client_for(cold) as c, ThreadPoolExecutor(8) as pool:
        for _ in range(2):  # cold caches, then warm ones
            concurrent = list(pool.map(lambda r: c.post(r[0], json=r[1]).json(), requests * 2))
            assert rounded(concurrent) == rounded(sequential * 2)


def rounded(answers):
    """Probabilities to 5 significant digits: a state read in one go or step by step differs in the last bits."""
    return json.loads(json.dumps(answers), parse_float=lambda x: float(f"{float(x):.5g}"))


# --- configuration and start-up ----------------------------------------------------------------------------


def test_run_names_come_from_name_equals_run_or_the_directory(tmp_path, word_run):
    assert parse_run(f"es={word_run}") == ("es", word_run)
    assert parse_run(str(word_run)) == (word_run.name, word_run)
    with pytest.raises(ConfigError, match="model name 'a b'"):
        parse_run(f"a b={word_run}")
    with pytest.raises(ConfigError, match="two runs are named 'x'"):
        load_runs([f"x={word_run}", f"x={word_run}"])
    with pytest.raises(CheckpointError, match="not a seqtext run"):
        load_runs([f"x={tmp_path}"])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"port": 70_000}, "--port must be in 0..65535"),
        ({"api_key": ""}, "--api-key must be non-empty"),
        ({"api_key": "two words"}, "without spaces"),
        ({"max_body_bytes": 0}, "--max-body-bytes must be a whole number from 1"),
        ({"device": "tpu"}, "--device must be one of"),
        ({"workers": 0}, "--workers must be a whole number from 1"),
    ],
)
def test_serve_config_refuses_what_cannot_work(fields, words):
    with pytest.raises(ConfigError, match=words):
        ServeConfig(**fields)


def test_binding_beyond_this_machine_without_a_key_warns():
    assert warnings(ServeConfig()) == [] and warnings(ServeConfig(host="::1")) == []
    assert "without --api-key" in warnings(ServeConfig(host="0.0.0.0"))[0]
    assert "TLS" in warnings(ServeConfig(host="0.0.0.0", api_key="k"))[0]


def test_model_calls_run_on_the_models_own_thread_one_at_a_time(hosted):
    fresh = load_runs([f"es={hosted['es'].loaded.path}"])
    completer, seen, active = fresh["es"].completer, [], [0]
    suggest_many = completer.suggest_many

    def watched(requests):
        active[0] += 1
        seen.append((threading.current_thread().name, active[0]))
        time.sleep(0.001)  # long enough for a second thread to enter, were one let in
        active[0] -= 1
        return suggest_many(requests)

    completer.suggest_many = watched
    with client_for(fresh) as c, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: c.post("/v1/complete", json={"text": TYPED[:n]}).status_code, range(24)))
    assert answers == [200] * 24
    assert {name for name, _ in seen} == {"model-es_0"}  # not the event loop, not a shared pool
    assert max(n for _, n in seen) == 1  # never two calls into the model at once


def test_a_well_formed_keystroke_takes_the_short_way_with_the_framework_s_answer(hosted, monkeypatch):
    """keystrokes.py answers a well-formed /v1/complete without FastAPI's route, with the same bytes; a body
    it does not take (here k as 3.0, which pydantic accepts) goes on to the route."""
    app = create_app(hosted, ServeConfig())
    routed, pick = [], serve_app.pick  # the route looks `pick` up when it runs; the short way holds its own

    def counted(hosted, name, kind, endpoint):
        routed.append(endpoint)
        return pick(hosted, name, kind, endpoint)

    monkeypatch.setattr(serve_app, "pick", counted)
    with TestClient(app, base_url="http://localhost") as c:
        short = c.post("/v1/complete", json={"model": "es", "text": TYPED, "k": 3})
        assert short.status_code == 200 and routed == []
        framework = c.post("/v1/complete", json={"model": "es", "text": TYPED, "k": 3.0})
        assert framework.status_code == 200 and routed == ["/v1/complete"]
        assert short.content == framework.content
        assert short.headers["content-type"] == framework.headers["content-type"] == "application/json"
        assert short.json()["suggestions"][0]["word"] == "perro"
        # what the short way does not answer is the route's, with its message
        too_many = c.post("/v1/complete", json={"model": "es", "text": "x", "k": 21})
        assert "cap of 20 (--max-k)" in error_of(too_many, 422)
        assert "must be a JSON object" in error_of(
            c.post("/v1/complete", content=b'{"text": "x"}', headers={"content-type": "text/plain"}), 422
        )
