"""Keystrokes answered together: Completer.suggest_many gives what suggest gives one text at a time."""

import pytest
from helpers import SENTENCES

from seqtext.keyboard.completion import Completer

SESSIONS = [  # what each typist types, keystroke by keystroke: words, punctuation, a backspace, a new line
    "Voy al parque con mi periquito, ¿vale?",
    "El niño juega con el perro.",
    "Mañana voy al trabajo en bici",
    "¿Quedamos mañana a las ocho? Mi pe",
    "Hoy hace sol en el parquq\b\be",
]


def keystrokes(session: str) -> list[str]:
    """The text after each keystroke (\\b deletes the last character)."""
    texts, typed = [], ""
    for key in session:
        typed = typed[:-1] if key == "\b" else typed + key
        texts.append(typed)
    return texts


def rounds(k: int = 3) -> list[list[tuple[str, int]]]:
    """Round n: every typist's n-th keystroke (typists who finished send nothing)."""
    typists = [keystrokes(s) for s in SESSIONS] + [[" ".join(SENTENCES)]]  # and one who pastes a long line
    longest = max(map(len, typists))
    return [[(t[n], k) for t in typists if n < len(t)] for n in range(longest)]


def same_answers(together, alone):
    assert [c.word for c in together] == [c.word for c in alone]
    assert [c.prob for c in together] == pytest.approx([c.prob for c in alone], rel=1e-5)


@pytest.mark.parametrize("run", ["keyboard_run", "memory_run", "word_run", "char_run"])
def test_keystrokes_answered_together_get_the_answers_given_alone(run, request):
    path = request.getfixturevalue(run)
    together, alone = Completer(path, cache_size=16), Completer(path, cache_size=16)
    for batch in rounds():
        answers = together.suggest_many(batch)
        assert len(answers) == len(batch)
        for (typed, k), got in zip(batch, answers, strict=True):
            same_answers(got, alone.suggest(typed, k))


def test_the_ngram_mix_and_the_personal_model_batched(keyboard_run, tmp_path):
    together = Completer(keyboard_run, user_data=tmp_path / "me.json")
    alone = Completer(keyboard_run, user_data=None)
    assert together.mixer is not None  # the n-gram is mixed in
    for completer in (together, alone):
        completer.learn("Me llamo Zorbaxa y mi perro Zuko", save=False)
    batch = [("Me llamo Zo", 3), ("Voy al parque con mi per", 3), ("mi perro Z", 2), ("Voy al parque con mi per", 1)]
    answers = together.suggest_many(batch)
    assert answers[0][0].word == "Zorbaxa"  # the personal model, in a batch
    assert "periquito" in [c.word for c in answers[1]]  # a word the model lacks, from the n-gram
    for (typed, k), got in zip(batch, answers, strict=True):
        same_answers(got, alone.suggest(typed, k))


def test_a_round_of_keystrokes_is_one_model_call(keyboard_run, monkeypatch):
    completer = Completer(keyboard_run)
    model, calls = completer.reader.steps, []  # the model, or its int8 steps (keyboard/int8.py)
    read_rows = model.read_rows
    monkeypatch.setattr(model, "read_rows", lambda rows, state: calls.append(rows) or read_rows(rows, state))
    texts = ["Voy al parque con ", "Mi perro come ", "El niño juega, ", "Hoy hace sol en el "]
    completer.suggest_many([(t, 3) for t in texts])
    assert len(calls) == 1 and len(calls[0]) == 4  # four rows, one batch, however long each row's read
    completer.suggest_many([(t + "p", 3) for t in texts])  # inside a word: no model step at all
    assert len(calls) == 1


def test_a_bad_k_anywhere_in_a_batch_is_refused(word_run):
    from seqtext.errors import ConfigError

    with pytest.raises(ConfigError, match="--k must be between 1 and 1,000"):
        Completer(word_run).suggest_many([("Voy", 3), ("Mi", 0)])
