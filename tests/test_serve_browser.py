"""The page of `seqtext serve` in a real browser: Debian's chromium, headless, driven by playwright.

Types "Voy al parque con mi per" into the page served by a real `seqtext serve` subprocess, sees
"perro" among the suggestions, takes it with Tab, sees a sentiment label appear and a generation
stream in. Types a sentence with suggestions from the server and from the keyboard in the page
(static/keyboard.js, from the model's export) and sees the same suggestions at every keystroke; the
page measures its per-keystroke latency, which the test prints (reported, not asserted; a real
keyboard's figures come from scripts/bench_page.py). Skips where chromium or playwright is missing;
`.ci/run` installs chromium. Set SEQTEXT_SCREENSHOT=docs/serve-page.png to refresh the README's screenshot.
"""

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT
from serve_harness import CHROMIUM, chromium_page, in_page_latency, serving, type_keystroke_by_keystroke

if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/run installs it)", allow_module_level=True)
pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install -e '.[dev]'")

LABELS = ("negative", "somewhat negative", "neutral", "somewhat positive", "positive")


@pytest.fixture
def browser_page(tmp_path):
    """A page in a fresh headless chromium with an empty profile, closed however the test ends."""
    with chromium_page(tmp_path / "profile") as page:
        yield page


def test_typing_in_the_page_suggests_perro_and_tab_takes_it(browser_page, word_run, sentiment_run, tmp_path):
    page, expect = browser_page, sync_api.expect
    with serving([f"es={word_run}", f"sentiment={sentiment_run}"], "--no-access-log") as server:
        page.goto(server.url)
        expect(page.locator("#status")).to_contain_text("2 models")
        text = page.locator("#text")
        text.press_sequentially("Voy al parque con mi per", delay=15)
        expect(page.locator("#suggestions button", has_text="perro")).to_be_visible()
        page.keyboard.press("Tab")
        expect(text).to_have_value("Voy al parque con mi perro ")
        expect(text).to_be_focused()  # Tab took the word instead of moving the focus away
        expect(page.locator("#sentiment-label")).to_have_text(re.compile(f"^({'|'.join(LABELS)})$"))
        expect(page.locator("#sentiment-bars .bar")).to_have_count(5)

        page.locator("#prompt").fill("Voy al parque con mi")
        page.locator("#temperature").fill("0.5")
        page.locator("#generate").click()
        expect(page.locator("#generated .prompt")).to_have_text("Voy al parque con mi")
        expect(page.locator("#generated span").nth(1)).not_to_be_empty()
        expect(page.locator("#stop")).to_be_hidden()  # the stream ended
        shot = tmp_path / "serve-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("SEQTEXT_SCREENSHOT"):
            shutil.copyfile(shot, ROOT / os.environ["SEQTEXT_SCREENSHOT"])
        assert "ERROR" not in server.stderr()

        if importlib.util.find_spec("fastapi_offline"):  # the serve extra: Swagger UI's files are local
            page.goto(server.url + "docs")  # the OpenAPI page renders with no network beyond this server
            expect(page.get_by_text("/v1/complete", exact=True)).to_be_visible()


def test_a_panel_whose_model_kind_is_not_loaded_says_so(browser_page, sentiment_run):
    page, expect = browser_page, sync_api.expect
    with serving([str(sentiment_run)], "--no-access-log") as server:
        page.goto(server.url)
        expect(page.locator("#status")).to_contain_text("1 model")
        for panel in ("#keyboard-panel", "#generate-panel"):
            expect(page.locator(f"{panel} .unavailable")).to_be_visible()
            expect(page.locator(f"{panel} .unavailable")).to_contain_text("No language model is loaded")
        expect(page.locator("#sentiment-panel .unavailable")).to_be_hidden()
        page.locator("#text").fill("a warm , funny and deeply moving film")
        expect(page.locator("#sentiment-label")).to_have_text(re.compile(f"^({'|'.join(LABELS)})$"))


def test_the_page_asks_for_the_api_key(browser_page, word_run):
    page, expect = browser_page, sync_api.expect
    with serving([f"es={word_run}"], "--api-key", "k-123", "--no-access-log") as server:
        page.goto(server.url)
        expect(page.locator("#key-form")).to_be_visible()
        page.locator("#key").fill("k-123")
        page.locator("#key-form button").click()
        expect(page.locator("#status")).to_contain_text("1 model")
        page.locator("#text").press_sequentially("Voy al parque con mi per", delay=5)
        expect(page.locator("#suggestions button", has_text="perro")).to_be_visible()


def test_the_keyboard_in_the_page_suggests_what_the_server_suggests(browser_page, keyboard_run, record_property):
    sentence = "Voy al parque con mi periquito. Mañana el nin"  # the n-gram's own word, an unseen one, folding
    page = browser_page
    with serving([f"kbd={keyboard_run}"], "--no-access-log") as server:
        page.goto(server.url)
        sync_api.expect(page.locator("#status")).to_contain_text("1 model")
        from_server = type_keystroke_by_keystroke(page, sentence, "server")
        in_page = type_keystroke_by_keystroke(page, sentence, "page")
        sync_api.expect(page.locator("#page-status")).to_contain_text("keystrokes, p50")  # its own figures, shown
        for n, (want, got) in enumerate(zip(from_server, in_page, strict=True), start=1):
            assert [w for w, _ in got] == [w for w, _ in want], sentence[:n]
            assert [p for _, p in got] == pytest.approx([p for _, p in want], abs=1e-4), sentence[:n]
        assert any("periquito" in [w for w, _ in found] for found in in_page)
        assert "ERROR" not in server.stderr()
        report_latency(page, "tiny keyboard of the tests", record_property)


def report_latency(page, model: str, record_property) -> None:
    """The page's own per-keystroke latency figures, printed and recorded (reported, never asserted)."""
    report = {"model": model, **in_page_latency(page)}
    record_property("in_page_latency", json.dumps(report))
    print("in-page keystroke latency (this machine, as loaded as it is):", json.dumps(report))
