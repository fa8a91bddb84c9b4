import math

import pytest

import seqtext
from seqtext.errors import CorpusError


def test_perplexity_is_exp_loss_and_bpc_is_bits_per_character(char_run, lines_file):
    m = seqtext.evaluate(char_run, lines_file)
    assert m.perplexity == pytest.approx(math.exp(m.loss))
    assert m.characters == len(lines_file.read_text(encoding="utf-8"))
    assert m.bits_per_char == pytest.approx(m.loss * m.tokens / math.log(2) / m.characters)
    assert m.tokens == m.characters  # char level: one token per character, <eos> for each newline


def test_word_model_bits_per_char_compare_on_the_same_text(char_run, word_run, lines_file):
    char, word = seqtext.evaluate(char_run, lines_file), seqtext.evaluate(word_run, lines_file)
    assert word.characters == char.characters and word.tokens < char.tokens
    assert 0 < word.bits_per_char < 10


def test_stream_model_counts_blank_lines(prose_run, prose_file):
    m = seqtext.evaluate(prose_run, prose_file)
    assert m.characters == len(prose_file.read_text(encoding="utf-8"))


def test_evaluate_an_empty_file(char_run, tmp_path):
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no text"):
        seqtext.evaluate(char_run, tmp_path / "e.txt")
