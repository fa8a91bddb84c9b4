"""The export files `seqtext serve` hands its page for the in-page keyboard (GET /v1/models/NAME/export/FILE),
and the in-page keyboard itself (static/keyboard.js) run in Node against seqtext's suggestions where Node is
installed; the same keyboard in Chromium, typed both ways, is in test_serve_browser.py."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import KEYBOARD_TEXTS

pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

import seqtext
from seqtext.export import keyboard_files
from seqtext.export.files import weights_of
from seqtext.keyboard.completion import Completer
from seqtext.runs.checks import load_tensors, tensor_metadata
from seqtext.serve import ServeConfig, load_runs
from seqtext.serve.app import create_app

STATIC = Path(seqtext.__file__).parent / "serve" / "static"
TYPED = [
    *KEYBOARD_TEXTS,
    "PE",  # shown in the typist's case
    "En un lugar de la Man",
    "primera línea\nVoy al p",
    "Mi perro c",  # a line that training lines begin (the memory's)
]


@pytest.fixture(scope="module")
def client(keyboard_run, word_run, sentiment_run):
    hosted = load_runs([f"kbd={keyboard_run}", f"es={word_run}", f"sentiment={sentiment_run}"])
    with TestClient(create_app(hosted, ServeConfig()), base_url="http://localhost") as c:
        yield c


def test_a_keyboard_s_export_is_served_as_seqtext_export_writes_it(client, keyboard_run, tmp_path):
    described = client.get("/v1/models/kbd/export/keyboard.json").json()
    assert described["format"] == "seqtext-export" and described["ngram"]["file"] == "ngram.safetensors"
    assert described["ngram"]["weights"] == list(seqtext.load(keyboard_run).config.ngram_weights)
    assert "lm_step.onnx" not in described["files"]  # the page runs its own step: no ONNX graphs
    vocab = client.get("/v1/models/kbd/export/vocab.json").json()
    assert vocab["tokens"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    weights = client.get("/v1/models/kbd/export/weights.safetensors")
    assert weights.headers["content-type"] == "application/octet-stream"
    (tmp_path / "weights.safetensors").write_bytes(weights.content)
    served, want = load_tensors(tmp_path / "weights.safetensors"), weights_of(seqtext.load(keyboard_run))
    assert set(served) == set(want) and all(torch.equal(served[k], want[k]) for k in want)
    ngram = client.get("/v1/models/kbd/export/ngram.safetensors").content
    assert ngram == (keyboard_run / "ngram.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/v1/models/es/export/ngram.safetensors", 404, "has no ngram.safetensors"),  # a keyboard without an n-gram
        ("/v1/models/kbd/export/lm_step.onnx", 404, "no file 'lm_step.onnx'"),
        ("/v1/models/kbd/export/config.json", 404, "no file 'config.json'"),  # a run's own file: never
        ("/v1/models/kbd/export/..%2Fconfig.json", 404, "no such endpoint"),  # no path from the request
        ("/v1/models/nope/export/keyboard.json", 404, "unknown model 'nope'"),
        ("/v1/models/sentiment/export/keyboard.json", 409, "is a classifier"),
    ],
)
def test_what_is_not_a_keyboard_s_export_file_is_refused(client, path, status, words):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_two_servers_of_one_run_serve_the_same_files(client, keyboard_run, tmp_path):
    """Behind a load balancer, the page may load each file from another server: they must agree (the same
    JSON, tensors and header; a safetensors header's key order is the writer's, so not the bytes)."""
    other = create_app(load_runs([f"kbd={keyboard_run}"]), ServeConfig())
    with TestClient(other, base_url="http://localhost") as second:
        for name in ("keyboard.json", "vocab.json", "weights.safetensors", "ngram.safetensors"):
            answers = [c.get(f"/v1/models/kbd/export/{name}") for c in (client, second)]
            assert [a.status_code for a in answers] == [200, 200]
            if name.endswith(".json"):
                assert answers[0].json() == answers[1].json()
                continue
            paths = [tmp_path / f"{n}-{name}" for n in (1, 2)]
            for path, answer in zip(paths, answers, strict=True):
                path.write_bytes(answer.content)
            assert tensor_metadata(paths[0]) == tensor_metadata(paths[1])
            tensors = [load_tensors(path) for path in paths]
            assert tensors[0].keys() == tensors[1].keys()
            assert all(torch.equal(tensors[0][k], tensors[1][k]) for k in tensors[0])


def test_the_files_ask_for_the_key_like_the_rest_of_the_api(word_run):
    hosted = load_runs([f"es={word_run}"])
    with TestClient(create_app(hosted, ServeConfig(api_key="k-1")), base_url="http://localhost") as c:
        assert c.get("/v1/models/es/export/keyboard.json").status_code == 401
        ok = c.get("/v1/models/es/export/keyboard.json", headers={"Authorization": "Bearer k-1"})
        assert ok.status_code == 200 and ok.json()["level"] == "word"


NODE = shutil.which("node")
RUN_KEYBOARD = """
const fs = require("fs"), path = require("path");
const code = process.argv[2].split(",").map((file) => fs.readFileSync(file, "utf8")).join("");
eval(code + ";globalThis.load = loadPageKeyboard;");
const dir = process.argv[3], typed = JSON.parse(process.argv[4]);
const fetchFile = async (name) => {
  const b = fs.readFileSync(path.join(dir, name));
  const arrayBuffer = async () => b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
  return { json: async () => JSON.parse(b.toString("utf8")), arrayBuffer };
};
(async () => {
  const answers = {};
  for (const wasm of [true, false]) {
    const keyboard = await load(fetchFile, { wasm });
    answers[keyboard.reader.network.kernel.name] = typed.map((t) => keyboard.suggest(t, 5));
  }
  console.log(JSON.stringify(answers));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def in_page_suggestions(run: Path, folder: Path, typed: list[str]) -> dict[str, list]:
    """keyboard.js's suggestions from the run's export, computed in Node by each kernel."""
    folder.mkdir()
    for name, content in keyboard_files(seqtext.load(run)).items():
        (folder / name).write_bytes(content)
    (folder / "run.js").write_text(RUN_KEYBOARD, encoding="utf-8")
    code = f"{STATIC / 'network.js'},{STATIC / 'keyboard.js'}"  # as the page loads them
    command = [NODE, str(folder / "run.js"), code, str(folder), json.dumps(typed)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_same_suggestions(got: list[dict], want: list, typed: str) -> None:
    assert [s["word"] for s in got] == [c.word for c in want], typed
    assert [s["prob"] for s in got] == pytest.approx([c.prob for c in want], abs=1e-4), typed


@pytest.mark.skipif(
    NODE is None, reason="needs Node.js to run the page's keyboard outside a browser (apt-get install nodejs)"
)
@pytest.mark.parametrize("run", ["keyboard_run", "memory_run", "char_run", "prose_run"])
def test_the_page_s_keyboard_gives_seqtext_s_suggestions(run, request, tmp_path):
    path = request.getfixturevalue(run)
    answers = in_page_suggestions(path, tmp_path / "export", TYPED)
    assert set(answers) == {"WebAssembly SIMD", "JavaScript"}  # both kernels ran
    reference = Completer(path)
    for typed, *by_kernel in zip(TYPED, *answers.values(), strict=True):
        want = reference.suggest(typed, 5)
        for got in by_kernel:
            assert_same_suggestions(got, want, typed)
    if run == "keyboard_run":
        assert "periquito" in [s["word"] for s in answers["JavaScript"][1]]  # the n-gram's word, in the page too


@pytest.mark.skipif(
    shutil.which("wat2wasm") is None, reason="needs wat2wasm to assemble affine.wat (apt-get install wabt)"
)
def test_the_page_s_webassembly_is_its_source_assembled(tmp_path):
    subprocess.run(["wat2wasm", str(STATIC / "affine.wat"), "-o", str(tmp_path / "affine.wasm")], check=True)
    embedded = re.search(r'const AFFINE_WASM = "([^"]+)"', (STATIC / "network.js").read_text(encoding="utf-8"))
    assert embedded and base64.b64decode(embedded.group(1)) == (tmp_path / "affine.wasm").read_bytes()
