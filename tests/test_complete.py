"""Keyboard completion: the metric of specs/completion-metrics.md, the engine and its cache."""

import dataclasses
import gc
import re
import time
import weakref

import pytest
import torch
from helpers import KEYBOARD_TEXTS, SENTENCES, TINY_MODEL

import seqtext
from seqtext.config import LMConfig
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.completion import Completer, Completion, completer_for, partial_word
from seqtext.keyboard.typist import simulate_typing
from seqtext.keyboard.words import FixedWordIndex, WordIndex, fold
from seqtext.models import STEPPED_READ, RNNLanguageModel
from seqtext.tokenizer import build_word_tokenizer

WORD = re.compile(r"\w+")


def words_of(completions):
    return [c.word for c in completions]


# The metric ------------------------------------------------------------------------------------


def test_metric_reproduces_the_worked_example_of_the_spec():
    answers = {"": ["Voy"], "Voy a": ["al"], "Voy al p": ["perro"]}  # nothing useful anywhere else
    asked = []

    def stub(typed, k):
        asked.append(typed)
        return answers.get(typed, ["nada", "otra"])

    m = simulate_typing(stub, ["Voy al perro."], k=3)
    assert asked == ["", "Voy ", "Voy a", "Voy al ", "Voy al p"]
    assert (m.keystrokes, m.characters, m.words, m.calls) == (6, 13, 3, 5)
    assert m.ksr == pytest.approx(1 - 6 / 13) and round(m.ksr, 3) == 0.538
    assert m.next_word_top1 == pytest.approx(1 / 3) and m.next_word_topk == pytest.approx(1 / 3)
    figures = m.to_dict()
    assert {"ksr", "next_word_top1", "next_word_top3", "latency_ms_p50", "latency_ms_p99"} <= set(figures)


def test_metric_edge_cases():
    never = simulate_typing(lambda typed, k: [], ["¿Qué tal?", "", "   ", "a  b"], k=3)
    assert never.keystrokes == never.characters == len("¿Qué tal?") + len("a  b")  # blank lines skipped
    assert never.ksr == 0 and never.next_word_top1 == 0
    # selecting "a" types one following space for free; the second space costs a key
    always = simulate_typing(lambda typed, k: ["x", "a", "b"], ["a  b"], k=3)
    assert always.keystrokes == 3 and always.next_word_topk == 1 and always.next_word_top1 == 0
    # top-1 counts only the first suggestion; suggestions beyond k are ignored
    m = simulate_typing(lambda typed, k: ["b", "c", "a"], ["a"], k=2)
    assert (m.keystrokes, m.next_word_topk) == (1, 0)
    with pytest.raises(ConfigError, match="--k must be at least 1"):
        simulate_typing(lambda typed, k: [], ["a"], k=0)


def test_partial_word_is_the_trailing_run_of_word_characters():
    for text in ["", "Voy al per", "hola ", "¿Qué", "año_2", "x³", "٣٤", "東京", "🙂ab", "a\u0301", "perro."]:
        assert partial_word(text) == re.search(r"\w*\Z", text).group(), text


# The engine ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def word_lm(word_run):
    return seqtext.load(word_run)


