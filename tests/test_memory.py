"""The keyboard's context-dependent mix: the n-gram's share for the words the model lacks (ngram_oov_weights)
and the sentence memory (--memory): shapes, the saved file and its bad-input cases, old runs unchanged."""

import json

import pytest
import torch
from helpers import copy_run

import seqtext
from seqtext.config import ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard import building
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.memory import MEMORY_FILE, SentenceMemory, bucket, build_memory, save_memory, vocabulary
from seqtext.keyboard.ngram import build_ngram
from seqtext.keyboard.ngramfile import load_ngram
from seqtext.tokenizer import UNK_ID

LINES = ["Tom no sabe nadar.", "Tom no sabe nadar.", "Tom no sabe cocinar.", "Tom no es alto.", "Ana come."]


def test_the_lines_that_begin_as_the_typed_one_give_the_next_words():
    vocab = vocabulary(LINES)
    assert vocab == build_ngram(LINES, 2).vocab  # the n-gram's ids: the file holds no words of its own
    memory = build_memory(LINES, vocab)
    assert len(memory.lines) == 4 and sorted(memory.counts) == [1, 1, 1, 2]  # the repeated line once, counted twice
    found = memory.next_tokens("Tom no sabe ")
    assert found is not None
    where, total, follow = found
    assert total == 3 and {vocab[i]: n for i, n in follow.items()} == {"nadar": 2, "cocinar": 1}
    assert where == bucket(3, 3) == 1 * 3 + 1  # three tokens matched (bucket 3), three lines (2-4)
    assert memory.next_tokens("Tom no ")[1] == 4
    assert memory.next_tokens("Tom ") is None, "one token is the n-gram's to judge"
    assert memory.next_tokens("Luis no ") is None and memory.next_tokens("Ana no ") is None
    assert bucket(2, 1) == 0 and bucket(9, 100) == 11 and bucket(5, 4) == 10


def test_training_chooses_the_shares_and_saves_the_memory(memory_run):
    config = seqtext.load(memory_run).config
    assert len(config.memory_weights) == 12 and any(config.memory_weights) and (memory_run / MEMORY_FILE).is_file()
    assert len(config.ngram_oov_weights) == len(config.ngram_weights)
    saved = json.loads((memory_run / "config.json").read_text())["model"]
    assert tuple(saved["memory_weights"]) == config.memory_weights
    completer = Completer(memory_run)
    assert completer.mixer.memory is not None
    assert completer.suggest("Mi perro c", 1)[0].word == "come"  # "Mi perro come mucho." ten times


def test_the_fit_reads_whole_lines_and_holds_the_rest_out():
    lines = ["uno dos tres", "cuatro cinco", "seis"]
    assert building.fitted_lines(lines, words=4) == 2 and building.fitted_lines(lines, words=99) == 3


def test_the_memory_joins_the_mix_where_a_line_begins_so(memory_run):
    completer, plain = Completer(memory_run), Completer(memory_run)
    plain.mixer.memory = None
    probs = completer.reader.read("Mi perro").dist
    share, where, values = completer.mixer.memory_part("Mi perro ")
    remembered = torch.zeros(len(completer.mixer.words)).index_add(0, where, values)
    want = (1 - share) * plain.mixer.mix(probs, "Mi perro ", True) + share * remembered
    assert torch.allclose(completer.mixer.mix(probs, "Mi perro ", True), want)
    assert completer.mixer.memory_part("Zorbaxa dice ") is None  # no training line begins so


