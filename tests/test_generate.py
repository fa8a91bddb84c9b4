import pytest
import torch

import seqtext
from seqtext.errors import CheckpointError, ConfigError
from seqtext.tokenizer import BOS_ID, EOS_ID


def test_same_seed_same_text(char_run):
    a = seqtext.generate(char_run, "Voy al ", max_new_tokens=30, seed=5)
    assert a == seqtext.generate(char_run, "Voy al ", max_new_tokens=30, seed=5)


def test_temperature_zero_ignores_seed(char_run):
    runs = {seqtext.generate(char_run, "Mi ", max_new_tokens=20, temperature=0, seed=s) for s in (0, 1, 2)}
    assert len(runs) == 1, f"greedy decoding depended on the seed: {runs}"


def test_top_k_one_and_tiny_top_p_are_greedy(char_run):
    greedy = seqtext.generate(char_run, "Mi ", max_new_tokens=20, temperature=0)
    assert seqtext.generate(char_run, "Mi ", max_new_tokens=20, top_k=1, seed=3) == greedy
    assert seqtext.generate(char_run, "Mi ", max_new_tokens=20, top_p=1e-6, seed=3) == greedy


def test_max_new_tokens_is_respected(char_run, word_run):
    assert len(seqtext.generate(char_run, "", max_new_tokens=5, temperature=2.0)) <= 5
    pieces = list(seqtext.generate_stream(word_run, "Voy al", max_new_tokens=4, temperature=2.0))
    assert len(pieces) <= 4


def test_word_model_output_is_plain_text(word_run):
    text = seqtext.generate(word_run, "Voy al", max_new_tokens=8, temperature=1.5, seed=2)
    assert "▁" not in text and "<unk>" not in text and "<bos>" not in text


def favour_end_of_line(run):
    lm = seqtext.load(run)
    with torch.no_grad():
        lm.model.head.bias[EOS_ID] = 1e4  # the model now always predicts <eos>
    return lm


def test_line_model_stops_at_end_of_line(char_run):
    assert seqtext.generate(favour_end_of_line(char_run), "Voy", max_new_tokens=50, temperature=0) == ""


def test_prose_model_writes_newlines_for_end_of_line(prose_run):
    assert seqtext.generate(favour_end_of_line(prose_run), "En un", max_new_tokens=3, temperature=0) == "\n\n\n"


def test_prose_prompt_lines_are_read_as_a_stream(prose_run):
    from seqtext.lm.generation import prompt_ids

    ids = prompt_ids(seqtext.load(prose_run), "En\nun")
    assert ids[0] == BOS_ID and EOS_ID in ids and ids[-1] != EOS_ID


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"temperature": -1}, "--temperature"),
        ({"top_k": 0}, "--top-k"),
        ({"top_p": 1.5}, "--top-p"),
        ({"max_new_tokens": -1}, "--max-new"),
    ],
)
def test_bad_sampling_options(char_run, kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        seqtext.generate(char_run, "a", **kwargs)


def test_unseen_characters_in_the_prompt_do_not_crash(char_run):
    assert isinstance(seqtext.generate(char_run, "你好 🙂 ", max_new_tokens=5), str)


def test_loaded_model_is_reused(char_run):
    lm = seqtext.load(char_run)
    assert seqtext.generate(lm, "Mi", max_new_tokens=5, temperature=0) == seqtext.generate(
        char_run, "Mi", max_new_tokens=5, temperature=0
    )


def test_generate_needs_a_run(tmp_path):
    with pytest.raises(CheckpointError):
        seqtext.generate(tmp_path, "x")


def test_a_long_prompt_never_builds_logits_for_every_position(word_run):
    lm = seqtext.load(word_run)
    rows_seen = []
    head_of_rows = lm.model._head_of_rows  # every logit of read() comes from here

    def counted(rows):
        rows_seen.append(rows.shape[:-1].numel())
        return head_of_rows(rows)

    lm.model._head_of_rows = counted
    text = seqtext.generate(lm, "el perro come pan " * 500, max_new_tokens=5, seed=0)
    assert isinstance(text, str)
    assert max(rows_seen) == 1  # one row per step: a (T, V) matrix for a 2,000-word prompt would be wasted memory


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": float("nan")}, "--temperature must be a finite number"),
        ({"temperature": float("inf")}, "--temperature must be a finite number"),
        ({"top_p": float("nan")}, "--top-p must be a finite number"),
        ({"seed": -1}, "--seed must be between 0"),
        ({"seed": 2**64}, "--seed must be between 0"),
    ],
)
def test_non_finite_sampling_options_are_refused(char_run, options, message):
    with pytest.raises(ConfigError, match=message):
        seqtext.generate(char_run, "Mi ", max_new_tokens=3, **options)


@pytest.mark.parametrize("temperature", [1e-30, 5e-324, 100])  # 100: the highest allowed
def test_extreme_temperatures_still_sample(char_run, temperature):
    text = seqtext.generate(char_run, "Mi ", max_new_tokens=10, temperature=temperature, seed=1)
    assert isinstance(text, str)
    if temperature < 1e-20:
        assert text == seqtext.generate(char_run, "Mi ", max_new_tokens=10, temperature=0)
