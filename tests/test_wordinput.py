"""Character-aware word input (--char-input): shapes, the cached vocabulary encodings, the saved format
(no spelling stored: it comes from tokenizer.json), old runs, and bad input."""

import json

import pytest
import torch
from helpers import TINY_MODEL, TINY_TRAIN, copy_run

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError
from seqtext.keyboard.completion import Completer
from seqtext.models import RNNLanguageModel
from seqtext.wordinput import MAX_CHARS, CharAwareEmbedding, char_vocab_size

TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", "perro", "▁perro", "▁perros", "."]


def test_shapes_and_spelling():
    embed = CharAwareEmbedding(len(TOKENS), 10, char_vocab_size(TOKENS))
    embed.spell(TOKENS)
    assert embed.spelling.shape == (len(TOKENS), MAX_CHARS + 2)
    assert embed(torch.tensor([[4, 5, 6]])).shape == (1, 3, 10)
    assert embed.encode(embed.spelling).shape == (len(TOKENS), 10)
    assert embed.spelling[4, 0] == 1 and embed.spelling[4, 6] == 2  # begin mark, p e r r o, end mark
    assert embed.weight.shape == (len(TOKENS), 10)  # the word embedding: what a tied head shares


def test_cached_encodings_equal_the_trained_path_and_follow_the_weights():
    torch.manual_seed(0)
    embed = CharAwareEmbedding(len(TOKENS), 12, char_vocab_size(TOKENS))
    embed.spell(TOKENS)
    nn_init = torch.nn.init
    nn_init.normal_(embed.transform.weight)  # a character part that is not zero
    ids = torch.tensor([[5, 6, 4], [7, 5, 5]])
    trained = embed(ids)  # grad enabled: the batch's distinct words are encoded
    embed.eval()
    with torch.no_grad():
        cached = embed(ids)
        assert torch.allclose(cached, trained, atol=1e-5)
        embed.chars.weight.add_(1.0)  # a weight changes: the cache must not answer with the old encodings
        assert not torch.allclose(embed(ids), cached, atol=1e-3)
    assert torch.allclose(embed(ids), embed.forward(ids), atol=1e-6)


def test_another_vocabulary_is_refused():
    embed = CharAwareEmbedding(len(TOKENS), 8, char_vocab_size(TOKENS))
    with pytest.raises(ValueError, match="character ids"):
        embed.spell([*TOKENS[:-1], "¿?"])  # one character more than the model was built for


@pytest.fixture(scope="module")
def char_input_run(lines_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "char-input"
    model = LMConfig(**{**TINY_MODEL, "level": "word", "char_input": True, "tie_weights": True})
    seqtext.train_lm(
        model, TrainConfig(data=str(lines_file), out=str(out), ngram=True, fp16_weights=True, **TINY_TRAIN)
    )
    return out


def test_training_saves_the_character_encoder_but_no_spelling(char_input_run):
    lm = seqtext.load(char_input_run)
    assert isinstance(lm.model.embed, CharAwareEmbedding) and lm.config.char_input
    saved = json.loads((char_input_run / "config.json").read_text())["model"]
    assert saved["char_input"] is True and saved["char_vocab"] == lm.model.embed.chars.num_embeddings
    names = set(lm.model.state_dict())
    assert "embed.chars.weight" in names and "embed.spelling" not in names
    assert lm.model.head.weight is lm.model.embed.weight  # tied to the word embedding as before
    words = [c.word for c in Completer(lm).suggest("Voy al parque con mi pe", k=3)]
    assert words and all(w.startswith("pe") for w in words)


def test_a_keystroke_reads_the_cached_table(char_input_run):
    lm = seqtext.load(char_input_run)
    completer = Completer(lm, ngram=False)
    completer.suggest("Mi perro come ")
    table = lm.model.embed._cached[1]
    completer.suggest("Mi perro come mucho ")
    assert lm.model.embed._cached[1] is table, "the vocabulary is encoded once, not per keystroke"


def test_old_word_runs_load_without_the_fields(word_run, tmp_path):
    run = copy_run(word_run, tmp_path / "old")
    config = json.loads((run / "config.json").read_text())
    for field in ("char_input", "char_vocab"):
        config["model"].pop(field, None)  # as a run saved before these fields existed
    (run / "config.json").write_text(json.dumps(config))
    lm = seqtext.load(run)
    assert not lm.config.char_input and isinstance(lm.model.embed, torch.nn.Embedding)
    texts = ["Voy al parque con mi pe", "Mi perro ", "¿Qued"]
    assert [Completer(run).suggest(t) for t in texts] == [Completer(word_run).suggest(t) for t in texts]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"char_vocab": 5}, "char_vocab"),
        ({"char_input": False}, "char_input"),
        ({"char_vocab": -1}, "char_vocab"),
        ({"char_input": "yes"}, "char_input"),
    ],
)
def test_an_edited_config_is_one_clear_error(char_input_run, tmp_path, edit, message):
    run = copy_run(char_input_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"].update(edit)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as caught:
        seqtext.load(run)
    assert "\n" not in str(caught.value) and "config.json" in str(caught.value)


def test_tokenizer_of_another_alphabet_is_refused(char_input_run, tmp_path):
    run = copy_run(char_input_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"]["char_vocab"] += 1  # the file's character table no longer fits the spellings either
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="char_vocab"):
        seqtext.load(run)


def test_char_input_needs_words():
    with pytest.raises(ConfigError, match="--char-input spells the words"):
        seqtext.train_lm(LMConfig(level="char", char_input=True), TrainConfig(data="x", out="never-written"))
    model = RNNLanguageModel(LMConfig(level="word", char_input=True, char_vocab=8, vocab_size=8, embed_dim=6))
    assert isinstance(model.embed, CharAwareEmbedding)
