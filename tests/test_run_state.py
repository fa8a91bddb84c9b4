"""A run's last steps are part of the run: a run is finished only when everything it promised is
written, a full disk or a read-only one at any write stops it in one line and leaves it resumable,
a signal during the steps after training is resumable, and the commands that use a run say when
it is unfinished instead of running without a part it promised.

A failed write is simulated where it happens (the writer's temporary file is written, then the
write fails as its library reports it: safetensors' SafetensorError, Python's OSError), and, where the
machine allows a private tmpfs (`unshare`), made real: a filesystem that is really full."""

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    PHRASES,
    ROOT,
    TINY_CLASSIFIER_FLAGS,
    TINY_LM_FLAGS,
    TINY_MODEL,
    TINY_TRAIN,
    assert_clean_error,
    copy_run,
    interrupt_at,
    invoke,
)
from safetensors import SafetensorError
from safetensors.torch import load_file

import seqtext
import seqtext.jsonfiles
import seqtext.runs.resume
import seqtext.runs.saving
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import CheckpointError, TrainingStopped

TINY = [*TINY_LM_FLAGS, "--epochs", "3", "--eval-every", "2", "--patience", "0"]
KEYBOARD = [*TINY, "--level", "word", "--ngram", "--fp16-weights"]


def error_line(result) -> str:
    """The one error line of a command that failed cleanly (a training's progress lines may precede it)."""
    return assert_clean_error(result, after_progress=True)


def tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = tensors(a), tensors(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@contextlib.contextmanager
def full_disk_at(monkeypatch, name: str, nth: int, error: int = errno.ENOSPC):
    """The nth write of a file called `name` fails (no space left, or the errno `error`: a read-only
    disk, an I/O error, no permission) where and as its writer fails: safetensors' Rust writer while
    it writes, in its own words; a JSON or tokenizer file when it is closed and renamed."""
    count = [0]

    def failing(target_name: str) -> bool:
        count[0] += target_name == name
        return target_name == name and count[0] == nth

    why = f"{os.strerror(error)} (os error {error})"

    def tensor_writer(real):
        def write(what, filename, *args, **kwargs):
            real(what, filename, *args, **kwargs)
            if failing(Path(filename).name.removeprefix(".").split(".tmp")[0].rsplit(".", 1)[0]):
                raise SafetensorError(f"Error while serializing: I/O error: {why}")

        return write

    real_replacing = seqtext.jsonfiles.replacing

    @contextlib.contextmanager
    def replacing(target):
        with real_replacing(target) as tmp:
            yield tmp
            if not target.name.endswith(".safetensors") and failing(target.name):
                raise OSError(error, os.strerror(error))

    with monkeypatch.context() as patched:
        for module in (seqtext.jsonfiles, seqtext.runs.saving, seqtext.runs.resume):
            patched.setattr(module, "replacing", replacing)
        for module, writer in ((seqtext.runs.saving, "save_model"), (seqtext.runs.saving, "save_file"),
                               (seqtext.runs.resume, "save_file")):  # fmt: skip
            patched.setattr(module, writer, tensor_writer(getattr(module, writer)))
        yield count


@pytest.fixture(scope="module")
def straight(lines_file, tmp_path_factory) -> Path:
    """The run the interrupted ones must end equal to."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert invoke("train", "lm", lines_file, "--out", out, *TINY).exit_code == 0
    return out


# --- a write that fails ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "nth"),
    [
        ("optimizer.safetensors", 3),  # the resume state's tensors (the first write is before step 1)
        ("trainer_state.json", 3),  # its counters, after the tensors were written: the old pair stays whole
        ("model.safetensors", 2),  # a best checkpoint
        ("config.json", 1),  # the first best checkpoint: the run has no model yet, but is resumable
        ("train_config.json", 2),
        ("tokenizer.json", 3),
    ],
)
def test_a_full_disk_at_any_write_is_one_line_and_the_run_resumes_to_the_same_weights(
    name, nth, straight, lines_file, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    with full_disk_at(monkeypatch, name, nth) as count:
        result = invoke("train", "lm", lines_file, "--out", out, *TINY)
    assert count[0] >= nth and result.exit_code == 1, result.output
    line = error_line(result)
    assert f"{out / name}: cannot write it (No space left on device)" in line, line
    assert "the run keeps its last good checkpoint" in line and "Resume with: " in line  # (sys.argv, + --resume)
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind
    shown = " ".join(invoke("inspect", out).output.split())
    if (out / "config.json").exists():
        assert "state unfinished: " in shown and "state finished" not in shown
    else:  # stopped at its first checkpoint: nothing to load yet, and the way on
        assert "has no checkpoint yet" in shown and f"--out {out} --resume" in shown
    refused = invoke("train", "lm", lines_file, "--out", out, *TINY)
    assert "already holds a run" in error_line(refused)  # not taken for a finished run, nor overwritten
    resumed = invoke("train", "lm", lines_file, "--out", out, *TINY, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert same_weights(out, straight)  # resumed from the last good state: as if nothing had happened
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in straight.iterdir())


def test_a_full_disk_before_the_first_step_stops_the_run_and_a_new_one_may_start(lines_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with full_disk_at(monkeypatch, "optimizer.safetensors", 1):
        result = invoke("train", "lm", lines_file, "--out", out, *TINY)
    line = error_line(result)
    assert "optimizer.safetensors: cannot write it (No space left on device)" in line
    assert "nothing was trained yet" in line and "Resume with" not in line
    assert invoke("train", "lm", lines_file, "--out", out, *TINY).exit_code == 0  # nothing to protect: start again


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EROFS, "Read-only file system"), (errno.EIO, "Input/output error"), (errno.EACCES, "Permission denied")],
)
def test_read_only_io_errors_and_permissions_are_one_line_too(code, words, straight, lines_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with full_disk_at(monkeypatch, "optimizer.safetensors", 2, error=code):
        result = invoke("train", "lm", lines_file, "--out", out, *TINY)
    line = error_line(result)
    assert f"optimizer.safetensors: cannot write it ({words})" in line and "Resume with" in line
    assert invoke("train", "lm", lines_file, "--out", out, *TINY, "--resume").exit_code == 0
    assert same_weights(out, straight)


def test_a_metrics_line_that_cannot_be_written_whole_is_taken_back(tmp_path, monkeypatch):
    from seqtext.errors import NotWritten
    from seqtext.runs.saving import append_metrics

    append_metrics(tmp_path, {"step": 1, "val_loss": 2.0})
    before = (tmp_path / "metrics.jsonl").read_bytes()
    real_open = Path.open

    class HalfWritten:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: HalfWritten(real_open(self, *a, **k)))
    with pytest.raises(NotWritten, match=r"metrics.jsonl: cannot write it \(No space left on device\)"):
        append_metrics(tmp_path, {"step": 2, "val_loss": 1.0})
    monkeypatch.undo()
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


def test_a_resume_state_whose_two_files_disagree_is_refused(interrupted_run, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    state = json.loads((run / "trainer_state.json").read_text(encoding="utf-8"))
    state["step"] -= 1  # as if the counters were of another save than the tensors
    (run / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    model, train = seqtext.runs.resume.saved_configs(run)
    with pytest.raises(CheckpointError, match=r"its tensors are of step 3 but trainer_state\.json is of step 2"):
        seqtext.train_lm(model, dataclasses.replace(train, out=str(run)), resume=True)


UNSHARE = shutil.which("unshare")
FULL_DISK_SCRIPT = """
import json, os, subprocess, sys
from pathlib import Path
import seqtext
from seqtext.config import LMConfig, TrainConfig
disk, data = Path(sys.argv[1]), sys.argv[2]
out = disk / "run"

def fill(event):  # after the first best checkpoint, the disk fills up (another program's download)
    if event.kind == "save" and not (disk / "filler").exists():
        with open(disk / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass

options = dict(bptt=16, batch_size=8, epochs=3, eval_every=2, patience=0, precision="fp32", device="cpu")
report = {}
try:
    seqtext.train_lm(LMConfig(embed_dim=16, hidden_dim=32, layers=1, dropout=0.0),
                     TrainConfig(data=data, out=str(out), **options), callback=fill)
except seqtext.SeqtextError as exc:
    report.update(error=str(exc), resumable=exc.resumable)
os.remove(disk / "filler")
command = [sys.executable, "-m", "seqtext"]
inspect = subprocess.run([*command, "inspect", str(out)], capture_output=True, text=True)
resume = subprocess.run([*command, "train", "lm", data, "--out", str(out), "--embed-dim", "16", "--hidden-dim", "32",
                         "--layers", "1", "--dropout", "0", "--resume"], capture_output=True, text=True)
report.update(inspect=inspect.stderr, resume=resume.returncode, resume_err=resume.stderr[-2000:],
              files=sorted(p.name for p in out.iterdir()))
print(json.dumps(report))
"""


@pytest.mark.skipif(UNSHARE is None or sys.platform != "linux", reason="needs unshare (util-linux) on Linux")
def test_a_really_full_disk_mid_run(lines_file, tmp_path):
    """A tmpfs of 4 MB in a private mount namespace, filled after the first checkpoint: the kernel's own
    ENOSPC, through every writer. The run stops in one line, keeps its checkpoint, and resumes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK_SCRIPT, encoding="utf-8")
    inner = f"mount -t tmpfs -o size=4m tmpfs {disk} && exec {sys.executable} {script} {disk} {lines_file}"
    probe = subprocess.run([UNSHARE, "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare cannot make a mount namespace here ({probe.stderr.decode(errors='replace').strip()})")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    done = subprocess.run([UNSHARE, "-rm", "sh", "-c", inner], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "cannot write it (No space left on device)" in report["error"] and "\n" not in report["error"]
    assert report["resumable"] and "the run keeps its last good checkpoint" in report["error"]
    assert "unfinished" in report["inspect"]
    assert report["resume"] == 0, report["resume_err"]
    assert "trainer_state.json" not in report["files"] and "model.safetensors" in report["files"]


# --- the steps after training ----------------------------------------------------------------------------------


def stop_while(monkeypatch, module, name, signum=signal.SIGTERM):
    """Send `signum` to this process when `module.name` starts (the step after training it stands for)."""
    real = getattr(module, name)

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, signalled)


@pytest.fixture(scope="module")
def keyboard_straight(lines_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keyboard") / "run"
    result = invoke("train", "lm", lines_file, "--out", out, *KEYBOARD)
    assert result.exit_code == 0, result.output
    return out


def test_sigterm_while_the_n_gram_is_built_is_resumable_and_the_run_is_unfinished(
    keyboard_straight, lines_file, tmp_path, monkeypatch
):
    import seqtext.keyboard.building as building

    out = tmp_path / "run"
    with monkeypatch.context() as patched:
        stop_while(patched, building, "build_ngram")
        result = invoke("train", "lm", lines_file, "--out", out, *KEYBOARD)
    assert result.exit_code == 143, result.output
    assert "terminated while writing the 16-bit weights, the lexicon and the n-gram" in result.stderr
    assert "progress saved. Resume with: " in " ".join(result.stderr.split())
    assert json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["phase"] == "finishing"
    assert not (out / "optimizer.safetensors").exists()  # trained: only the steps after it are left
    shown = " ".join(invoke("inspect", out).stderr.split())
    assert "unfinished: its training is done but the steps after it were not all written" in shown
    assert f"resume with: seqtext train lm {lines_file} --out {out} --resume" in shown
    refused = invoke("complete", out, "--text", "Mi per")  # no silent answer without the n-gram
    line = error_line(refused)
    assert "is unfinished" in line and "so its n-gram is not written yet" in line and "--resume" in line
    assert invoke("complete", out, "--text", "Mi per", "--no-ngram").exit_code == 0  # the model alone, asked for
    with pytest.raises(CheckpointError, match="its n-gram is not written yet"):
        seqtext.Completer(out)
    resumed = invoke("train", "lm", lines_file, "--out", out, *KEYBOARD, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "n-gram order" in resumed.stderr  # the resumed run reports what it built
    for name in ("ngram.safetensors", "model.safetensors", "config.json"):  # as if never stopped
        assert (out / name).read_bytes() == (keyboard_straight / name).read_bytes(), name
    assert {t.dtype for t in tensors(out).values()} == {torch.float16}
    assert not (out / "trainer_state.json").exists()
    assert "state finished" in " ".join(invoke("inspect", out).stderr.split())
    assert invoke("complete", out, "--text", "Mi per").exit_code == 0


def test_a_full_disk_while_the_n_gram_is_written_is_resumable(keyboard_straight, lines_file, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with full_disk_at(monkeypatch, "ngram.safetensors", 1):
        result = invoke("train", "lm", lines_file, "--out", out, *KEYBOARD)
    line = error_line(result)
    assert "ngram.safetensors: cannot write it (No space left on device)" in line and "Resume with" in line
    assert invoke("train", "lm", lines_file, "--out", out, *KEYBOARD, "--resume").exit_code == 0
    assert (out / "ngram.safetensors").read_bytes() == (keyboard_straight / "ngram.safetensors").read_bytes()


def test_sigint_while_the_weights_are_rewritten_in_16_bits(keyboard_straight, lines_file, tmp_path, monkeypatch):
    import seqtext.api

    out = tmp_path / "run"
    with monkeypatch.context() as patched:
        stop_while(patched, seqtext.api.saving, "save_weights_fp16", signal.SIGINT)
        result = invoke("train", "lm", lines_file, "--out", out, *KEYBOARD)
    assert result.exit_code == 130 and "interrupted while writing" in result.stderr
    assert invoke("train", "lm", lines_file, "--out", out, *KEYBOARD, "--resume").exit_code == 0
    assert same_weights(out, keyboard_straight)


# --- classifiers: the phrase memory and ensembles --------------------------------------------------------------

CLASSIFIER = TINY_CLASSIFIER_FLAGS


def test_a_classifier_stopped_before_its_phrase_memory_says_so(tmp_path, monkeypatch):
    import seqtext.sentiment.training as training

    out, texts = tmp_path / "run", tmp_path / "texts.txt"
    texts.write_text("a warm , funny film\n", encoding="utf-8")
    with monkeypatch.context() as patched:
        stop_while(patched, training, "write_phrase_memory")
        result = invoke("train", "classifier", PHRASES, "--out", out, *CLASSIFIER)
    assert result.exit_code == 143 and "terminated while writing the phrase memory" in result.stderr
    line = error_line(invoke("classify", out, texts))
    assert "so its phrase memory is not written yet" in line
    assert f"resume with: seqtext train classifier {PHRASES} --out {out} --resume" in line
    assert invoke("train", "classifier", PHRASES, "--out", out, *CLASSIFIER, "--resume").exit_code == 0
    assert (out / "phrase_memory.json").is_file() and not (out / "trainer_state.json").exists()
    assert invoke("classify", out, texts).exit_code == 0


def test_an_interrupted_classifier_is_unfinished_and_resumes(tmp_path):
    out = tmp_path / "run"
    model = ClassifierConfig(embed_dim=16, hidden_dim=16)
    train = ClassifierTrainConfig(data=str(PHRASES), out=str(out), epochs=2, precision="fp32", device="cpu")
    with pytest.raises(TrainingStopped):
        seqtext.train_classifier(model, train, callback=interrupt_at(3))
    with pytest.raises(CheckpointError, match=r"its training has not finished .* at step 3"):
        seqtext.classify(out, ["a warm , funny film"])
    seqtext.train_classifier(model, train, resume=True)
    assert seqtext.classify(out, ["a warm , funny film"])


def test_an_ensemble_stopped_between_members_is_not_taken_for_one_model(tmp_path):
    out = tmp_path / "run"
    model = ClassifierConfig(embed_dim=16, hidden_dim=16)
    train = ClassifierTrainConfig(data=str(PHRASES), out=str(out), epochs=2, precision="fp32", device="cpu", ensemble=2)
    steps = []

    def stop_in_the_second_member(event):
        steps.append(event.kind)
        if event.kind == "step" and steps.count("start") == 2 and steps[-2] == "start":
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingStopped):
        seqtext.train_classifier(model, train, callback=stop_in_the_second_member)
    assert not (out / "ensemble.json").exists()
    with pytest.raises(CheckpointError, match="so the ensemble is not written yet; an ensemble does not resume"):
        seqtext.classify(out, ["a warm , funny film"])
    summary = seqtext.inspect_run(out)
    assert not summary.resumable and "delete" in summary.unfinished


# --- what "finished" means -------------------------------------------------------------------------------------


def test_a_run_is_resumable_from_its_first_step_and_finished_only_at_the_end(lines_file, tmp_path):
    out = tmp_path / "run"
    seen = []

    def look(event):
        if event.kind in ("start", "save"):
            seen.append((event.kind, sorted(p.name for p in out.iterdir() if not p.name.startswith("."))))

    seqtext.train_lm(
        LMConfig(**TINY_MODEL), TrainConfig(data=str(lines_file), out=str(out), **TINY_TRAIN), callback=look
    )
    assert all("trainer_state.json" in files and "optimizer.safetensors" in files for _, files in seen), seen
    assert not (out / "trainer_state.json").exists() and not (out / "optimizer.safetensors").exists()
    assert seqtext.inspect_run(out).unfinished is None


def test_a_run_stopped_before_its_first_checkpoint_says_how_to_resume(lines_file, tmp_path):
    out = tmp_path / "run"
    options = {**TINY_TRAIN, "eval_every": 50}
    with pytest.raises(TrainingStopped):
        seqtext.train_lm(LMConfig(**TINY_MODEL), TrainConfig(data=str(lines_file), out=str(out), **options),
                         callback=interrupt_at(2))  # fmt: skip
    assert not (out / "config.json").exists()
    line = error_line(invoke("generate", out, "--prompt", "Hola"))
    assert "has no checkpoint yet" in line and f"--out {out} --resume" in line
    assert "already holds a run" in error_line(invoke("train", "lm", lines_file, "--out", out, *TINY))
