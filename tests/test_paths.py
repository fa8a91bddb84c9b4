"""Paths (issue 9): unwritable outputs are refused before the work starts (class 2), a run is a place
and resumes wherever it is (class 6), one writer per run directory (class 7), and weight files get
the permissions of every other file of the run (class 10)."""

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    FIXTURES,
    ROOT,
    SENTENCES,
    TINY_MODEL,
    TINY_TRAIN,
    assert_clean_error,
    copy_run,
    interrupt_at,
    invoke,
    train_tiny,
)

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError, TrainingStopped
from seqtext.files import LOCK_NAME, check_output_file, remove_stale_temporaries, replacing, run_lock

TINY = ["--embed-dim", "16", "--hidden-dim", "32", "--layers", "1", "--batch-size", "8", "--precision", "fp32"]
CLASSIFIER = FIXTURES / "run-0.1.0-classifier"
PHRASES = "PhraseId\tSentenceId\tPhrase\tSentiment\n1\t1\ta great film\t4\n2\t2\tan awful film\t0\n"
not_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")


# Class 2: outputs that cannot be written are refused before any work (the data named here does not
# even exist: the refusal comes first).


@pytest.mark.parametrize("command", ["lm", "classifier"])
def test_out_that_is_a_file(tmp_path, command):
    (tmp_path / "taken").write_text("mine", encoding="utf-8")
    result = invoke("train", command, tmp_path / "missing.tsv", "--out", tmp_path / "taken", *TINY)
    assert_clean_error(result, "is a file, not a directory")
    assert (tmp_path / "taken").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("command", ["lm", "classifier"])
def test_out_under_a_file(tmp_path, command):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    result = invoke("train", command, tmp_path / "missing.tsv", "--out", tmp_path / "file" / "run", *TINY)
    assert_clean_error(result, "is a file, so nothing can be created under it")


@not_root
def test_out_in_a_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = invoke("train", "lm", tmp_path / "missing.txt", "--out", locked / "run", *TINY)
        assert_clean_error(result, "no permission to create it")
    finally:
        locked.chmod(0o755)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "command", [["train", "lm", "missing.txt", "--out"], ["classify", CLASSIFIER, "x.txt", "--output"]]
)
def test_outputs_where_nothing_can_be_created(command):
    """/proc refuses new files even to root, whom permission bits never stop: the check really writes."""
    assert_clean_error(invoke(*command, "/proc/seqtext-run"), "cannot create it in /proc")


def test_a_failed_run_leaves_no_directory(tmp_path):
    result = invoke("train", "lm", tmp_path / "missing.txt", "--out", tmp_path / "new" / "run", *TINY)
    assert_clean_error(result, "no such file")
    assert not (tmp_path / "new" / "run").exists()


