"""--level subword (classifiers): words as at word level, a word never seen spelled in pieces, not <unk>."""

import json
import shutil

import pytest
from helpers import PHRASES, TINY_CLASSIFIER_FLAGS, assert_clean_error, invoke
from tokenizers import decoders

import seqtext
from seqtext.config import LMConfig
from seqtext.errors import ConfigError
from seqtext.tokenizer import SPACE_MARK, UNK_ID, build_subword_tokenizer, from_json, to_json, tokenizer_level

TEXTS = [" una película muy buena", " una película muy mala", " muy buena", " mala y aburrida"] * 5


def test_seen_words_stay_whole_and_unseen_ones_are_spelled_in_pieces():
    tok = build_subword_tokenizer(TEXTS, max_vocab=200)
    assert tok.encode(" una película buena").tokens == ["▁una", "▁película", "▁buena"]
    unseen = tok.encode(" buenarra").tokens  # unseen, in letters the texts have
    assert len(unseen) > 1 and unseen[1].startswith("##"), unseen
    assert UNK_ID not in tok.encode(" buenarra maladida").ids
    assert tokenizer_level(tok) == "subword" and tokenizer_level(from_json(to_json(tok))) == "subword"


@pytest.fixture(scope="module")
def subword_clf(tmp_path_factory):
    out = tmp_path_factory.mktemp("subword") / "clf"
    result = invoke("train", "classifier", PHRASES, "--out", out, "--level", "subword", *TINY_CLASSIFIER_FLAGS)
    assert result.exit_code == 0, result.output
    return out


def test_a_subword_classifier_trains_saves_and_classifies_unseen_words(subword_clf):
    assert json.loads((subword_clf / "config.json").read_text())["model"]["level"] == "subword"
    clf = seqtext.load(subword_clf)
    assert tokenizer_level(clf.tokenizer) == "subword"
    unseen = " moviest unfunniness"  # words the corpus lacks, in letters it has
    assert not set(unseen.split()) & set(PHRASES.read_text().lower().split())
    assert UNK_ID not in clf.tokenizer.encode(unseen).ids, "an unseen word is spelled in pieces"
    [prediction] = seqtext.classify(clf, [unseen])
    assert 0 <= prediction.label < 5 and abs(sum(prediction.probs) - 1) < 1e-5
    assert seqtext.evaluate(subword_clf, PHRASES).texts > 0


def test_a_subword_run_with_a_word_tokenizer_is_refused(subword_clf, tmp_path):
    run = tmp_path / "mixed"
    shutil.copytree(subword_clf, run)
    tok = seqtext.load(subword_clf).tokenizer
    tok.decoder = decoders.Metaspace(replacement=SPACE_MARK, prepend_scheme="never")  # a word-level tokenizer
    tok.save(str(run / "tokenizer.json"))
    assert_clean_error(invoke("classify", run, PHRASES), "a word tokenizer, but the model is subword-level")


def test_language_models_refuse_subword(tmp_path):
    with pytest.raises(ConfigError, match="--level subword is for classifiers"):
        LMConfig(level="subword")
    result = invoke("train", "lm", PHRASES, "--out", tmp_path / "lm", "--level", "subword")
    assert result.exit_code == 2 and "subword" in result.output and not (tmp_path / "lm").exists()


def test_a_bad_level_is_one_line(tmp_path):
    result = invoke("train", "classifier", PHRASES, "--out", tmp_path / "c", "--level", "bpe")
    assert result.exit_code == 2 and "--level" in result.output and "Traceback" not in result.output
