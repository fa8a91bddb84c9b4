"""A run directory is untrusted input (issue 9, class 1): every file of it edited, truncated, swapped
from another run or written by hand gives one line naming the file, the field and the fix, and no
model is allocated before the weights file is known to match its config."""

import json
import shutil

import pytest
import torch
from helpers import FIXTURES, TINY_MODEL, TINY_TRAIN, assert_clean_error, copy_run, interrupt_at, invoke, train_tiny
from safetensors.torch import load_file, save_file

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, SeqtextError, TrainingStopped
from seqtext.models import RNNLanguageModel
from seqtext.runs import reading

CLASSIFIER = FIXTURES / "run-0.1.0-classifier"


def edit_json(path, edit):
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def edit_tensors(path, edit):
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def set_model_field(name, value):
    return lambda header: header["model"].__setitem__(name, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_model_field("vocab_size", 20_000_000), 'field "model.vocab_size" must be between 0 and 10,000,000'),
        (set_model_field("vocab_size", 0), 'field "model.vocab_size" must be at least 5'),
        (set_model_field("vocab_size", "35"), 'field "model.vocab_size" must be a whole number'),
        (set_model_field("vocab_size", 35.0), 'field "model.vocab_size" must be a whole number'),
        (set_model_field("hidden_dim", True), 'field "model.hidden_dim" must be a whole number (got true)'),
        (set_model_field("hidden_dim", -3), 'field "model.hidden_dim" must be between 1 and 65,536'),
        (set_model_field("hidden_dim", 10**30), 'field "model.hidden_dim" is out of range (got 1000'),
        (set_model_field("embed_dim", None), 'field "model.embed_dim" must be a whole number (got null)'),
        (set_model_field("cell", "transformer"), 'field "model.cell" must be one of rnn, lstm, gru'),
        (set_model_field("dropout", float("nan")), 'field "model.dropout" must be a finite number'),
        (set_model_field("tie_weights", "no"), 'field "model.tie_weights" must be true or false'),
        (set_model_field("sample_by", "auto"), 'field "model.sample_by" must be line or stream'),
        (set_model_field("colour", "red"), 'field "model.colour" is not a known field'),
        (lambda h: h["model"].pop("layers"), 'field "model.layers" is missing'),
        (lambda h: h.__setitem__("model", [1, 2]), "LMConfig must be a JSON object"),
        (lambda h: h.__setitem__("kind", ["lm"]), 'field "kind" must be one of lm, classifier'),
        (lambda h: h.__setitem__("kind", "transformer"), 'field "kind" must be one of lm, classifier'),
        (lambda h: h.__setitem__("format_version", "1"), 'field "format_version" must be a positive whole number'),
        (lambda h: h.__setitem__("format_version", True), 'field "format_version" must be a positive whole number'),
        # sizes that are valid numbers but disagree with the weights: the field is named, nothing allocated
        (set_model_field("vocab_size", 5_000_000), 'config.json disagrees: its field "model.vocab_size" is 5000000'),
        (
            set_model_field("hidden_dim", 64),
            'its field "model.hidden_dim" is 64 but these weights were trained with 32',
        ),
        (set_model_field("layers", 3), 'its field "model.layers" is 3 but these weights were trained with 1'),
        (
            set_model_field("cell", "gru"),
            "its field \"model.cell\" is 'gru' but these weights were trained with 'lstm'",
        ),
        (set_model_field("tie_weights", True), "tensor 'head.weight'"),
        (set_model_field("level", "word"), "a char tokenizer, but the model is word-level"),
    ],
)
def test_edited_config_json_names_the_field(char_run, tmp_path, monkeypatch, edit, message):
    run = copy_run(char_run, tmp_path / "run")
    edit_json(run / "config.json", edit)
    built_on = []

    def spy(config):  # every model the loader builds, and where
        built_on.append(torch.get_default_device().type)
        return RNNLanguageModel(config)

    monkeypatch.setitem(reading.MODEL_TYPES, "lm", spy)
    with pytest.raises(CheckpointError, match=r"config.json|model.safetensors|tokenizer.json") as raised:
        seqtext.load(run)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value) and str(run) in str(raised.value)
    assert set(built_on) <= {"meta"}, "a model was allocated before its weights were checked"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "config.json is not readable JSON"),
        ("[1, 2]", "config.json does not hold a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("\ufeff{", "config.json is not readable JSON"),
    ],
)
def test_unreadable_config_json(char_run, tmp_path, content, message):
    run = copy_run(char_run, tmp_path / "run")
    (run / "config.json").write_text(content, encoding="utf-8")
    with pytest.raises(SeqtextError, match=message):
        seqtext.load(run)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.__setitem__("lr", "fast"), 'train_config.json: field "lr" must be a number'),
        (lambda c: c.__setitem__("seed", -4), 'train_config.json: field "seed" must be between 0'),
        (lambda c: c.pop("epochs"), 'train_config.json: field "epochs" is missing'),
        (lambda c: c.__setitem__("clip", float("inf")), 'train_config.json: field "clip" must be a finite number'),
    ],
)
def test_edited_train_config_json(char_run, tmp_path, edit, message):
    run = copy_run(char_run, tmp_path / "run")
    edit_json(run / "train_config.json", edit)
    with pytest.raises(CheckpointError) as raised:
        seqtext.load(run)
    assert message in str(raised.value)


