"""The keyboard's int8 steps (keyboard/int8.py): the fp32 model's answers to quantization error, the same
suggestions on a trained keyboard, `--no-int8` / int8=False for fp32, and what it cannot run named."""

from types import SimpleNamespace

import pytest
import torch
from helpers import SENTENCES, invoke

import seqtext
from seqtext.config import LMConfig
from seqtext.keyboard import int8
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.int8 import Int8Steps, supported
from seqtext.models import RNNLanguageModel


def tiny(**fields) -> RNNLanguageModel:
    torch.manual_seed(0)
    config = LMConfig(**{"level": "word", "vocab_size": 50, "embed_dim": 12, "hidden_dim": 16, **fields})
    return RNNLanguageModel(config).eval()


@pytest.mark.parametrize("fields", [{}, {"layers": 2}, {"tie_weights": True}])
def test_int8_steps_follow_the_fp32_model(fields):
    model = tiny(**fields)
    steps, ids = Int8Steps(model), torch.randint(4, 50, (1, 6), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, (h, c) = model.read(ids)
        logits, (h8, c8) = steps.read(ids)
        rows, _ = steps.read_rows([[5, 6, 7], [8, 9]], (h8.expand(-1, 2, -1), c8.expand(-1, 2, -1)))
        alone, _ = steps.read_rows([[8, 9]], (h8, c8))
    for int8_value, fp32_value in ((logits, expected), (h8, h), (c8, c)):
        assert torch.allclose(int8_value, fp32_value, atol=0.03)  # int8: about 1% of the range
    assert torch.equal(rows[1:], alone), "a row's int8 answer depends on the rows batched with it"


@pytest.mark.parametrize(
    ("fields", "why"), [({"cell": "gru"}, "its cell is gru"), ({"level": "char"}, "char-level model")]
)
def test_what_int8_cannot_run_is_named_and_runs_in_fp32(fields, why, monkeypatch, keyboard_run):
    model = tiny(**fields)
    assert why in supported(model)
    with pytest.raises(ValueError, match=why):
        Int8Steps(model)
    monkeypatch.setattr(torch.backends.quantized, "engine", "qnnpack")
    assert "quantized engine is qnnpack, not x86" in supported(tiny())
    monkeypatch.undo()
    monkeypatch.setattr(torch.ops, "quantized", SimpleNamespace())  # a torch whose quantized kernels are gone
    assert supported(tiny()) == "this torch has no quantized linear kernels"
    assert not isinstance(Completer(keyboard_run).reader.steps, Int8Steps)  # it types, in fp32


def test_int8_and_fp32_keyboards_suggest_alike(keyboard_run):
    lm = seqtext.load(keyboard_run)
    fast, plain = Completer(lm), Completer(lm, int8=False)
    assert isinstance(fast.reader.steps, Int8Steps) and plain.reader.steps is lm.model
    for sentence in SENTENCES:
        for cut in range(1, len(sentence), 3):
            a, b = fast.suggest(sentence[:cut], 3), plain.suggest(sentence[:cut], 3)
            assert [c.prob for c in a] == pytest.approx([c.prob for c in b], abs=0.02), sentence[:cut]
            assert [c.word for c in a][:1] == [c.word for c in b][:1] or abs(a[0].prob - a[1].prob) < 0.02
    assert seqtext.complete(lm, "Voy al parque con mi pe", int8=False) == plain.suggest("Voy al parque con mi pe")
    assert ("keyboard.Completer", True, False) in lm.reused  # each setting keeps its own Completer


def test_the_command_line_switch(keyboard_run, monkeypatch):
    built = []
    original = int8.Int8Steps.__init__
    monkeypatch.setattr(int8.Int8Steps, "__init__", lambda self, model: built.append(model) or original(self, model))
    for flag, count in (("--no-int8", 0), ("--int8", 1)):
        result = invoke("complete", keyboard_run, "--text", "Voy al parque con mi pe", flag)
        assert result.exit_code == 0, result.output
        assert "perro" in result.stdout and len(built) == count
    result = invoke("complete", keyboard_run, "--text", "Voy", "--int8=sí")
    assert result.exit_code == 2 and "Traceback" not in result.output and "does not take a value" in result.output
