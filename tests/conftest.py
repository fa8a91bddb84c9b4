"""Shared fixtures: offline environment, tiny corpora, tiny models trained once per session."""

import os

# Set before anything imports datasets (it reads these at import time).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("NO_COLOR", "1")  # rich: plain text in CliRunner output
os.environ.setdefault("COLUMNS", "120")  # rich: stable wrapping of help and tables

from pathlib import Path

import pytest
import torch

import seqtext
from seqtext.config import LMConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = ROOT / "tests" / "fixtures"  # run directories written by earlier versions
TINY_MODEL = {"embed_dim": 16, "hidden_dim": 32, "layers": 1, "dropout": 0.0}
TINY_TRAIN = {"bptt": 16, "batch_size": 8, "epochs": 3, "precision": "fp32", "device": "cpu"}
SENTENCES = [
    "Voy al parque con mi perro.",
    "Mi perro come mucho.",
    "Hoy hace sol en el parque.",
    "¿Quedamos mañana a las ocho?",
    "El niño juega con el perro.",
    "Mañana voy al trabajo en bici.",
]

needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (present in CI)")


@pytest.fixture(autouse=True)
def _hermetic(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.getbasetemp() / "hf"))  # never the user's cache
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "data"))  # nor what they typed
    torch.set_num_threads(1)  # faster for tiny models, and stable numerics


@pytest.fixture(scope="session")
def lines_file(tmp_path_factory) -> Path:
    """A one-sentence-per-line Spanish corpus, 60 lines."""
    path = tmp_path_factory.mktemp("corpus") / "frases.txt"
    path.write_text("".join(s + "\n" for s in SENTENCES * 10), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prose_file(tmp_path_factory) -> Path:
    """Wrapped prose with blank lines between paragraphs (read as a stream)."""
    paragraph = (
        "En un lugar de la Mancha, de cuyo nombre no quiero\nacordarme, no ha mucho tiempo que vivía un\n"
        "hidalgo de los de lanza en astillero\n\n"
    )
    path = tmp_path_factory.mktemp("corpus") / "prosa.txt"
    path.write_text(paragraph * 12, encoding="utf-8")
    return path


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a run directory, to damage or edit without touching the session's fixture."""
    to.mkdir()
    for f in run.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


def train_tiny(data: Path, out: Path, model: dict | None = None, **train) -> Path:
    seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, **(model or {})}),
        TrainConfig(data=str(data), out=str(out), **{**TINY_TRAIN, **train}),
    )
    return out


@pytest.fixture(scope="session")
def char_run(lines_file, tmp_path_factory) -> Path:
    """A char-level LSTM line model trained once per session (about a second)."""
    return train_tiny(lines_file, tmp_path_factory.mktemp("runs") / "char")


@pytest.fixture(scope="session")
def word_run(lines_file, tmp_path_factory) -> Path:
    return train_tiny(lines_file, tmp_path_factory.mktemp("runs") / "word", {"level": "word"})


@pytest.fixture(scope="session")
def prose_run(prose_file, tmp_path_factory) -> Path:
    return train_tiny(prose_file, tmp_path_factory.mktemp("runs") / "prose", {"cell": "gru"})


def interrupt_at(step: int):
    """A training callback that presses Ctrl-C (SIGINT to this process) after `step` optimizer steps."""
    import signal

    def callback(event):
        if event.kind == "step" and event.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return callback


@pytest.fixture(scope="session")
def interrupted_run(lines_file, tmp_path_factory) -> Path:
    """A char-level run stopped by Ctrl-C at step 3 (after one evaluation): it can be resumed."""
    from seqtext.errors import TrainingStopped

    out = tmp_path_factory.mktemp("runs") / "interrupted"
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(
            LMConfig(**TINY_MODEL),
            TrainConfig(data=str(lines_file), out=str(out), **{**TINY_TRAIN, "eval_every": 2}),
            callback=interrupt_at(3),
        )
    assert (out / "trainer_state.json").is_file()
    return out


@pytest.fixture(scope="session")
def sentiment_run(tmp_path_factory) -> Path:
    """A tiny biLSTM classifier on the shipped labelled phrases (about a second), for tests beyond the classifier's."""
    from seqtext.config import ClassifierConfig, ClassifierTrainConfig

    out = tmp_path_factory.mktemp("runs") / "sentiment"
    seqtext.train_classifier(
        ClassifierConfig(embed_dim=16, hidden_dim=16, dropout=0.0),
        ClassifierTrainConfig(
            data=str(ROOT / "corpora" / "frases_sentimiento.tsv"),
            out=str(out),
            batch_size=32,
            epochs=3,
            precision="fp32",
            device="cpu",
        ),
    )
    return out


@pytest.fixture(scope="session")
def keyboard_run(lines_file, tmp_path_factory) -> Path:
    """A word-level keyboard with its n-gram; the model's vocabulary (max_vocab 30) lacks words the n-gram has."""
    out = tmp_path_factory.mktemp("runs") / "keyboard"
    corpus = tmp_path_factory.mktemp("corpus") / "frases.txt"
    corpus.write_text(lines_file.read_text(encoding="utf-8") + "Voy al parque con mi periquito.\n", encoding="utf-8")
    return train_tiny(corpus, out, {"level": "word", "max_vocab": 30}, ngram=True)
