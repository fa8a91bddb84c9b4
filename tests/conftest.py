"""Shared fixtures: an environment that leaves the user's files alone, tiny corpora, tiny models trained
once per session. Helpers that are not fixtures are in helpers.py."""

import os

# Read when seqtext.cli (rich's console) and datasets are imported, which test modules do as they are
# collected, before any fixture runs: set here, for this process and every process a test starts.
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["NO_COLOR"] = "1"  # rich: plain text in CliRunner output
os.environ["COLUMNS"] = "120"  # rich: stable wrapping of help and tables

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import PHRASES, SENTENCES, TINY_MODEL, TINY_TRAIN, interrupt_at, train_tiny

import seqtext
from seqtext.config import LMConfig, TrainConfig


@pytest.fixture(scope="session", autouse=True)
def hermetic_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The user's caches and typed words are never read or written: Hugging Face's cache and the user's data
    directory are in the session's temporary folder, for every fixture (session-scoped ones too, which run
    before any test's own fixtures), every test and every process they start."""
    base = tmp_path_factory.getbasetemp()
    env = {"HF_HOME": str(base / "hf"), "XDG_DATA_HOME": str(base / "data")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run where torch sees a CUDA GPU and skip, saying why, everywhere else."""
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))


@pytest.fixture(autouse=True)
def _one_thread():
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
            data=str(PHRASES),
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


@pytest.fixture(scope="session")
def memory_run(lines_file, tmp_path_factory) -> Path:
    """keyboard_run with --memory, each bucket's share fitted on a few words, and shares of their own for
    the words the model lacks (set in config.json: tiny data fits none)."""
    from seqtext.keyboard import building
    from seqtext.runs.loading import load
    from seqtext.runs.saving import update_model_config

    out = tmp_path_factory.mktemp("runs") / "memory"
    corpus = tmp_path_factory.mktemp("corpus") / "frases.txt"
    corpus.write_text(lines_file.read_text(encoding="utf-8") + "Voy al parque con mi periquito.\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(building, "MIN_BUCKET", 3)
        train_tiny(corpus, out, {"level": "word", "max_vocab": 30}, ngram=True, memory=True)
    config = load(out).config
    oov = tuple(round((w + 0.5) % 1, 2) for w in config.ngram_weights)  # each differs from the order's share
    update_model_config(out, replace(config, ngram_oov_weights=oov))
    return out
