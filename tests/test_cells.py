"""The coupled-gate LSTM (--cell cifg) and weight drop (--weight-drop): shapes, the LSTM a CIFG equals, the
single steps a keystroke takes (fp32 and int8), training and an exact resume, the saved format and old runs,
the export, and bad input."""

import json

import pytest
import torch
from helpers import (
    TINY_LM_FLAGS,
    TINY_MODEL,
    TINY_TRAIN,
    assert_clean_error,
    copy_run,
    interrupt_at,
    invoke,
    train_tiny,
)
from safetensors.torch import load_file

import seqtext
from seqtext.cells import CoupledLSTM, as_lstm, make_rnn
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError, TrainingStopped
from seqtext.keyboard.completion import Completer
from seqtext.models import RNNLanguageModel, parameter_groups

TEXTS = ["Voy al parque con mi pe", "Mi perro ", "¿Quedamos mañana a las o", ""]


def test_shapes_and_parameter_names():
    rnn = CoupledLSTM(6, 8, layers=2, dropout=0.0)
    out, (h, c) = rnn(torch.randn(3, 5, 6))
    assert out.shape == (3, 5, 8) and h.shape == c.shape == (2, 3, 8)
    lstm = torch.nn.LSTM(6, 8, 2, batch_first=True)
    assert list(dict(rnn.named_parameters())) == list(dict(lstm.named_parameters()))  # the saved names of an LSTM
    assert rnn.weight_hh_l0.shape == (24, 8) and rnn.weight_ih_l1.shape == (24, 8)  # three gate blocks, not four
    model = RNNLanguageModel(LMConfig(**{**TINY_MODEL, "layers": 2}, level="word", cell="cifg", vocab_size=20))
    assert list(parameter_groups(model)) == ["embed", "rnn.l0", "rnn.l1", "head"]


