"""The keyboard's lexicon (--lexicon): words no model of the run knows, offered by their frequency in the
language; its share chosen on the validation text, its file checked, old runs unchanged."""

import builtins
import json

import pytest
import torch
from helpers import TINY_MODEL, TINY_TRAIN, assert_clean_error, copy_run, invoke

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError, CorpusError
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.lexicon import LEXICON_FILE, Lexicon, load_lexicon, make_lexicon, read_word_list, save_lexicon
from seqtext.keyboard.words import WordIndex, fold

WORD_LIST = "perro\t900\nperiquito\t40\nservilleta\t30\nservicio\t20\nzanahoria\n"
BUILT: dict = {}


@pytest.fixture(scope="module")
def lexicon_run(lines_file, tmp_path_factory):
    """A tiny word-level run with an n-gram and a lexicon; the validation text holds words only the lexicon knows."""
    folder = tmp_path_factory.mktemp("lexicon")
    words = folder / "palabras.tsv"
    words.write_text(WORD_LIST, encoding="utf-8")
    valid = folder / "valid.txt"
    valid.write_text("Voy al parque con mi periquito.\nMi perro come una servilleta.\n" * 3, encoding="utf-8")
    result = seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, "level": "word"}),
        TrainConfig(
            data=str(lines_file),
            valid=str(valid),
            out=str(folder / "run"),
            ngram=True,
            lexicon=str(words),
            **TINY_TRAIN,
        ),
    )
    BUILT.update(result.extras["ngram"])
    return folder / "run"


def test_word_list_counts_and_ranks(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("uno\t3\ndos\n\ntres\t1.5\n", encoding="utf-8")
    assert read_word_list(path) == {"uno": 3.0, "dos": 0.5, "tres": 1.5}  # no count: 1 / its line number
    lexicon = make_lexicon(str(path), 2, known={"uno"})
    assert lexicon.words == ["tres", "dos"]  # the known word left out, the two most frequent of the rest
    assert torch.allclose(lexicon.probs, torch.tensor([0.75, 0.25]))


def test_training_keeps_the_new_words_and_chooses_their_share(lexicon_run):
    lexicon = load_lexicon(lexicon_run)
    assert lexicon is not None and set(lexicon.words) == {"periquito", "servilleta", "servicio", "zanahoria"}
    weight = seqtext.load(lexicon_run).config.lexicon_weight
    assert 0 < weight < 1 and BUILT["lexicon_weight"] == weight
    assert BUILT["lexicon_words"] == 6, "periquito and servilleta, three times each, are known only to the lexicon"
    assert json.loads((lexicon_run / "config.json").read_text())["model"]["lexicon_weight"] == weight


def test_words_no_model_knows_are_offered(lexicon_run):
    completer = Completer(lexicon_run)
    assert "servilleta" in [c.word for c in completer.suggest("Mi perro come una servi", k=3)]
    assert [c.word for c in completer.suggest("Voy al parque con mi periq", k=3)] == ["periquito"]
    assert [c.word for c in completer.suggest("Mi perro come una Zana", k=3)] == ["Zanahoria"]  # the typed case
    mixer = completer.mixer
    dist = mixer.mix(completer.reader.read("Mi perro come").dist, "Mi perro come", False)
    assert float(dist[mixer.lexicon > 0].sum()) == pytest.approx(mixer.lexicon_weight, rel=1e-4)


def test_the_lexicon_words_ranked_apart_give_the_suggestions_of_one_index(lexicon_run):
    """A keystroke ranks the words some model knows (mixed after the text) and the lexicon's (whose
    probabilities never change, so their best words per prefix are kept) apart and merges them: the same
    words and probabilities as one index over the whole mix, ties included."""
    fast, whole = Completer(lexicon_run), Completer(lexicon_run)
    stems = ["per", "ser", "mi", "com", "zan", "ni", "Pa"]
    words = [stem + end for stem in stems for end in ("a", "ito", "ón", "illas", "ucho", "ísimo")]
    probs = torch.tensor([1.0 + (i % 5) for i in range(len(words))])  # many equal probabilities
    lexicon = Lexicon(words, probs / probs.sum(), "test")
    for completer in (fast, whole):
        mixer = completer.mixer
        completer.use_ngram(mixer.ngram, mixer.weights, lexicon, 0.4, mixer.oov_weights)
    assert fast.mixer.known < len(fast.mixer.words) and fast.fixed_words is not None
    known_mix, lexicon_probs = whole.mixer.mix_known, whole.mixer.lexicon_probs
    whole.mixer.mix_known = lambda *args: torch.cat([known_mix(*args), lexicon_probs])  # type: ignore[method-assign]
    whole.fixed_words = None
    every = list(enumerate(whole.mixer.words))
    whole.exact = dict.fromkeys((False, True), WordIndex([(w, w, i) for i, w in every]))
    whole.folded = dict.fromkeys((False, True), WordIndex([(fold(w), w, i) for i, w in every]))
    for typed in ["Mi ", "Mi perro come una ", "Voy al parque con mi pe", "Mi ser", "mi ni", "Pa", "NI", "Mi perro"]:
        for k in (1, 3, 8):
            got, want = fast.suggest(typed, k), whole.suggest(typed, k)
            assert [c.word for c in got] == [c.word for c in want], (typed, k)
            assert [c.prob for c in got] == pytest.approx([c.prob for c in want], rel=1e-6, abs=1e-12)
    assert fast.suggest("Voy con mi perit", 3)[0].word == "perito"  # a lexicon word found, its best kept


def test_without_the_file_the_keyboard_types_as_before(lexicon_run, tmp_path):
    run = copy_run(lexicon_run, tmp_path / "run")
    (run / LEXICON_FILE).unlink()
    completer = Completer(run)
    assert completer.mixer is not None and completer.mixer.lexicon_weight == 0
    assert "servilleta" not in [c.word for c in completer.suggest("Mi perro come una servi", k=3)]


def test_old_runs_without_the_field_give_the_same_suggestions(ngram_run_files, tmp_path):
    run = copy_run(ngram_run_files, tmp_path / "old")
    config = json.loads((run / "config.json").read_text())
    config["model"].pop("lexicon_weight", None)  # as a run saved before the field existed
    (run / "config.json").write_text(json.dumps(config))
    texts = ["Voy al parque con mi pe", "Mi perro ", "¿Qued"]
    assert [Completer(run).suggest(t) for t in texts] == [Completer(ngram_run_files).suggest(t) for t in texts]
    assert seqtext.load(run).config.lexicon_weight == 0.0


@pytest.fixture(scope="module")
def ngram_run_files(lines_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ngram"
    seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, "level": "word"}),
        TrainConfig(data=str(lines_file), out=str(out), ngram=True, **TINY_TRAIN),
    )
    return out


