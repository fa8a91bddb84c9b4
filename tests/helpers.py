"""What the tests share besides fixtures (those are in conftest.py): paths, tiny settings, the command
line and its errors, and small builders. Imported by name: `from helpers import invoke, ROOT`."""

import os
import signal
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

import seqtext
from seqtext.cli import app
from seqtext.config import LMConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"  # run directories written by earlier versions
PHRASES = ROOT / "corpora" / "frases_sentimiento.tsv"  # the shipped labelled phrases (Kaggle format)
TINY_MODEL = {"embed_dim": 16, "hidden_dim": 32, "layers": 1, "dropout": 0.0}
TINY_TRAIN = {"bptt": 16, "batch_size": 8, "epochs": 3, "precision": "fp32", "device": "cpu"}
# The same on the command line: `seqtext train lm DATA --out OUT *TINY_LM_FLAGS` (no epoch limit: add one)
TINY_LM_FLAGS = ["--embed-dim", "16", "--hidden-dim", "32", "--layers", "1", "--dropout", "0", "--bptt", "16"]
TINY_LM_FLAGS += ["--batch-size", "8", "--precision", "fp32", "--device", "cpu"]
TINY_CLASSIFIER_FLAGS = ["--embed-dim", "16", "--hidden-dim", "16", "--batch-size", "32", "--epochs", "2"]
TINY_CLASSIFIER_FLAGS += ["--precision", "fp32", "--device", "cpu"]
# Texts typed into a keyboard (the keyboard_run fixture's) whose suggestions two implementations must agree on
KEYBOARD_TEXTS = [
    "",
    "Voy al parque con mi per",  # "periquito": a word only the n-gram knows
    "Voy al parque con mi perro ",
    "Mi perro c",
    "El nin",  # found by folding: niño
    "Hoy vi a Zorbaxa en el p",  # an unseen word read as <unk>
    "¿Quedamos mañana a las o",
    "Mañana voy al trabajo en bici. El ",
]
SENTENCES = [
    "Voy al parque con mi perro.",
    "Mi perro come mucho.",
    "Hoy hace sol en el parque.",
    "¿Quedamos mañana a las ocho?",
    "El niño juega con el perro.",
    "Mañana voy al trabajo en bici.",
]

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (present in CI)")


def invoke(*args, input=None, env=None):
    """`seqtext ARGS...` in this process (typer's CliRunner); paths and numbers may be passed as they are."""
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)


def assert_clean_error(result, text: str = "", *, after_progress: bool = False) -> str:
    """An error as the CLI must give it: exit code 1, one line on stderr that starts with "error:" and holds
    `text`, nothing on stdout, no traceback. Returns the line. The line is all of stderr, unless the error
    came once training had started (after_progress=True): then it is the last line, after the progress."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == "", result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    alone = len(lines) == 1 or (after_progress and len(errors) == 1)
    assert alone and lines[-1].startswith("error: "), f"not one error line: {result.stderr}"
    assert text in lines[-1], result.stderr
    return lines[-1]


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a run directory, to damage or edit without touching the session's fixture."""
    to.mkdir()
    for f in run.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


def train_tiny(data: Path, out: Path, model: dict | None = None, **train) -> Path:
    """A tiny language model trained on `data` into `out` (TINY_MODEL and TINY_TRAIN, overridden by the
    arguments)."""
    seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, **(model or {})}),
        TrainConfig(data=str(data), out=str(out), **{**TINY_TRAIN, **train}),
    )
    return out


def interrupt_at(step: int):
    """A training callback that presses Ctrl-C (SIGINT to this process) after `step` optimizer steps."""

    def callback(event):
        if event.kind == "step" and event.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return callback


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a valid PNG file: its signature, its IHDR chunk, and a full decode."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    from PIL import Image  # comes with matplotlib

    with Image.open(path) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.size == (width, height)
    return width, height


# The training loss becoming NaN, on purpose: options cannot make a tiny model diverge any more (--lr and
# --clip are bounded), so the loss function is wrapped. Counted in training steps (calls with gradients).
DIVERGING = """
import os
import torch
import torch.nn.functional as F

_real, _steps = F.cross_entropy, [0]


def _diverging(*args, **kwargs):
    loss = _real(*args, **kwargs)
    if torch.is_grad_enabled() and os.environ.get("RANK", "0") == os.environ.get("DIVERGING_RANK", "0"):
        _steps[0] += 1
        if _steps[0] > int(os.environ["DIVERGING_AFTER"]):
            return loss * float("nan")
    return loss


F.cross_entropy = _diverging
"""


def diverging_env(folder: Path, after: int, rank: int = 0) -> dict[str, str]:
    """The environment of processes whose training loss becomes NaN after `after` steps on process `rank`
    (a sitecustomize module that Python imports at start)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(DIVERGING, encoding="utf-8")
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "DIVERGING_AFTER": str(after), "DIVERGING_RANK": str(rank)}


def diverge_here(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """In this process: the training loss becomes NaN after `after` steps (until the test ends)."""
    import torch.nn.functional

    monkeypatch.setenv("DIVERGING_AFTER", str(after))
    monkeypatch.delenv("DIVERGING_RANK", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", torch.nn.functional.cross_entropy)  # put back after
    exec(DIVERGING, {})  # wraps torch.nn.functional.cross_entropy