@pytest.fixture(scope="module")
def char_lm(char_run):
    return seqtext.load(char_run)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_model_read_matches_forward(cell, layers):
    config = LMConfig(
        level="word", cell=cell, layers=layers, embed_dim=12, hidden_dim=16, tie_weights=True, vocab_size=40
    )
    model = RNNLanguageModel(config).eval()
    long = STEPPED_READ + 3  # read by the fused kernel, in chunks; shorter reads go cell step by cell step
    ids = torch.randint(4, 40, (3, long + 3), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full, _ = model(ids)
        logits, state = model.read(ids[:, :long], chunk=4)  # chunked read of a prefix
        logits, state = model.read(ids[:, long : long + 2], state)  # two tokens ("calle" + ".")
        logits, state = model.read(ids[:, long + 2 :], state)  # then a single step (the per-keystroke path)
        first, _ = model.read(ids[:, :1])
        stepped, _ = model.read(ids[:, :3])
    assert torch.allclose(logits, full[:, -1], atol=1e-5) and torch.allclose(first, full[:, 0], atol=1e-5)
    assert torch.allclose(stepped, full[:, 2], atol=1e-5)


def test_suggests_perro_for_the_readme_example(word_lm):
    suggestions = seqtext.complete(word_lm, "Voy al parque con mi per", k=3)
    assert suggestions[0].word == "perro"
    assert all(isinstance(s, Completion) and 0 < s.prob <= 1 for s in suggestions)


@pytest.mark.parametrize("typed", ["", "Voy al parque con ", "Mi p", "¿", "Hoy hace sol en el parque. "])
@pytest.mark.parametrize("level", ["word", "char"])
def test_count_order_and_whole_words(word_lm, char_lm, typed, level):
    lm = word_lm if level == "word" else char_lm
    partial = re.search(r"\w*\Z", typed).group()
    for k in (1, 3, 8):
        suggestions = seqtext.complete(lm, typed, k=k)
        assert 1 <= len(suggestions) <= k
        found = words_of(suggestions)
        assert len(set(found)) == len(found)
        assert all(WORD.fullmatch(w) for w in found), found  # never punctuation, spaces or <eos>
        assert all(w.startswith(partial) and w != partial for w in found), found
        if level == "char" or not partial:  # exact matches only: best first by probability
            probs = [s.prob for s in suggestions]
            assert probs == sorted(probs, reverse=True)
    assert seqtext.complete(lm, typed, k=1)[0] == seqtext.complete(lm, typed, k=3)[0]


def test_word_model_never_suggests_special_or_punctuation_tokens(word_lm):
    found = words_of(seqtext.complete(word_lm, "Mi perro come mucho ", k=200))
    assert found and all(WORD.fullmatch(w) for w in found)
    assert not {"<unk>", "<eos>", "<bos>", "<pad>"} & set(found)


def typing_session(text):
    """Every keystroke of typing `text`, then two backspaces, then an edit in the middle."""
    steps = [text[:i] for i in range(len(text) + 1)]
    steps += [text[:-1], text[:-2], text.replace("mi", "tu", 1), text.replace("parque", "parque  ", 1)]
    return [*steps, text + " ", "", text]


@pytest.mark.parametrize("level", ["word", "char"])
def test_incremental_cache_gives_the_from_scratch_results(word_lm, char_lm, level):
    lm = word_lm if level == "word" else char_lm
    incremental = Completer(lm, cache_size=4)
    for typed in typing_session("Voy al parque, con mi perro. ¿Quedamos mañana? Mi pe"):
        fresh = Completer(lm).suggest(typed, 3)
        again = incremental.suggest(typed, 3)
        assert words_of(again) == words_of(fresh), typed
        assert [s.prob for s in again] == pytest.approx([s.prob for s in fresh], rel=1e-4), typed


def count_reads(completer, monkeypatch):
    """The tokens of each model call from now on (a batch of rows counts its longest row)."""
    tokens = []
    model = completer.reader.steps  # the model, or its int8 steps (keyboard/int8.py)
    read, read_rows = model.read, model.read_rows
    monkeypatch.setattr(model, "read", lambda ids, state=None: tokens.append(ids.numel()) or read(ids, state))
    monkeypatch.setattr(model, "read_rows", lambda rows, state: tokens.append(len(rows[0])) or read_rows(rows, state))
    return tokens


@pytest.mark.parametrize("level", ["word", "char"])
def test_each_keystroke_reads_only_the_new_text(word_lm, char_lm, level, monkeypatch):
    completer = Completer(word_lm if level == "word" else char_lm, beam=1, max_chars=1)
    long_text = " ".join(SENTENCES * 10)  # about 300 words
    completer.suggest(long_text, 3)
    tokens = count_reads(completer, monkeypatch)
    for typed in [long_text + " V", long_text + " Vo", long_text + " Voy", long_text + " Voy ", long_text + " Vo"]:
        completer.suggest(typed, 3)
    assert max(tokens) <= 2, tokens  # one new token (plus one beam step for a char model), not the whole line


def test_backspace_inside_a_word_runs_no_model_step(word_lm, monkeypatch):
    completer = Completer(word_lm)
    completer.suggest("Voy al parque con mi perr", 3)
    tokens = count_reads(completer, monkeypatch)
    assert words_of(completer.suggest("Voy al parque con mi pe", 3))[0] == "perro"
    assert tokens == []


def test_unknown_characters_still_get_suggestions(word_lm, char_lm):
    assert words_of(seqtext.complete(word_lm, "Voy al 東京 🙂 con mi per"))[0] == "perro"
    assert seqtext.complete(word_lm, "perЖ") == []  # no vocabulary word starts with it: nothing to offer
    found = words_of(seqtext.complete(char_lm, "Mi perЖ"))
    assert found and all(w.startswith("perЖ") for w in found)
    assert seqtext.complete(char_lm, "\x00\u200b\ufffd ")  # control and odd characters do not crash


@pytest.mark.parametrize("level", ["word", "char"])
def test_extremely_long_input_is_read_once_then_incrementally(word_lm, char_lm, level):
    lm = word_lm if level == "word" else char_lm
    completer = Completer(lm)
    huge = " ".join(SENTENCES * 700)  # ~20k words, ~110k characters on one line
    began = time.perf_counter()
    assert completer.suggest(huge + " Mi p", 3)
    first = time.perf_counter() - began
    began = time.perf_counter()
    assert completer.suggest(huge + " Mi pe", 3)
    assert time.perf_counter() - began < max(0.05, first / 10)


def test_capitalisation_and_accents_as_a_spanish_typist_expects(word_lm):
    assert words_of(seqtext.complete(word_lm, "voy"))[0] == "Voy"  # sentence start: capitalised
    assert words_of(seqtext.complete(word_lm, "¿que"))[0] == "Quedamos"  # ¿ then a capital, found lower-case
    assert words_of(seqtext.complete(word_lm, "El nin"))[0] == "niño"  # typed without the tilde
    assert words_of(seqtext.complete(word_lm, "Juega con el Pe"))[0] == "Perro"  # the typist's capital is kept
    assert words_of(seqtext.complete(word_lm, "JUEGA CON EL PE"))[0] == "PERRO"
    exact = words_of(seqtext.complete(word_lm, "Voy al parque con mi per"))
    assert exact[0] == "perro"


def test_lines_restart_from_bos(word_lm):
    assert seqtext.complete(word_lm, "Hoy hace sol.\nVoy al parque con mi per") == seqtext.complete(
        word_lm, "Voy al parque con mi per"
    )


def test_complete_reuses_the_completer_of_a_loaded_model(word_lm, word_run):
    assert completer_for(word_lm) is completer_for(word_lm)
    assert completer_for(word_lm, ngram=False) is not completer_for(word_lm)
    assert completer_for(dataclasses.replace(word_lm)) is not completer_for(word_lm)  # each loaded run its own
    assert words_of(seqtext.complete(word_run, "Mi per")) == words_of(seqtext.complete(word_lm, "Mi per"))


def test_the_completer_goes_with_its_loaded_run(word_run):
    """The loaded run holds its Completer: nothing outside it keeps the model alive once the caller lets go."""
    loaded = seqtext.load(word_run)
    assert seqtext.complete(loaded, "Mi per")
    gone = weakref.ref(loaded)
    del loaded
    gc.collect()  # the run and its Completer refer to each other
    assert gone() is None


def test_bad_k_and_wrong_kind_and_empty_vocabulary(word_lm):
    with pytest.raises(ConfigError, match="--k must be between 1 and 1,000"):
        seqtext.complete(word_lm, "Voy", k=0)
    classifier = dataclasses.replace(word_lm, kind="classifier")
    with pytest.raises(CheckpointError, match="'complete' needs a language model"):
        seqtext.complete(classifier, "Voy")
    tokenizer = build_word_tokenizer(["... ¡¡!! ??", "¿? ..."], 50)
    config = LMConfig(level="word", vocab_size=tokenizer.get_vocab_size(), **TINY_MODEL)
    empty = dataclasses.replace(word_lm, model=RNNLanguageModel(config).eval(), tokenizer=tokenizer, config=config)
    with pytest.raises(CheckpointError, match="has no words in its vocabulary"):
        Completer(empty)


def test_of_equally_likely_words_the_first_in_order_are_kept():
    index = WordIndex([(w, w, i) for i, w in enumerate(["pa", "pe", "pi", "po", "pu"])])
    probs = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3])
    assert [w for w, _ in index.best(probs, "p", 3)] == ["pu", "pe", "pi"]  # never "po" by topk's order of ties
    assert [w for w, _ in index.best(probs, "p", 9)] == ["pu", "pe", "pi", "po", "pa"]


