"""`seqtext inspect`: a run at a glance, as text and as JSON; bad run directories are one clear line."""

import json

import pytest
from helpers import FIXTURES, assert_clean_error, copy_run, invoke

import seqtext
from seqtext.lm.training import LMTask
from seqtext.models import count_parameters
from seqtext.runs.inspection import MONITOR
from seqtext.sentiment.training import ClassifierTask


def test_inspect_json_of_a_language_model(char_run):
    result = invoke("inspect", char_run, "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert (s["kind"], s["model"]["cell"], s["model"]["level"], s["model"]["hidden_dim"]) == ("lm", "lstm", "char", 32)
    assert list(s["parameters_per_layer"]) == ["embed", "rnn.l0", "head"]
    assert sum(s["parameters_per_layer"].values()) == s["parameters"] == count_parameters(seqtext.load(char_run).model)
    assert s["vocab_size"] == seqtext.load(char_run).tokenizer.get_vocab_size()
    assert s["vocab_sample"][:2] == [" ", "."] and "<pad>" not in s["vocab_sample"]  # characters in sorted order
    assert s["recipe"]["bptt"] == 16 and s["recipe"]["epochs"] == 3
    records = [json.loads(line) for line in (char_run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    best = min(records, key=lambda r: r["val_loss"])
    assert s["best"]["metric"] == "val_loss" and s["best"]["step"] == best["step"]
    assert s["best"]["figures"]["val_bpc"] == best["val_bpc"] and s["last"]["step"] == records[-1]["step"]
    assert s["evaluations"] == len(records) and not s["resumable"]
    assert s["files"]["model.safetensors"] == (char_run / "model.safetensors").stat().st_size


def test_inspect_text_of_a_classifier_fixed_on_disk():
    result = invoke("inspect", FIXTURES / "run-0.1.0-classifier")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    for part in [
        "classifier over 5 labels: negative, somewhat negative",
        "word-level bidirectional LSTM, 1 × 8",
        "1,325: embed 88 · rnn.l0 576 · rnn.l0_reverse 576 · head 85",
        '11 tokens; "▁film"',
        "best val_accuracy 1.0000 (max) at step 112",
        "state finished",
        "model.safetensors 6.1 kB",
    ]:
        assert part in text, (part, text)


def test_inspect_shows_an_unfinished_run_and_the_command_that_finishes_it(interrupted_run, lines_file, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "r")
    result = invoke("inspect", run)
    shown = " ".join(result.stderr.split())
    assert result.exit_code == 0 and "unfinished: its training has not finished" in shown
    assert f"resume with: seqtext train lm {lines_file} --out {run} --resume" in shown
    summary = json.loads(invoke("inspect", run, "--json").stdout)
    assert summary["resumable"] and "at step 3" in summary["unfinished"]
    (run / "trainer_state.json").write_text("{}", encoding="utf-8")  # a damaged state is named, not ignored
    result = invoke("inspect", run)
    assert result.exit_code == 1 and "trainer_state.json" in result.stderr


def test_the_kept_checkpoint_is_named_by_the_tasks_own_figure():
    assert {"lm": LMTask.monitor, "classifier": ClassifierTask.monitor} == MONITOR


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "model.safetensors").unlink(), "is not a seqtext run (missing model.safetensors)"),
        (lambda run: (run / "config.json").write_text('{"format_version": 9}'), "uses run format 9, newer than"),
        (lambda run: (run / "config.json").write_text("{"), "config.json is not readable JSON"),
        (lambda run: (run / "train_config.json").write_text('{"bptt": -1}'), 'field "bptt" must be between 1'),
        (lambda run: (run / "metrics.jsonl").write_text('{"step": 1}\n{"st'), "metrics.jsonl, line 2"),
        (lambda run: (run / "model.safetensors").write_bytes(b"junk"), "not a complete safetensors file"),
    ],
)
def test_inspect_refuses_damaged_runs_in_one_line(char_run, tmp_path, damage, message):
    run = copy_run(char_run, tmp_path / "r")
    damage(run)
    assert_clean_error(invoke("inspect", run), message)


def test_inspect_of_a_folder_that_is_no_run(tmp_path):
    assert_clean_error(invoke("inspect", tmp_path), "is not a seqtext run")
