import json
import os
import signal

import pytest
import torch
from helpers import TINY_MODEL, TINY_TRAIN, train_tiny
from safetensors.torch import load_file

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import ConfigError, TrainingStopped


def weights(run):
    return load_file(str(run / "model.safetensors"))


def test_learns_a_repeating_pattern(tmp_path):
    corpus = tmp_path / "abcd.txt"
    corpus.write_text(("abcd" * 25 + "\n") * 80, encoding="utf-8")  # no sentence ends: read as a stream
    run = train_tiny(corpus, tmp_path / "m", epochs=8, lr=1e-2)
    assert seqtext.load(run).config.sample_by == "stream"
    assert seqtext.generate(run, "abcdab", max_new_tokens=6, temperature=0) == "cdabcd"


def test_loss_goes_down(char_run):
    losses = [r["val_loss"] for r in map(json.loads, (char_run / "metrics.jsonl").read_text().splitlines())]
    assert losses[-1] < losses[0] - 0.5, losses


def test_same_seed_same_weights(lines_file, tmp_path):
    a, b = (train_tiny(lines_file, tmp_path / name, epochs=1) for name in "ab")
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = weights(train_tiny(lines_file, tmp_path / "c", epochs=1, seed=1))
    assert not all(torch.equal(wa[k], c[k]) for k in wa)


@pytest.mark.parametrize(
    ("corpus", "model", "sampled"),
    [("lines_file", {}, 0), ("prose_file", {"cell": "gru"}, 0), ("lines_file", {"level": "word"}, 10)],
)
def test_interrupted_and_resumed_run_ends_with_identical_weights(corpus, model, sampled, request, tmp_path):
    data = request.getfixturevalue(corpus)
    options = {"epochs": 3, "patience": 0, "eval_every": 5, "sampled_softmax": sampled}
    straight = train_tiny(data, tmp_path / "straight", model, **options)

    def interrupt_at_step_7(event):
        if event.kind == "step" and event.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    model_config = LMConfig(**{**TINY_MODEL, **model})
    train_config = TrainConfig(data=str(data), out=str(tmp_path / "resumed"), **{**TINY_TRAIN, **options})
    with pytest.raises(TrainingStopped) as stopped:
        seqtext.train_lm(model_config, train_config, callback=interrupt_at_step_7)
    assert stopped.value.interrupted and stopped.value.step == 7
    assert (tmp_path / "resumed" / "optimizer.safetensors").is_file()
    result = seqtext.train_lm(model_config, train_config, resume=True)
    assert result.steps > 7
    a, b = weights(straight), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
    metrics = [(tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("straight", "resumed")]
    losses = [[json.loads(line)["val_loss"] for line in m] for m in metrics]
    assert losses[0] == losses[1]
    assert not (tmp_path / "resumed" / "trainer_state.json").exists(), "a finished run keeps no resume state"


def test_resume_refuses_changed_options(lines_file, tmp_path):
    def interrupt(event):
        if event.kind == "step" and event.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    config = TrainConfig(data=str(lines_file), out=str(tmp_path / "r"), **TINY_TRAIN)
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(LMConfig(**TINY_MODEL), config, callback=interrupt)
    changed = TrainConfig(data=str(lines_file), out=str(tmp_path / "r"), **{**TINY_TRAIN, "lr": 0.1})
    with pytest.raises(ConfigError, match=r"--lr is 0.1 but the run .* was started with 0\.003"):
        seqtext.train_lm(LMConfig(**TINY_MODEL), changed, resume=True)


def test_a_finished_run_is_never_overwritten(char_run, lines_file):
    with pytest.raises(ConfigError, match="already holds a run"):
        train_tiny(lines_file, char_run)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lines_file, tmp_path, monkeypatch):
    from seqtext.lm.training import LMTask

    original, calls = LMTask.loss, []

    def poisoned(task, window):
        loss, tokens = original(task, window)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 4 else loss), tokens

    monkeypatch.setattr(LMTask, "loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingStopped, match=r"loss became nan at step 4; stopped\. The best checkpoint \(step 2\)"):
        train_tiny(lines_file, out, eval_every=2)
    saved = weights(out)
    assert all(torch.isfinite(v).all() for v in saved.values()), "the kept checkpoint is the last good one"
    assert seqtext.load(out).config.vocab_size > 4


def test_max_time_stops_training(lines_file, tmp_path):
    result = seqtext.train_lm(
        LMConfig(**TINY_MODEL),
        TrainConfig(data=str(lines_file), out=str(tmp_path / "t"), **{**TINY_TRAIN, "epochs": 10_000, "max_time": 0.5}),
    )
    assert result.stopped_by == "max_time"


def test_patience_stops_early(lines_file, tmp_path):
    valid = tmp_path / "valid.txt"  # characters never seen in training: the validation loss can only get worse
    valid.write_text("xyz wq kk\n" * 5, encoding="utf-8")
    result = seqtext.train_lm(
        LMConfig(**TINY_MODEL),
        TrainConfig(
            data=str(lines_file),
            out=str(tmp_path / "p"),
            valid=str(valid),
            **{**TINY_TRAIN, "epochs": 200, "patience": 2},
        ),
    )
    assert result.stopped_by == "patience" and result.steps < 200 * 7


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_scheduled_sampling_trains(lines_file, tmp_path, cell):
    result = seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, "cell": cell}),
        TrainConfig(
            data=str(lines_file), out=str(tmp_path / cell), **{**TINY_TRAIN, "epochs": 1, "teacher_forcing": 0.5}
        ),
    )
    assert result.steps > 0 and result.best_metrics["val_loss"] > 0


def test_bf16_precision_is_reported(lines_file, tmp_path):
    from seqtext.runtime import bf16_supported

    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    result = seqtext.train_lm(
        LMConfig(**TINY_MODEL),
        TrainConfig(data=str(lines_file), out=str(tmp_path / "b"), **{**TINY_TRAIN, "epochs": 1, "precision": "bf16"}),
    )
    assert result.precision == "bf16"


def test_bf16_without_hardware_support_is_a_clear_error(lines_file, tmp_path):
    from seqtext.errors import ConfigError
    from seqtext.runtime import bf16_supported

    if bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has native bf16")
    with pytest.raises(ConfigError, match="--precision bf16: this CPU has no native bf16"):
        train_tiny(lines_file, tmp_path / "b", precision="bf16")
    assert not (tmp_path / "b" / "config.json").exists()


def test_explicit_validation_file_and_tied_word_model(lines_file, tmp_path):
    valid = tmp_path / "valid.txt"
    valid.write_text("Mi perro juega en el parque.\n", encoding="utf-8")
    out = train_tiny(
        lines_file, tmp_path / "w", {"level": "word", "tie_weights": True, "max_vocab": 30}, valid=str(valid)
    )
    lm = seqtext.load(out)
    assert lm.config.vocab_size == 30 and lm.model.head.weight is lm.model.embed.weight
    assert json.loads((out / "train_config.json").read_text())["valid"] == str(valid)