def test_config_json_that_is_not_a_file(char_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    (run / "config.json").unlink()
    (run / "config.json").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match=r"config\.json: a pipe, a socket or a device, not a regular file"):
        seqtext.load(run)


def drop_one_token(t):
    del t["model"]["vocab"][next(k for k, v in t["model"]["vocab"].items() if v == 7)]


def renumber_last(t):
    vocab = t["model"]["vocab"]
    vocab[max(vocab, key=vocab.get)] = 10**6


def swap_pad(t):
    vocab = t["model"]["vocab"]
    other = next(k for k, v in vocab.items() if v == 5)
    vocab[other], vocab["<pad>"] = 0, 5


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda path: path.write_text("", encoding="utf-8"), "tokenizer.json: not readable JSON"),
        (lambda path: path.write_text("{}", encoding="utf-8"), "tokenizer.json: not a tokenizer"),
        (lambda path: path.write_text('{"model": 5}', encoding="utf-8"), "tokenizer.json: not a tokenizer"),
        (lambda path: path.write_bytes(b"\xff\xfe\x00"), "tokenizer.json: not readable JSON"),
        (lambda path: edit_json(path, drop_one_token), "token ids are not 0, 1, 2"),
        (lambda path: edit_json(path, renumber_last), "token ids are not 0, 1, 2"),
        (lambda path: edit_json(path, swap_pad), "special token <pad> must have id 0"),
    ],
)
def test_damaged_tokenizer(char_run, tmp_path, edit, message):
    run = copy_run(char_run, tmp_path / "run")
    edit(run / "tokenizer.json")
    with pytest.raises(CheckpointError, match=message):
        seqtext.load(run)


def test_tokenizer_of_another_run_is_refused(char_run, word_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    shutil.copy(word_run / "tokenizer.json", run / "tokenizer.json")
    with pytest.raises(CheckpointError, match=r"tokens, but the model has 35 \(vocab_size\)|word tokenizer"):
        seqtext.load(run)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t["head.bias"].__setitem__(0, float("nan")), "tensor 'head.bias' holds NaN or infinite values"),
        (lambda t: t["embed.weight"].__setitem__((0, 0), float("inf")), "'embed.weight' holds NaN or infinite"),
        (lambda t: t.__setitem__("bonus", torch.zeros(2)), r"tensors this model does not have \(bonus\)"),
        (lambda t: t.pop("head.bias"), "tensor 'head.bias' is missing"),
        (
            lambda t: t.__setitem__("head.bias", t["head.bias"].half()),
            r"'head.bias' is F16 \[35\], but the model needs F32",
        ),
        (lambda t: t.__setitem__("head.bias", t["head.bias"].long()), r"'head.bias' is I64 \[35\]"),
        (
            lambda t: t.__setitem__("head.bias", torch.zeros(7)),
            r"'head.bias' is F32 \[7\], but the model needs F32 \[35\]",
        ),
    ],
)
def test_edited_weights(char_run, tmp_path, edit, message):
    run = copy_run(char_run, tmp_path / "run")
    edit_tensors(run / "model.safetensors", edit)
    with pytest.raises(CheckpointError, match=message):
        seqtext.load(run)