def test_classify_output_checks(tmp_path, lines_file):
    inputs = tmp_path / "texts.txt"
    inputs.write_text("a great film\nan awful film\n", encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    for output, message in [
        (tmp_path, "is a directory; give a file name"),
        (tmp_path / "file" / "out.tsv", "is a file, so nothing can be created under it"),
        (inputs, "is also an input; writing it would destroy it"),
    ]:
        assert_clean_error(invoke("classify", CLASSIFIER, inputs, "--output", output), message)
    assert inputs.read_text(encoding="utf-8").startswith("a great film")
    result = invoke("classify", CLASSIFIER, inputs, "--output", tmp_path / "new" / "preds.tsv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "preds.tsv").read_text(encoding="utf-8").count("\n") == 3
    assert invoke("classify", CLASSIFIER, inputs, "--output", os.devnull).exit_code == 0  # written in place


def test_evaluate_plot_checks(tmp_path, char_run, lines_file):
    data = tmp_path / "d.tsv"
    data.write_text(PHRASES, encoding="utf-8")
    for plot, message in [
        (tmp_path, "is a directory"),
        (tmp_path / "plot.txt", "--plot " + str(tmp_path / "plot.txt") + ": give a file name ending in .png"),
        (data, "is also an input; writing it would destroy it"),
        (data.with_suffix(".png").parent / "x" / "y.png", None),
    ]:
        result = invoke("evaluate", CLASSIFIER, data, "--plot", plot)
        if message is None:
            pytest.importorskip("matplotlib")
            assert result.exit_code == 0, result.output
            assert plot.is_file() and not list(plot.parent.glob(".*.tmp"))
        else:
            assert_clean_error(result, message)
    assert_clean_error(invoke("evaluate", char_run, lines_file, "--plot", tmp_path / "x.png"), "confusion matrix")


def test_prompt_file_that_is_a_directory(char_run, tmp_path):
    assert_clean_error(
        invoke("generate", char_run, "--prompt-file", tmp_path), "--prompt-file " + str(tmp_path) + " is a directory"
    )
    assert_clean_error(invoke("generate", char_run, "--prompt-file", tmp_path / "no.txt"), "no such file")


def test_data_that_is_a_pipe(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = invoke("train", "lm", fifo, "--out", tmp_path / "r", *TINY)
    assert_clean_error(result, "is not a regular file (a pipe or a device)")


def test_output_file_helper_directly(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_file(tmp_path, "--output")
    check_output_file(tmp_path / "a" / "b.txt", "--output")  # a missing parent is created when writing


# Class 10 and unique temporaries.


def test_weights_have_the_same_permissions_as_the_other_files(lines_file, tmp_path):
    previous = os.umask(0o027)
    try:
        run = train_tiny(lines_file, tmp_path / "r", epochs=1)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert set(modes.values()) == {0o640}, modes


def test_temporary_files_are_unique_and_cleaned(tmp_path):
    target = tmp_path / "x.json"
    with replacing(target) as first, replacing(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("1", encoding="utf-8")
        second.write_text("2", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "1" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError
    assert target.read_text(encoding="utf-8") == "1" and list(tmp_path.iterdir()) == [target]


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".model.safetensors.{dead.stdout.strip()}-abcd1234.tmp"
    alive = tmp_path / f".model.safetensors.{os.getpid()}-abcd1234.tmp"
    stale.write_bytes(b"half")
    alive.write_bytes(b"being written")
    remove_stale_temporaries(tmp_path)
    assert not stale.exists() and alive.exists()


# Class 7: one writer per run directory.

HOLD = "import sys, time; from pathlib import Path; from seqtext.files import run_lock\n" + (
    "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n"
)


def test_second_writer_is_refused_and_a_killed_one_blocks_nothing(lines_file, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == "held\n"
        result = invoke("train", "lm", tmp_path / "not-read-yet.txt", "--out", out, *TINY)
        assert_clean_error(result, f"is being written by another seqtext process (pid {holder.pid})")
        with pytest.raises(CheckpointError, match="being written by another seqtext process"):
            train_tiny(lines_file, out, epochs=1)
        holder.send_signal(signal.SIGKILL)  # no cleanup at all: the lock file stays, unlocked
        holder.wait(timeout=30)
        assert (out / LOCK_NAME).exists()
        train_tiny(lines_file, out, epochs=1)
        assert (out / "config.json").is_file() and not (out / LOCK_NAME).exists()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_the_lock_is_released_after_a_failure(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), run_lock(out):
        raise RuntimeError
    with run_lock(out):
        assert (out / LOCK_NAME).exists()
    assert not out.exists(), "a run that wrote nothing leaves no directory"


# Class 6: a run is a place.


def test_moved_run_resumes_from_anywhere(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "corpus" / "frases.txt").write_text("".join(s + "\n" for s in SENTENCES * 10), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(data="corpus/frases.txt", out="first", **{**TINY_TRAIN, "eval_every": 2})
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(LMConfig(**TINY_MODEL), config, callback=interrupt_at(3))
    shutil.move("first", "moved")
    monkeypatch.chdir(tmp_path / "elsewhere")
    other = tmp_path / "elsewhere" / "other.txt"
    other.write_text("Otra cosa.\n" * 60, encoding="utf-8")
    assert_clean_error(invoke("train", "lm", other, "--out", "../moved", "--resume", *TINY), "but the run in ../moved")
    # the run by a relative path from another directory, its data by another relative path
    result = invoke("train", "lm", "../corpus/frases.txt", "--out", "../moved", "--resume")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "moved" / "config.json").is_file() and not (tmp_path / "first").exists()


def test_a_copy_of_the_data_is_the_same_data(interrupted_run, lines_file, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    data = tmp_path / "copy-of-frases.txt"
    shutil.copy(lines_file, data)
    result = invoke("train", "lm", data, "--out", run, "--resume")
    assert result.exit_code == 0, result.output


def test_copied_run_resumes_by_absolute_path(interrupted_run, lines_file, tmp_path):
    copy = copy_run(interrupted_run, tmp_path / "copy")
    result = invoke("train", "lm", lines_file.resolve(), "--out", copy.resolve(), "--resume")
    assert result.exit_code == 0, result.output
    assert (interrupted_run / "trainer_state.json").is_file(), "the original is untouched"


def test_resume_of_the_other_kind_says_which_command(interrupted_run, tmp_path):
    result = invoke("train", "classifier", tmp_path / "d.tsv", "--out", interrupted_run, "--resume")
    assert_clean_error(result, "holds a language-model run")