def test_a_fixed_index_answers_as_its_index_and_keeps_its_latest_prefixes():
    index = WordIndex([(w, w, i) for i, w in enumerate(["pa", "pe", "pi", "po", "pu", "sa"])])
    probs = torch.tensor([0.1, 0.2, 0.2, 0.2, 0.3, 0.05])
    fixed = FixedWordIndex(index, probs, kept=2)
    for prefix, n in [("p", 3), ("", 9), ("s", 1), ("x", 2), ("p", 3)]:
        assert fixed.best(prefix, n) == index.best(probs, prefix, n)
    assert list(fixed._found) == [("x", 2), ("p", 3)]  # the two latest, the oldest forgotten
    assert fixed.best("p", 3) is fixed.best("p", 3)  # found once, then looked up


def test_a_folded_match_is_shown_with_the_probability_it_ranks_by(word_lm):
    """Typing "m" is evidence against "Mary": it ranks at INEXACT_DISCOUNT times its probability, and
    shows that figure, so the probabilities shown are in the order shown ("mi" 0.02, then "Mary" 0.012)."""
    completer = Completer(word_lm, ngram=False)
    words = ["mi", "Mary", "mesa", "Mía"]
    entries = list(enumerate(words))
    completer.exact = {True: WordIndex([(w, w, i) for i, w in entries])}
    completer.folded = {True: WordIndex([(fold(w), w, i) for i, w in entries])}
    probs = torch.tensor([0.02, 0.12, 0.01, 0.3])
    got = [(c.word, round(c.prob, 6)) for c in completer._restrict(probs, "m", True, 4)]
    assert got == [("Mía", 0.03), ("mi", 0.02), ("Mary", 0.012), ("mesa", 0.01)]
    for typed in KEYBOARD_TEXTS:  # the whole engine, folding included
        shown = [c.prob for c in seqtext.complete(word_lm, typed, 5)]
        assert shown == sorted(shown, reverse=True), typed