@pytest.mark.parametrize("size", [0, 7, 100, 1000, -8])
def test_truncated_weights(char_run, tmp_path, size):
    run = copy_run(char_run, tmp_path / "run")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:size])
    with pytest.raises(CheckpointError, match=r"model.safetensors: not a complete safetensors file"):
        seqtext.load(run)


def test_weights_of_another_run(char_run, prose_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    shutil.copy(prose_run / "model.safetensors", run / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"config.json disagrees"):
        seqtext.load(run)


def test_tied_weights_still_load(lines_file, tmp_path):
    run = train_tiny(lines_file, tmp_path / "tied", {"level": "word", "tie_weights": True, "embed_dim": 32}, epochs=1)
    lm = seqtext.load(run)
    assert lm.model.head.weight is lm.model.embed.weight


def test_extreme_but_finite_weights_are_a_clear_error(char_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    edit_tensors(run / "model.safetensors", lambda t: (t["head.weight"].fill_(3e38), t["head.bias"].fill_(3e38)))
    with pytest.raises(CheckpointError, match="scores overflowed"):
        seqtext.generate(run, "Mi ", max_new_tokens=5)


def test_edited_classifier_run(tmp_path):
    run = copy_run(CLASSIFIER, tmp_path / "clf")
    edit_json(run / "config.json", set_model_field("labels", ["only one"]))
    with pytest.raises(CheckpointError, match=r'field "model\.labels" needs at least two names'):
        seqtext.load(run)
    edit_json(run / "config.json", set_model_field("labels", ["a", "b", "c"]))
    with pytest.raises(CheckpointError, match=r"'head.weight' is F32 \[5, 16\], but the model needs F32 \[3, 16\]"):
        seqtext.load(run)
    edit_json(run / "config.json", set_model_field("labels", ["a\tb", "c", "d", "e", "f"]))
    with pytest.raises(CheckpointError, match="cannot hold an empty name, a tab or a line break"):
        seqtext.load(run)


def test_the_cli_prints_one_line(char_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    edit_json(run / "config.json", set_model_field("vocab_size", 2_000_000))
    for args in (["generate", run], ["complete", run, "--text", "Mi"], ["evaluate", run, tmp_path / "x.txt"]):
        assert_clean_error(invoke(*args), "config.json disagrees")


# The resume state: trainer_state.json and optimizer.safetensors, checked before training goes on.


def resume(run, options_from=None):
    """Resume `run` with the options it was started with (read from `options_from`, before any edit)."""
    state = (options_from or run) / "trainer_state.json"
    config = TrainConfig(**{**json.loads(state.read_text(encoding="utf-8"))["train_config"], "out": str(run)})
    return seqtext.train_lm(LMConfig(**TINY_MODEL), config, resume=True)


def set_state(name, value):
    return lambda state: state.__setitem__(name, value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("torch_rng"), 'field "torch_rng" is missing'),
        (set_state("torch_rng", [1, 2, 3]), 'field "torch_rng" is not a random-generator state'),
        (set_state("torch_rng", "abc"), 'field "torch_rng" must be a list'),
        (lambda s: s.pop("epoch"), 'field "epoch" is missing'),
        (set_state("step", "3"), 'field "step" must be a whole number'),
        (set_state("step", -1), 'field "step" cannot be negative'),
        (set_state("best_step", 99), 'field "best_step" (99) is after field "step" (3)'),
        (set_state("seconds", float("nan")), 'field "seconds" must be a finite number'),
        (set_state("best_metrics", {"val_loss": "low"}), 'field "best_metrics" must be a number'),
        (set_state("kind", "transformer"), 'field "kind" must be one of lm, classifier'),
        (set_state("kind", "classifier"), "model_config"),
        (lambda s: s["model_config"].__setitem__("hidden_dim", 0), 'field "model_config.hidden_dim" must be between'),
        (lambda s: s["train_config"].__setitem__("lr", "fast"), 'field "train_config.lr" must be a number'),
        (lambda s: s.__setitem__("train_config", None), "train_config: TrainConfig must be a JSON object"),
    ],
)
def test_edited_trainer_state(interrupted_run, tmp_path, edit, message):
    run = copy_run(interrupted_run, tmp_path / "run")
    edit_json(run / "trainer_state.json", edit)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(SeqtextError) as raised:
        resume(run, options_from=interrupted_run)
    assert message in str(raised.value) and "trainer_state.json" in str(raised.value)
    assert (run / "model.safetensors").read_bytes() == before, "a refused resume must not touch the run"


def scale_moment(tensors):
    tensors["optimizer.0.exp_avg"][0, 0] = float("nan")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("optimizer.0.exp_avg"), "optimizer state 0 lacks exp_avg"),
        (lambda t: t.__setitem__("optimizer.99.step", torch.zeros(())), "'optimizer.99.step' is no optimizer state"),
        (lambda t: t.__setitem__("optimizer.0.exp_avg", torch.zeros(3)), r"'optimizer.0.exp_avg' is F32 \[3\]"),
        (lambda t: t.pop("model.head.bias"), "tensor 'model.head.bias' is missing"),
        (lambda t: t.__setitem__("model.extra", torch.zeros(1)), "tensors this model does not have"),
        (scale_moment, "'optimizer.0.exp_avg' holds NaN or infinite values"),
        (lambda t: t.__setitem__("extra.state.0", torch.zeros(1, 99, 32)), "carried RNN state does not fit"),
        (lambda t: t.__setitem__("extra.state.7", torch.zeros(1, 8, 32)), "carried RNN state does not fit"),
    ],
)
def test_edited_optimizer_file(interrupted_run, tmp_path, edit, message):
    run = copy_run(interrupted_run, tmp_path / "run")
    edit_tensors(run / "optimizer.safetensors", edit)
    with pytest.raises(CheckpointError, match=message):
        resume(run)


