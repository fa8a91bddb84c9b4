"""Run directories written by an earlier seqtext (tests/fixtures, written by 0.1.0 before the package
was regrouped) still load and give exactly the answers they gave then."""

import json

import pytest
from helpers import FIXTURES, SENTENCES

import seqtext

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lm():
    return seqtext.load(FIXTURES / "run-0.1.0-char-lm")


@pytest.fixture(scope="module")
def clf():
    return seqtext.load(FIXTURES / "run-0.1.0-classifier")


def test_saved_language_model_generates_the_same_text(lm):
    assert seqtext.generate(lm, "Voy al ", max_new_tokens=20, temperature=0) == EXPECTED["generate"]
    assert seqtext.generate(lm, "Mi ", max_new_tokens=20, temperature=1.0, seed=3) == EXPECTED["sampled"]


def test_saved_language_model_completes_the_same_words(lm):
    got = seqtext.complete(lm, "Voy al parque con mi per", k=3)
    assert [c.word for c in got] == [word for word, _ in EXPECTED["complete"]]
    assert [c.prob for c in got] == pytest.approx([prob for _, prob in EXPECTED["complete"]], abs=1e-5)


def test_saved_language_model_evaluates_the_same(lm, tmp_path):
    corpus = tmp_path / "frases.txt"
    corpus.write_text("".join(s + "\n" for s in SENTENCES * 10), encoding="utf-8")
    assert seqtext.evaluate(lm, corpus).bits_per_char == pytest.approx(EXPECTED["evaluate_bpc"], abs=1e-5)


def test_saved_classifier_classifies_the_same(clf):
    predictions = seqtext.classify(clf, ["a great film", "an awful film", "a film"], precision="fp32")
    assert [p.label for p in predictions] == [label for label, _ in EXPECTED["classify"]]
    for p, (_, probs) in zip(predictions, EXPECTED["classify"], strict=True):
        assert p.probs == pytest.approx(probs, abs=1e-5)