def _damage_header(run):
    lexicon = load_lexicon(run)
    save_lexicon(run, Lexicon(lexicon.words, lexicon.probs, lexicon.source))
    raw = (run / LEXICON_FILE).read_bytes()
    (run / LEXICON_FILE).write_bytes(raw.replace(b'\\"format\\": 1', b'\\"format\\": 7'))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / LEXICON_FILE).write_bytes((run / LEXICON_FILE).read_bytes()[:-9]), "lexicon.safetensors"),
        (lambda run: save_lexicon(run, Lexicon(["a", "a"], torch.tensor([0.5, 0.5]), "x")), "distinct words"),
        (lambda run: save_lexicon(run, Lexicon(["a", "b c"], torch.tensor([0.5, 0.5]), "x")), "distinct words"),
        (lambda run: save_lexicon(run, Lexicon(["a", "b"], torch.tensor([0.5, 0.9]), "x")), "sum to 1"),
        (lambda run: save_lexicon(run, Lexicon(["a", "b"], torch.tensor([1.5, -0.5]), "x")), "sum to 1"),
        (_damage_header, "newer than this seqtext"),
    ],
)
def test_a_damaged_lexicon_is_one_clear_error(lexicon_run, tmp_path, damage, message):
    run = copy_run(lexicon_run, tmp_path / "run")
    damage(run)
    with pytest.raises(CheckpointError, match=message) as caught:
        Completer(run)
    assert "\n" not in str(caught.value) and LEXICON_FILE in str(caught.value)


def test_bad_options_and_word_lists(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--ngram"):
        seqtext.train_lm(LMConfig(level="word"), TrainConfig(data="x", out=str(tmp_path / "o"), lexicon="wordfreq:es"))
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="--lexicon-words"):
        TrainConfig(data="x", ngram=True, lexicon="wordfreq:es", lexicon_words=0)
    with pytest.raises(ConfigError, match="--lexicon-weight"):
        LMConfig(level="word", lexicon_weight=1.0)
    bad = tmp_path / "bad.tsv"
    bad.write_text("uno\t3\ndos\tmuchos\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad.tsv, line 2: the count"):
        make_lexicon(str(bad), 10, set())
    with pytest.raises(ConfigError, match="no such file"):
        make_lexicon(str(tmp_path / "missing.txt"), 10, set())
    (tmp_path / "known.txt").write_text("perro\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no word in it is new"):
        make_lexicon(str(tmp_path / "known.txt"), 10, {"perro"})
    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (
            (_ for _ in ()).throw(ImportError(name)) if name == "wordfreq" else real_import(name, *a, **k)
        ),
    )
    with pytest.raises(ConfigError, match=r"pip install 'seqtext\[lexicon\]'"):
        make_lexicon("wordfreq:es", 10, set())


def test_wordfreq_lists_a_language():
    pytest.importorskip("wordfreq", reason="the optional lexicon extra (pip install 'seqtext[lexicon]')")
    lexicon = make_lexicon("wordfreq:es", 1000, known={"de"})
    assert len(lexicon.words) == 1000 and "de" not in lexicon.words and "que" in lexicon.words
    with pytest.raises(ConfigError, match="no word list for language"):
        make_lexicon("wordfreq:xx", 10, set())


def test_cli_flags_end_to_end(lines_file, tmp_path):
    words = tmp_path / "palabras.txt"
    words.write_text(WORD_LIST, encoding="utf-8")
    out = tmp_path / "kb"
    args = ["train", "lm", lines_file, "--out", out, "--preset", "keyboard", "--embed-dim", "16"]
    args += ["--hidden-dim", "32", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--char-input"]
    result = invoke(*args, "--lexicon", words, "--lexicon-words", "3")
    assert result.exit_code == 0, result.output
    lm = seqtext.load(out)
    assert lm.config.char_input and len(load_lexicon(out).words) == 3
    assert json.loads((out / "train_config.json").read_text())["lexicon"] == str(words)
    refused = invoke(*args[:4], tmp_path / "no", *args[5:], "--no-ngram", "--lexicon", words)
    assert_clean_error(refused, "--lexicon joins the keyboard's mix")
    assert not (tmp_path / "no").exists()
