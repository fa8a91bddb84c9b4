"""Training beside a busy process: one thread per core no other process keeps busy
(seqtext.runtime.free_core_threads), measured from /proc/stat as a training call starts."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import PHRASES, invoke

from seqtext import runtime

TINY = ["--embed-dim", "8", "--hidden-dim", "8", "--layers", "1", "--batch-size", "8", "--max-steps", "2"]


def test_busy_cores_are_read_from_the_ticks_of_this_process_cpus(monkeypatch):
    monkeypatch.setattr(runtime, "allowed_cores", lambda: {0, 1})
    # since the first reading: cpu0 100 ticks, none idle; cpu1 100 ticks, half idle; cpu2 is not this process's
    samples = iter([{0: (100, 50), 1: (100, 100), 2: (0, 0)}, {0: (200, 50), 1: (200, 150), 2: (100, 0)}])
    assert runtime.busy_cores_elsewhere(0.05, read=lambda: next(samples)) == pytest.approx(1.5, abs=0.05)

    def unreadable():
        raise OSError("no /proc/stat")

    assert runtime.busy_cores_elsewhere(0.05, read=unreadable) == 0.0
    assert 0.0 <= runtime.busy_cores_elsewhere(0.05) <= len(runtime.allowed_cores())  # this machine's, read


@pytest.fixture
def two_cores(monkeypatch):
    """A 2-core machine where torch would use both threads, and nobody set OMP_NUM_THREADS."""
    monkeypatch.setattr(runtime, "DEFAULT_THREADS", 2)
    monkeypatch.setattr(runtime, "allowed_cores", lambda: {0, 1})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)


def busy(monkeypatch, cores):
    monkeypatch.setattr(runtime, "busy_cores_elsewhere", lambda: cores)


def test_a_busy_core_leaves_one_thread_and_the_callers_setting_comes_back(two_cores, monkeypatch):
    busy(monkeypatch, 1.0)
    with runtime.free_core_threads() as note:
        assert torch.get_num_threads() == 1
        assert note == "1 thread of 2: other processes keep 1.0 of the 2 cores busy (OMP_NUM_THREADS=N sets them)"
    assert torch.get_num_threads() == 2
    busy(monkeypatch, 0.4)  # less than half a core: both threads
    with runtime.free_core_threads() as note:
        assert note == "" and torch.get_num_threads() == 2
    busy(monkeypatch, 1.9)  # never fewer than one
    with runtime.free_core_threads():
        assert torch.get_num_threads() == 1


def test_omp_num_threads_or_the_callers_own_count_wins(two_cores, monkeypatch):
    busy(monkeypatch, 1.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with runtime.free_core_threads() as note:
        assert note == "" and torch.get_num_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(1)  # a Python caller chose, though the machine is busy or not
    busy(monkeypatch, 0.0)
    with runtime.free_core_threads() as note:
        assert note == "" and torch.get_num_threads() == 1


def test_training_says_it_uses_fewer_threads_and_gives_them_back(two_cores, monkeypatch, lines_file, tmp_path):
    busy(monkeypatch, 1.0)
    done = invoke("train", "lm", lines_file, "--out", tmp_path / "lm", *TINY)
    assert done.exit_code == 0, done.output
    assert "1 thread of 2: other processes keep 1.0 of the 2 cores busy" in done.stderr
    assert torch.get_num_threads() == 2
    busy(monkeypatch, 0.0)
    tiny_classifier = ["--embed-dim", "8", "--hidden-dim", "8", "--epochs", "1", "--max-steps", "2"]
    idle = invoke("train", "classifier", PHRASES, "--out", tmp_path / "cl", *tiny_classifier)
    assert idle.exit_code == 0, idle.output
    assert "thread" not in idle.stderr


@pytest.mark.skipif(
    runtime.DEFAULT_THREADS < 2 or len(runtime.allowed_cores()) != runtime.DEFAULT_THREADS,
    reason="needs torch to use one thread per core, on at least 2 cores",
)
def test_a_real_busy_process_beside_a_training_run(lines_file, tmp_path):
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        done = subprocess.run(
            [sys.executable, "-m", "seqtext", "train", "lm", str(lines_file), "--out", str(tmp_path / "lm"), *TINY],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    finally:
        spinner.kill()
        spinner.wait()
    assert done.returncode == 0, done.stderr
    cores = runtime.DEFAULT_THREADS
    assert f"of {cores}: other processes keep" in " ".join(done.stderr.split()), done.stderr
    assert json.loads((tmp_path / "lm" / "train_config.json").read_text())["max_steps"] == 2
