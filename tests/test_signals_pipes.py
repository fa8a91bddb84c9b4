"""Signals and pipes (issue 9, classes 5 and 9): SIGTERM saves and exits like Ctrl-C (exit 143), a loss
that diverges before the first checkpoint says so, and a reader that leaves the pipe (`| head`)
ends the command quietly with exit 0. Real processes; each is killed in a finally."""

import json
import signal
import subprocess
import sys
import time

import pytest
from helpers import FIXTURES, ROOT, SENTENCES, TINY_LM_FLAGS, invoke, train_tiny

from seqtext.errors import TrainingStopped

TINY = TINY_LM_FLAGS
CLASSIFIER = FIXTURES / "run-0.1.0-classifier"


def seqtext_process(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "seqtext", *map(str, args)], cwd=ROOT, text=True, **popen)


def finish(process, timeout=120):
    """Wait for a process, killing it if it hangs; returns (stdout, stderr)."""
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def terminate_when(process, ready):
    """Send SIGTERM once ready() holds (real progress, not a clock); returns the process's stderr."""
    try:
        while not ready():
            time.sleep(0.02)
            assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGTERM)
        return finish(process)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def assert_quiet(stderr):
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "BrokenPipe" not in stderr, stderr


def test_sigterm_saves_and_exits_143(tmp_path):
    data = tmp_path / "many.txt"
    data.write_text("".join(s + "\n" for s in SENTENCES * 1000), encoding="utf-8")  # ~700 steps per epoch
    out = tmp_path / "r"
    process = seqtext_process("train", "lm", data, "--out", out, *TINY, "--epochs", "1", "--eval-every", "50",
                              stderr=subprocess.PIPE)  # fmt: skip
    stderr = terminate_when(process, (out / "model.safetensors").exists)  # the first checkpoint: there is a step
    assert process.returncode == 143, stderr
    assert "terminated at step" in stderr and "progress saved. Resume with:" in stderr and "--resume" in stderr
    assert_quiet(stderr)
    assert (out / "optimizer.safetensors").is_file() and not list(out.glob(".*.tmp"))
    step = int(stderr.split("terminated at step ")[1].split(";")[0])
    assert json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["step"] == step
    # what --resume does next is the same as after Ctrl-C (tests/test_cli.py resumes that run to the end)
    result = invoke("train", "lm", data, "--out", out, "--resume", "--lr", "0.5")
    assert result.exit_code == 1 and "--lr is 0.5 but the run" in result.stderr


def test_sigterm_outside_training_cleans_up(tmp_path):
    """classify --output, stopped while it reads: exit 143 and no temporary file left behind."""
    output = tmp_path / "out" / "preds.tsv"
    process = seqtext_process("classify", CLASSIFIER, "-", "--output", output,
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    process.stdin.write("a great film\n")
    process.stdin.flush()
    stderr = terminate_when(process, lambda: list(output.parent.glob(".*.tmp")))  # its temporary output: reading
    assert process.returncode == 143 and "terminated" in stderr, stderr
    assert_quiet(stderr)
    assert list(output.parent.iterdir()) == [], "a stopped run leaves neither output nor temporary file"


def test_nan_before_the_first_checkpoint_says_so(lines_file, tmp_path, monkeypatch):
    from seqtext.lm.training import LMTask

    original = LMTask.loss
    monkeypatch.setattr(LMTask, "loss", lambda task, w: (original(task, w)[0] * float("nan"), 1))
    with pytest.raises(TrainingStopped, match=r"at step 1; stopped\. No checkpoint had been saved yet") as stopped:
        train_tiny(lines_file, tmp_path / "nan", eval_every=5)
    assert "best checkpoint" not in str(stopped.value)
    assert not (tmp_path / "nan" / "config.json").exists()


def read_then_leave(process, amount):
    """Read a little of a process's stdout, then close the pipe as `head` does."""
    first = process.stdout.readline() if amount == "line" else process.stdout.read(amount)
    process.stdout.close()
    _, stderr = finish(process)
    return first, stderr


def test_generate_into_head(char_run):
    process = seqtext_process("generate", char_run, "--max-new-tokens", "1000000", "--prompt", "Mi ",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    first, stderr = read_then_leave(process, 20)
    assert len(first) == 20 and process.returncode == 0, stderr
    assert_quiet(stderr)


def test_classify_into_head(tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("a great film\nan awful film\n" * 5_000, encoding="utf-8")  # far more than a pipe holds
    process = seqtext_process("classify", CLASSIFIER, texts, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first, stderr = read_then_leave(process, "line")
    assert first.startswith("label\tname\t") and process.returncode == 0, stderr
    assert_quiet(stderr)


def test_complete_into_head(word_run, tmp_path):
    typed = tmp_path / "typed.txt"
    typed.write_text("Voy al parque con mi per\n" * 5000, encoding="utf-8")
    with typed.open("rb") as stdin:
        process = seqtext_process("complete", word_run, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first, stderr = read_then_leave(process, "line")
    assert first.strip() and process.returncode == 0, stderr
    assert_quiet(stderr)


def test_training_survives_a_closed_progress_pipe(lines_file, tmp_path):
    """`seqtext train ... 2>&1 | head -1`: the progress has no reader, but the run finishes and saves."""
    out = tmp_path / "r"
    process = seqtext_process("train", "lm", lines_file, "--out", out, *TINY, "--epochs", "1",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    first, _ = read_then_leave(process, "line")
    assert first and process.returncode == 0
    assert (out / "config.json").is_file() and not (out / "trainer_state.json").exists()
