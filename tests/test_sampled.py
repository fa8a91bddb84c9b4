"""--sampled-softmax: the estimator, its determinism and resume, and the options it refuses."""

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import invoke, train_tiny
from safetensors.torch import load_file

import seqtext
from seqtext.config import ClassifierTrainConfig, TrainConfig
from seqtext.data import LineWindows, StreamWindows
from seqtext.errors import ConfigError
from seqtext.lm.sampled import SampledSoftmax, token_counts

WORD = {"level": "word", "tie_weights": True, "max_vocab": 60}


@torch.no_grad()
def test_with_every_word_drawn_it_is_the_full_softmax():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 40)
    features, targets = torch.randn(30, 8), torch.randint(1, 40, (30,))
    sampler = SampledSoftmax(torch.randint(1, 100, (40,)), samples=200_000)  # every word drawn, P(drawn) = 1
    full = F.cross_entropy(head(features)[:, 1:], targets - 1, reduction="none")  # padding (id 0) is never drawn
    assert torch.allclose(sampler.nll(features, targets, head), full, atol=1e-5)


@torch.no_grad()
def test_a_drawn_target_is_not_counted_twice():
    counts = torch.ones(20, dtype=torch.long)
    counts[5] = 10**12  # one draw is word 5 (all but surely)
    torch.manual_seed(0)
    targets = torch.full((4,), 5)
    nll = SampledSoftmax(counts, samples=1).nll(torch.randn(4, 8), targets, torch.nn.Linear(8, 20))
    assert torch.equal(nll, torch.zeros(4)), "the target alone: log(e^z / e^z) = 0, not log 2"


@torch.no_grad()
def test_the_estimate_is_close_to_the_full_softmax_with_a_few_draws():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 500)
    counts = (1e5 / torch.arange(1, 501)).long()  # Zipf, as words are
    targets = torch.multinomial(counts[1:].float(), 256, replacement=True) + 1
    features = torch.randn(256, 16)
    full = float(F.cross_entropy(head(features)[:, 1:], targets - 1))
    sampled = SampledSoftmax(counts, samples=100)
    estimate = sum(float(sampled.nll(features, targets, head).mean()) for _ in range(20)) / 20
    assert abs(estimate - full) < 0.15 * full


def test_token_counts_of_lines_and_streams():
    lines = LineWindows([[2, 5, 6, 5, 3], [2, 6, 3]], bptt=4, batch_size=1)
    assert token_counts(lines, 8).tolist() == [0, 0, 0, 2, 0, 2, 2, 0], "every target once, <bos> never"
    stream = StreamWindows(torch.tensor([2, 5, 5, 6, 3, 2, 7, 3]), bptt=2, batch_size=2)
    counts = token_counts(stream, 8)
    assert int(counts[1:].sum()) == int((stream.columns[:, 1:] != 0).sum()), "each target once"
    assert counts[5] >= 1 and counts[7] == 1


def test_a_sampled_run_trains_is_deterministic_and_evaluates_exactly(lines_file, tmp_path):
    a, b = (train_tiny(lines_file, tmp_path / name, WORD, epochs=2, sampled_softmax=8) for name in "ab")
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "the draws follow the seed"
    full = load_file(train_tiny(lines_file, tmp_path / "full", WORD, epochs=2) / "model.safetensors")
    assert not all(torch.equal(wa[k], full[k]) for k in wa), "the sampled loss trained differently"
    assert json.loads((a / "train_config.json").read_text())["sampled_softmax"] == 8
    metrics = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    report = seqtext.evaluate(a, lines_file)  # the full softmax, as after any training
    assert report.perplexity < seqtext.load(a).config.vocab_size  # it learned something
    assert any(m.get("val_loss") for m in metrics)


def test_cli_trains_with_sampled_softmax(lines_file, tmp_path):
    out = tmp_path / "cli"
    result = invoke(
        "train", "lm", str(lines_file), "--out", str(out), "--level", "word", "--embed-dim", "16",
        "--hidden-dim", "16", "--epochs", "1", "--batch-size", "8", "--sampled-softmax", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "train_config.json").read_text())["sampled_softmax"] == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampled-softmax", "-1"], "--sampled-softmax"),
        (["--sampled-softmax", "10", "--teacher-forcing", "0.5"], "--teacher-forcing"),
    ],
)
def test_bad_sampled_softmax_options_are_one_line_errors(lines_file, tmp_path, args, message):
    result = invoke("train", "lm", str(lines_file), "--out", str(tmp_path / "bad"), "--level", "word", *args)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "bad" / "config.json").exists()


def test_configs_refuse_what_sampled_softmax_cannot_do():
    with pytest.raises(ConfigError, match="sampled_softmax"):
        TrainConfig(sampled_softmax=10, teacher_forcing=0.5)
    with pytest.raises(ConfigError, match="sampled_softmax"):
        ClassifierTrainConfig(sampled_softmax=10)