def test_the_words_the_model_lacks_may_take_a_share_of_their_own(memory_run):
    completer = Completer(memory_run)
    lm, text = completer.lm, "Voy al parque con mi "
    ngram, order = completer.mixer.ngram, len(lm.config.ngram_weights)
    probs = completer.reader.read(text[:-1]).dist
    completer.use_ngram(ngram, lm.config.ngram_weights)
    plain = completer.mixer.mix(probs, text, True)
    periquito = completer.mixer.words.index("periquito")
    weight = lm.config.ngram_weights[completer.mixer.ngram_part(text)[1] - 1]  # the plain share there
    for oov in (0.01, 0.99):
        completer.use_ngram(ngram, lm.config.ngram_weights, oov_weights=(oov,) * order)
        lacks = completer.mixer.lacks[True]
        assert bool(lacks[periquito]) and not bool(lacks.all())
        dist = completer.mixer.mix(probs, text, True)
        ratio = dist[~lacks] / plain[~lacks]  # every word the model knows: divided by one normaliser
        assert torch.allclose(ratio, ratio[:1].expand_as(ratio), rtol=1e-4)
        gap = float(completer.mixer.ngram_part(text)[0][lacks].sum()) - float(probs[UNK_ID])
        grows = (oov - weight) * gap > 0  # a larger share where the n-gram gives such words more than <unk> has
        assert (float(dist[periquito]) > float(plain[periquito])) == grows


def test_old_runs_without_the_fields_type_as_before(memory_run, tmp_path):
    run = copy_run(memory_run, tmp_path / "old")
    config = json.loads((run / "config.json").read_text())
    for name in ("ngram_oov_weights", "memory_weights"):
        config["model"].pop(name)  # as a run saved before the fields existed
    (run / "config.json").write_text(json.dumps(config))
    (run / MEMORY_FILE).unlink()
    completer = Completer(run)
    assert completer.mixer.memory is None and completer.mixer.oov_weights == completer.mixer.weights
    reference = Completer(memory_run)
    reference.use_ngram(reference.mixer.ngram, reference.mixer.weights)  # the plain mix of the same weights
    for typed in ("Voy al parque con mi pe", "Mi perro ", "¿Qued"):
        assert completer.suggest(typed) == reference.suggest(typed)


def _memory_with(run, lines, counts):
    vocab = load_ngram(run, seqtext.load(run).tokenizer).vocab
    save_memory(run, SentenceMemory(vocab, lines, counts))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / MEMORY_FILE).write_bytes((run / MEMORY_FILE).read_bytes()[:-9]), "memory.safetensors"),
        (lambda run: (run / MEMORY_FILE).unlink(), "memory_weights are set but the run has no memory.safetensors"),
        (lambda run: save_memory(run, build_memory(["otra cosa"], vocabulary(["otra cosa"]))), "another n-gram"),
        (lambda run: _memory_with(run, [(3, 4), (1, 2)], [1, 1]), "not sorted and distinct"),
        (lambda run: _memory_with(run, [(1, 10**6)], [1]), "outside the n-gram's vocabulary"),
        (lambda run: _memory_with(run, [(1, 2)], [0]), "count is below 1"),
    ],
)
def test_a_damaged_memory_is_one_clear_error(memory_run, tmp_path, damage, message):
    run = copy_run(memory_run, tmp_path / "run")
    damage(run)
    with pytest.raises(CheckpointError, match=message) as caught:
        Completer(run)
    assert "\n" not in str(caught.value) and MEMORY_FILE in str(caught.value)
    assert Completer(run, ngram=False).suggest("Mi ", 1)  # --no-ngram still types


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"memory_weights": [0.5] * 11}, "memory_weights"),
        ({"memory_weights": [1.5] * 12}, "memory_weights"),
        ({"ngram_oov_weights": [0.5]}, "ngram_oov_weights"),
        ({"ngram_oov_weights": [-0.1] * 3}, "ngram_oov_weights"),
    ],
)
def test_bad_weights_in_config_json_name_the_field(memory_run, tmp_path, fields, message):
    run = copy_run(memory_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"].update(fields)
    if "ngram_oov_weights" in fields:
        config["model"]["ngram_weights"] = [0.5, 0.5, 0.5]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as caught:
        seqtext.load(run)
    assert "config.json" in str(caught.value)


def test_memory_needs_the_ngram_and_a_language_model(tmp_path):
    with pytest.raises(ConfigError, match="--memory joins the keyboard's mix, built by --ngram"):
        seqtext.train_lm(LMConfig(level="word"), TrainConfig(data="x", out=str(tmp_path / "o"), memory=True))
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="memory"):
        ClassifierTrainConfig(data="x", out="o", memory=True)