def test_a_cifg_is_the_lstm_whose_input_gate_is_its_forget_gate_negated():
    torch.manual_seed(0)
    rnn, lstm = CoupledLSTM(6, 8, layers=2), torch.nn.LSTM(6, 8, 2, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            names = [f"{n}_l{layer}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            for name, weight in zip(names, as_lstm(*(getattr(rnn, n) for n in names)), strict=True):
                getattr(lstm, name).copy_(weight)
    x, state = torch.randn(3, 7, 6), (torch.randn(2, 3, 8), torch.randn(2, 3, 8))
    ours, theirs = rnn(x, state), lstm(x, state)
    assert torch.allclose(ours[0], theirs[0], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours[1], theirs[1], strict=True))


@pytest.mark.parametrize("cell", ["cifg", "lstm", "gru"])
def test_keystroke_steps_equal_the_whole_window(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig(**TINY_MODEL, level="word", cell=cell, vocab_size=30, weight_drop=0.5)).eval()
    ids = torch.randint(4, 30, (2, 6))
    with torch.no_grad():
        stepped, state = model.read(ids)  # a few tokens: cell by cell
        whole = model(ids)[0][:, -1]  # the fused (or windowed) stack
    assert torch.allclose(stepped, whole, atol=1e-5)
    assert isinstance(state, tuple) == (cell != "gru")  # (h, c) for an LSTM and a CIFG


@pytest.mark.parametrize("cell", ["cifg", "lstm", "gru", "rnn"])
def test_weight_drop_drops_recurrent_weights_in_training_only(cell):
    torch.manual_seed(0)
    rnn = make_rnn(cell, 6, 8, 1, 0.0, weight_drop=0.5)
    plain = make_rnn(cell, 6, 8, 1, 0.0)
    plain.load_state_dict(rnn.state_dict())  # the same names as without weight drop
    x = torch.randn(2, 5, 6)
    first, second = rnn(x)[0], rnn(x)[0]
    assert not torch.allclose(first, second), "each forward pass draws its own mask"
    first.sum().backward()
    assert rnn.weight_hh_l0.grad is not None and rnn.weight_hh_l0.grad.abs().sum() > 0
    inputs_only = make_rnn(cell, 6, 8, 1, 0.0, weight_drop=0.5)
    inputs_only.load_state_dict(plain.state_dict())
    with torch.no_grad():  # a one-step window never reads the recurrent weights: nothing is dropped there
        assert torch.allclose(inputs_only(x[:, :1])[0], plain(x[:, :1])[0], atol=1e-6)
    rnn.eval()
    assert torch.allclose(rnn(x)[0], plain(x)[0], atol=1e-6), "inference reads the weights as they are"
    assert torch.equal(rnn.weight_hh_l0, plain.weight_hh_l0), "the parameters themselves are never changed"


def test_the_cifg_refuses_to_read_backwards():
    with pytest.raises(ValueError, match="forward only"):
        make_rnn("cifg", 4, 4, 1, 0.0, bidirectional=True)


@pytest.fixture(scope="module")
def cifg_run(lines_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cifg"
    return train_tiny(lines_file, out, {"level": "word", "cell": "cifg", "weight_drop": 0.3}, ngram=True)


def test_a_cifg_keyboard_trains_saves_and_completes(cifg_run):
    lm = seqtext.load(cifg_run)
    assert isinstance(lm.model.rnn, CoupledLSTM) and lm.config.cell == "cifg" and lm.config.weight_drop == 0.3
    saved = json.loads((cifg_run / "config.json").read_text())["model"]
    assert saved["cell"] == "cifg" and saved["weight_drop"] == 0.3
    assert load_file(str(cifg_run / "model.safetensors"))["rnn.weight_hh_l0"].shape == (3 * 32, 32)
    for typed in TEXTS:
        int8, fp32 = Completer(lm).suggest(typed, 3), Completer(lm, int8=False).suggest(typed, 3)
        assert [c.word for c in int8] == [c.word for c in fp32], typed  # int8 steps run the CIFG too
        assert [c.prob for c in int8] == pytest.approx([c.prob for c in fp32], abs=0.02), typed
    assert [c.word for c in Completer(lm).suggest("Voy al parque con mi pe", 3)]


@pytest.mark.parametrize(
    ("model", "ema"), [({"cell": "cifg", "weight_drop": 0.4}, 0.0), ({"cell": "lstm", "weight_drop": 0.4}, 0.9)]
)
def test_interrupted_and_resumed_run_ends_with_identical_weights(lines_file, tmp_path, model, ema):
    model = {"level": "word", **model}
    options = {"epochs": 3, "patience": 0, "eval_every": 5, "ema": ema}
    straight = train_tiny(lines_file, tmp_path / "straight", model, **options)

    model_config = LMConfig(**{**TINY_MODEL, **model})
    train_config = TrainConfig(data=str(lines_file), out=str(tmp_path / "resumed"), **{**TINY_TRAIN, **options})
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(model_config, train_config, callback=interrupt_at(7))
    seqtext.train_lm(model_config, train_config, resume=True)
    a, b = (load_file(str(run / "model.safetensors")) for run in (straight, tmp_path / "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"


def test_old_runs_load_without_the_field(word_run, tmp_path):
    run = copy_run(word_run, tmp_path / "old")
    config = json.loads((run / "config.json").read_text())
    config["model"].pop("weight_drop")  # as a run saved before weight drop existed
    (run / "config.json").write_text(json.dumps(config))
    assert seqtext.load(run).config.weight_drop == 0.0
    assert [Completer(run).suggest(t) for t in TEXTS] == [Completer(word_run).suggest(t) for t in TEXTS]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"cell": "lstm"}, "trained with 'gru' or 'cifg'"),
        ({"cell": "rnn"}, "trained with 'gru' or 'cifg'"),
        ({"cell": "elman"}, "cell"),
        ({"weight_drop": 1.0}, "weight_drop"),
        ({"weight_drop": "0.3"}, "weight_drop"),
    ],
)
def test_an_edited_config_is_one_clear_error(cifg_run, tmp_path, edit, message):
    run = copy_run(cifg_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    config["model"].update(edit)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as caught:
        seqtext.load(run)
    assert "\n" not in str(caught.value) and "config.json" in str(caught.value)


def test_the_command_line_trains_a_cifg_and_refuses_bad_values(lines_file, tmp_path):
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "run", *TINY_LM_FLAGS, "--level", "word",
                    "--cell", "cifg", "--weight-drop", "0.25", "--max-steps", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seqtext.load(tmp_path / "run").config.cell == "cifg"
    bad = invoke("train", "lm", lines_file, "--out", tmp_path / "bad", "--weight-drop", "1.5")
    assert_clean_error(bad, "--weight-drop")
    assert not (tmp_path / "bad").exists()
    refused = invoke("train", "classifier", "x.tsv", "--out", tmp_path / "c", "--cell", "cifg")
    assert refused.exit_code == 2 and "cifg" in refused.output  # a classifier reads both ways: no such choice
    with pytest.raises(ConfigError, match="weight-drop"):
        LMConfig(weight_drop=-0.1)


def test_the_export_runs_a_cifg_as_the_lstm_it_equals(cifg_run, tmp_path):
    pytest.importorskip("onnx", reason="needs the export extra: pip install -e '.[export]'")
    pytest.importorskip("onnxruntime", reason="needs the export extra: pip install -e '.[export]'")
    from test_export import exported_keyboard

    result = invoke("export", cifg_run, "--out", tmp_path / "export")
    assert result.exit_code == 0, result.output
    keyboard, described = exported_keyboard(cifg_run, tmp_path / "export")
    assert described["cell"] == "lstm"
    reference = Completer(cifg_run, int8=False)
    for typed in TEXTS:
        got, want = keyboard.suggest(typed, 3), reference.suggest(typed, 3)
        assert [c.word for c in got] == [c.word for c in want], typed
        assert [c.prob for c in got] == pytest.approx([c.prob for c in want], abs=1e-4), typed


def test_a_language_model_keeps_its_weight_average(lines_file, tmp_path):
    plain = train_tiny(lines_file, tmp_path / "plain", {"level": "word"}, epochs=2)
    averaged = train_tiny(lines_file, tmp_path / "ema", {"level": "word"}, epochs=2, ema=0.9)
    a, b = (load_file(str(run / "model.safetensors")) for run in (plain, averaged))
    assert not torch.allclose(a["rnn.weight_hh_l0"], b["rnn.weight_hh_l0"]), "the average is what is kept"
    losses = [[json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (plain, averaged)]  # fmt: skip
    assert losses[0] != losses[1], "the average is what is validated"
    assert Completer(averaged).suggest("Mi perro ", 3)


def test_a_classifier_cannot_start_from_a_cifg_language_model(cifg_run):
    from seqtext.config import ClassifierConfig
    from seqtext.sentiment.training import language_model

    with pytest.raises(ConfigError, match="cifg cell, which classifiers lack"):
        language_model(str(cifg_run), ClassifierConfig())
