"""Many typists at once: keystrokes batched on the model thread, --workers, and two servers for one typist."""

import asyncio
import json
import signal
import threading

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the clients of these tests")

from serve_harness import serving  # noqa: E402

import seqtext  # noqa: E402
from seqtext.errors import CheckpointError  # noqa: E402
from seqtext.keyboard.completion import Completer  # noqa: E402
from seqtext.serve import load_runs  # noqa: E402
from seqtext.serve.app import STREAM_STEP, take  # noqa: E402

TYPED = "Voy al parque con mi periquito, ¿vale? Mi perro come"
TEXTS = ["Voy al parque con mi per", "Mi perro c", "El niño juega con el ", "¿Quedamos mañana a las o", "Hoy hace"]


def answers_of(completions):
    """Words, and probabilities to 5 significant digits (a state read alone or in a batch differs in the last bits)."""
    return [(c.word, float(f"{c.prob:.5g}")) for c in completions]


def json_answers(body):
    return [(s["word"], float(f"{s['prob']:.5g}")) for s in body["suggestions"]]


async def held_then_released(model, texts):
    """Keystrokes that arrive while the model thread is busy: they wait together, then one batch answers them."""
    gate = threading.Event()
    model.thread.submit(gate.wait)  # the model thread is busy (a generation token, a classify batch, …)
    tasks = [asyncio.create_task(model.suggest(text, 3)) for text in texts]
    while len(model._keystrokes) < len(texts):
        await asyncio.sleep(0.001)
    gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_keystrokes_that_wait_together_are_answered_in_one_batch_as_alone(keyboard_run):
    model = load_runs([f"es={keyboard_run}"])["es"]
    batches = []
    suggest_many = model.completer.suggest_many
    model.completer.suggest_many = lambda requests: batches.append(len(requests)) or suggest_many(requests)
    try:
        got = asyncio.run(held_then_released(model, TEXTS))
    finally:
        model.shutdown()
    assert batches == [len(TEXTS)]
    alone = Completer(keyboard_run, int8=False)  # seqtext complete's engine (fp32, as the server), one text at a time
    assert [answers_of(g) for g in got] == [answers_of(alone.suggest(t, 3)) for t in TEXTS]


def test_a_keystroke_that_fails_fails_alone(keyboard_run):
    model = load_runs([f"es={keyboard_run}"])["es"]
    suggest_many = model.completer.suggest_many

    def refuse(requests):  # a batch with one text the model cannot read
        raise CheckpointError("the model's scores overflowed")

    def one(text, k):  # that text alone still fails; the others are answered
        if text == TEXTS[1]:
            raise CheckpointError("the model's scores overflowed")
        return suggest_many([(text, k)])[0]

    model.completer.suggest_many, model.completer.suggest = refuse, one
    try:
        got = asyncio.run(held_then_released(model, TEXTS))
    finally:
        model.shutdown()
    assert isinstance(got[1], CheckpointError)
    assert all(isinstance(g, list) for n, g in enumerate(got) if n != 1)
    assert sum(bool(g) for g in got) >= 3


def test_a_long_generation_does_not_starve_keystrokes(prose_run):
    model = load_runs([f"prose={prose_run}"])["prose"]

    async def typing_beside_a_generation():
        pieces = seqtext.generate_stream(model.loaded, "En un lugar", max_new_tokens=1000, temperature=1.0)
        tokens: list[str] = []

        async def generation():  # as /v1/generate streams: one token per job on the model thread
            while batch := await model.run(take, pieces, STREAM_STEP):
                tokens.extend(batch)

        generating = asyncio.create_task(generation())
        await asyncio.sleep(0)
        sampled_before = []  # how many tokens had been sampled when each keystroke was answered
        for n in range(1, 12):
            await model.suggest("En un lugar de la Mancha"[:n], 3)
            sampled_before.append(len(tokens))
        await generating
        return sampled_before, len(tokens)

    try:
        sampled_before, total = asyncio.run(typing_beside_a_generation())
    finally:
        model.shutdown()
    assert total == 1000 and sampled_before[-1] < total  # typed while the generation went on
    gaps = [b - a for a, b in zip([0, *sampled_before], sampled_before, strict=False)]
    assert max(gaps) <= 2 * STREAM_STEP + 1, gaps  # a keystroke waits for a token or two, not for the whole text


def type_alternately(urls, keyboard_run):
    """One typist whose keystrokes go to each server in turn; every answer is that of seqtext complete."""
    alone = Completer(keyboard_run, int8=False)
    with httpx.Client(timeout=60) as client:
        for n in range(len(TYPED) + 1):
            url = urls[n % len(urls)]
            response = client.post(url + "v1/complete", json={"text": TYPED[:n], "k": 3})
            assert response.status_code == 200, response.text
            assert json_answers(response.json()) == answers_of(alone.suggest(TYPED[:n], 3)), TYPED[:n]


def test_two_servers_answer_the_same_typist_alternately(keyboard_run):
    with (
        serving([f"es={keyboard_run}"], "--no-access-log") as one,
        serving([f"es={keyboard_run}"], "--no-access-log") as two,
    ):
        type_alternately([one.url, two.url], keyboard_run)
        assert "ERROR" not in one.stderr() + two.stderr()


def test_workers_share_one_port_and_stop_together(keyboard_run):
    with serving([f"es={keyboard_run}"], "--no-access-log", "--workers", "2") as server:
        assert "starting 2 workers" in server.stderr()
        type_alternately([server.url], keyboard_run)
        health = [httpx.get(server.url + "health", headers={"Connection": "close"}).json() for _ in range(4)]
        assert health[0]["models"] == 1
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(300) == 0  # every worker stopped cleanly, then the parent
    assert server.stderr().count("Application startup complete") == 2
    assert json.dumps(health).count('"ok"') == 4


def test_a_worker_that_cannot_start_is_one_line_and_stops_the_others(tmp_path, keyboard_run):
    import subprocess
    import sys

    command = [sys.executable, "-m", "seqtext", "serve", f"es={keyboard_run}", str(tmp_path), "--port", "0"]
    result = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "is not a seqtext run" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_many_typists_inside_their_words_reuse_their_mixes(keyboard_run):
    """The server's Completer keeps a mix per typist's current word: 40 typists typing words in turn compute each
    context's mix of the model and the n-gram once, not at every keystroke (a 16-entry cache evicted them)."""
    model = load_runs([f"es={keyboard_run}"])["es"]
    try:
        mixer = model.completer.mixer
        assert mixer is not None
        computed = []
        ngram_part = mixer.ngram_part
        mixer.ngram_part = lambda text: computed.append(text) or ngram_part(text)
        contexts = [f"{TEXTS[i % len(TEXTS)]} {'x' * (i + 1)} " for i in range(40)]
        for end in range(1, 4):  # each typist types three letters of its next word, all in turn
            model.completer.suggest_many([(context + "per"[:end], 3) for context in contexts])
        assert sorted(computed) == sorted(contexts)
    finally:
        model.shutdown()