def test_foreign_and_truncated_optimizer_files(interrupted_run, lines_file, tmp_path):
    other = tmp_path / "other"
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(
            LMConfig(**{**TINY_MODEL, "hidden_dim": 16}),
            TrainConfig(data=str(lines_file), out=str(other), **TINY_TRAIN),
            callback=interrupt_at(2),
        )
    run = copy_run(interrupted_run, tmp_path / "run")
    shutil.copy(other / "optimizer.safetensors", run / "optimizer.safetensors")
    with pytest.raises(
        CheckpointError, match=r"optimizer\.safetensors: tensor 'model\.rnn\.weight_ih_l0' is F32 \[64, 16\]"
    ):
        resume(run)
    data = (interrupted_run / "optimizer.safetensors").read_bytes()
    (run / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors: not a complete safetensors file"):
        resume(run)


def test_swapped_tokenizer_on_resume(interrupted_run, word_run, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    shutil.copy(word_run / "tokenizer.json", run / "tokenizer.json")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: \d+ tokens, but the model has 35"):
        resume(run)


def test_damaged_metrics_log_on_resume(interrupted_run, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"step": "late"}\n')
    with pytest.raises(CheckpointError, match=r"metrics\.jsonl, line \d+: its .step. is 'late', not a whole number"):
        resume(run)


def test_an_intact_copy_still_resumes(interrupted_run, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    result = resume(run)
    assert result.steps > 3 and not (run / "trainer_state.json").exists()


def test_a_model_too_large_to_train_is_refused_before_it_is_allocated(lines_file, tmp_path):
    from seqtext.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training needs about [\d,.]+ GiB .* but this cpu has"):
        train_tiny(lines_file, tmp_path / "big", {"embed_dim": 65_536, "hidden_dim": 65_536, "layers": 8})
    assert not (tmp_path / "big" / "config.json").exists()
