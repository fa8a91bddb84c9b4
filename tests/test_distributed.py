"""Data-parallel training under torchrun: real processes on this machine (gloo on the CPU), started the
way a user starts them (`python -m torch.distributed.run --standalone --nproc-per-node 2 -m seqtext
train ...`). The standalone rendezvous picks a free port, and every process is waited for or killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import PHRASES, ROOT, diverging_env, invoke, train_tiny
from safetensors.torch import load_file

import seqtext
from seqtext.errors import ConfigError
from seqtext.training import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
TINY = [
    "--embed-dim", "16", "--hidden-dim", "32", "--layers", "1", "--dropout", "0",
    "--precision", "fp32", "--device", "cpu",
]  # fmt: skip
STEP_SCRIPT = ROOT / "tests" / "distributed_steps.py"


def child_env() -> dict[str, str]:
    """The environment of the processes a test starts: this test's (conftest's hermetic_env: never the
    user's caches), one thread each. Built when a process starts, not when this module is imported."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *args], capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=timeout, check=False
    )


def train_lm_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "seqtext", "train", "lm", str(data), "--out", str(out), *TINY, "--bptt", "16", *extra]


def val_losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def test_the_processes_a_test_starts_keep_to_the_sessions_caches(hermetic_env):
    assert {name: child_env()[name] for name in hermetic_env} == hermetic_env


@pytest.fixture(scope="module")
def two_process_prose(prose_file, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Prose on 2 processes × --batch-size 4 (a global batch of 8), 3 epochs."""
    out = tmp_path_factory.mktemp("ddp") / "prose"
    result = torchrun(*train_lm_args(prose_file, out, "--batch-size", "4", "--epochs", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_two_processes_write_one_run_that_loads(two_process_prose):
    out, result = two_process_prose
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "metrics.jsonl", "model.safetensors", "tokenizer.json", "train_config.json",
    ]  # fmt: skip
    loaded = seqtext.load(out)
    assert loaded.kind == "lm" and seqtext.generate(out, "En un", max_new_tokens=5, seed=0)
    # rank 0 alone reports: one start line, one summary, each evaluation once
    assert result.stderr.count("2 processes (torchrun)") == 1 and result.stderr.count("best at step") == 1
    assert len(val_losses(out)) == result.stderr.count("val_loss")


def test_validation_matches_one_process_with_the_global_batch(two_process_prose, prose_file, tmp_path):
    """Prose is laid out as (batch × processes) columns, each process reading its own block: 2 × 4 reads
    exactly what 1 × 8 reads, so the validation losses agree to float rounding (stated: 1e-5 relative)."""
    out, _ = two_process_prose
    single = train_tiny(prose_file, tmp_path / "single", {"dropout": 0.0}, batch_size=8, epochs=3)
    mine, theirs = val_losses(out), val_losses(single)
    assert mine.keys() == theirs.keys() and len(mine) >= 4
    for step, loss in theirs.items():
        assert mine[step] == pytest.approx(loss, rel=1e-5), step


def test_line_corpus_on_two_processes_ends_near_one_process_with_the_global_batch(lines_file, tmp_path):
    """Lines are dealt out as whole length-bucketed batches, so 2 × 4 and 1 × 8 see the same lines in
    other groupings and a step or so fewer per epoch: the final validation loss agrees within 5%
    (measured: 2.916 against 2.981 after 3 epochs)."""
    out = tmp_path / "lines"
    result = torchrun(*train_lm_args(lines_file, out, "--batch-size", "4", "--epochs", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    single = train_tiny(lines_file, tmp_path / "single", {"dropout": 0.0}, batch_size=8, epochs=3)
    mine, theirs = val_losses(out), val_losses(single)
    assert mine[max(mine)] == pytest.approx(theirs[max(theirs)], rel=0.05)
    assert seqtext.load(out).config.sample_by == "line"


def test_steps_of_two_by_b_match_one_by_2b(tmp_path):
    """Two optimizer steps (the second with the state carried, and fewer real tokens on rank 1 than on
    rank 0) on 2 processes × 4 sequences give the weights of 1 process × 8 sequences."""
    corpus = tmp_path / "prosa.txt"
    corpus.write_text("En un lugar de la Mancha, de cuyo nombre no quiero acordarme.\n" * 13, encoding="utf-8")
    assert len(corpus.read_text()) % 8  # <bos> + one token per character: the last column ends in padding
    alone, together = tmp_path / "alone.safetensors", tmp_path / "together.safetensors"
    command = [sys.executable, str(STEP_SCRIPT), str(corpus), "8", "2", str(alone)]
    single = subprocess.run(command, env=child_env(), capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    result = torchrun(str(STEP_SCRIPT), str(corpus), "4", "2", str(together))
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_file(alone), load_file(together)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)


def test_two_process_classifier_run_loads(tmp_path):
    out = tmp_path / "clf"
    result = torchrun(
        "-m", "seqtext", "train", "classifier", str(PHRASES), "--out", str(out), "--embed-dim", "16",
        "--hidden-dim", "16", "--dropout", "0", "--batch-size", "16", "--epochs", "2", "--precision", "fp32",
        "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = seqtext.load(out)
    assert loaded.kind == "classifier" and not (out / "trainer_state.json").exists()
    assert result.stderr.count("best at step") == 1 and "2 processes (torchrun)" in result.stderr
    assert seqtext.classify(out, ["me encanta"])[0].name in loaded.config.labels


def test_two_process_trainings_end_with_exit_code_0_every_time(lines_file, tmp_path):
    """A run written completely ends with exit code 0 on every process, every time: the processes meet,
    free DDP and destroy the group, then leave without the interpreter's teardown, which gloo's threads
    (kept alive by torch once DDP has used the group) could abort. Repeated, as the abort was rare."""
    for attempt in range(4):
        out = tmp_path / f"run{attempt}"
        result = torchrun(*train_lm_args(lines_file, out, "--batch-size", "4", "--epochs", "1"))
        assert result.returncode == 0, (attempt, result.stderr[-3000:])
        assert "terminate called" not in result.stderr and "Signal" not in result.stderr, result.stderr[-3000:]
        assert not (out / "trainer_state.json").exists() and seqtext.load(out)


def _workers(parent: int) -> list[int]:
    """The pids of torchrun's worker processes (its children)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = Path(f"/proc/{parent}/task/{parent}/children")  # Linux; else ask ps
        found = (
            children.read_text()
            if children.exists()
            else subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True, check=False
            ).stdout
        )
        pids = [int(p) for p in found.split()]
        if len(pids) == 2:
            return pids
        time.sleep(0.1)
    raise AssertionError("torchrun did not start 2 workers")


def test_interrupting_one_rank_stops_all_and_resume_matches(prose_file, tmp_path):
    """Ctrl-C to rank 1 alone: every rank saves and stops at the same step, one resume command is printed,
    a plain single-process --resume is refused, and --resume under torchrun ends exactly where an
    uninterrupted 2-process run ends (same weights, same validation losses)."""
    long = ("--batch-size", "4", "--epochs", "40", "--patience", "0", "--eval-every", "20")
    reference = tmp_path / "reference"
    done = torchrun(*train_lm_args(prose_file, reference, *long))
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "interrupted"
    args = train_lm_args(prose_file, out, *long)
    with subprocess.Popen([*TORCHRUN, *args], env=child_env(), cwd=ROOT, stderr=subprocess.PIPE, text=True) as proc:
        try:
            workers = _workers(proc.pid)
            deadline = time.monotonic() + 120
            while not (out / "metrics.jsonl").is_file() and time.monotonic() < deadline:
                time.sleep(0.05)
            writer = int((out / ".lock").read_text().strip())  # rank 0 holds the run's lock
            other = next(p for p in workers if p != writer)
            os.kill(other, signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode != 0
    assert stderr.count("Resume with:") == 1, stderr[-3000:]
    command = stderr.split("Resume with: ")[1].splitlines()[0].strip()
    assert command.startswith("torchrun --standalone --nproc-per-node 2 -m seqtext train lm ")
    assert command.endswith("--resume") and (out / "trainer_state.json").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rank_rngs"]) == 1 and state["step"] < 40 * 13

    alone = invoke(*args[2:], "--resume")  # the same run, resumed without torchrun
    assert alone.exit_code == 1 and "was trained on 2 process(es) and is resumed on 1" in alone.output

    resumed = torchrun(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert val_losses(out) == val_losses(reference)
    a, b = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_world_size_the_data_cannot_feed_is_refused(lines_file, tmp_path):
    """60 lines in batches of 60 are one batch a epoch: a second process would have nothing to read."""
    out = tmp_path / "lines"
    result = torchrun(*train_lm_args(lines_file, out, "--batch-size", "60", "--valid", str(lines_file)))
    assert result.returncode != 0
    message = "gives 1 batches of --batch-size 60 per epoch, fewer than the 2 processes"
    assert result.stderr.count(message) == 1, result.stderr[-3000:]  # told once, by rank 0
    assert "Lower --batch-size (it is per process) or start fewer processes" in result.stderr
    assert not out.exists()  # nothing written, the lock's directory removed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}, "the rendezvous (MASTER_ADDR and MASTER_PORT) is not"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK, LOCAL_RANK is not"),
        ({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"}, "WORLD_SIZE is 'two', not a whole number"),
        ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK=2, LOCAL_RANK=0, WORLD_SIZE=2 do not fit"),
    ],
)
def test_a_missing_or_broken_rendezvous_is_a_clear_error(lines_file, tmp_path, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    result = invoke(*train_lm_args(lines_file, out)[2:])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_without_torchrun_nothing_changes(monkeypatch):
    for name in (*distributed.ENV, "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.detect() is None and distributed.writes() and distributed.rank_label() == ""
    with distributed.joined("cpu") as world:
        assert world is None and distributed.current() is None
    assert distributed.relaunch(["seqtext", "train", "lm", "x", "--resume"]) == [
        "seqtext",
        "train",
        "lm",
        "x",
        "--resume",
    ]


def test_the_environment_of_torchrun_is_read():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_WORLD_SIZE": "2"}
    world = distributed.detect({**env, "MASTER_ADDR": "node0", "MASTER_PORT": "29500"})
    assert world == distributed.World(rank=3, size=4, local_rank=1, local_size=2, nodes=2) and not world.writer
    with pytest.raises(ConfigError, match="rendezvous"):
        distributed.detect(env)


def test_max_time_is_rank_zeros_clock_and_stops_every_process(prose_file, tmp_path):
    out = tmp_path / "timed"
    result = torchrun(*train_lm_args(prose_file, out, "--batch-size", "4", "--max-time", "2s", "--patience", "0"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stopped by max_time" in result.stderr
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert 2.0 <= last["seconds"] < 10 and not (out / "trainer_state.json").exists()


def test_processes_of_one_machine_share_its_cores(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    try:
        distributed._threads(distributed.World(rank=1, size=4, local_rank=1, local_size=4, nodes=1))
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's (or torchrun's) choice wins
        distributed._threads(distributed.World(rank=0, size=2, local_rank=0, local_size=2, nodes=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_resume_command_names_torchrun(monkeypatch):
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "x"}
    for name, value in {**env, "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GROUP_WORLD_SIZE", raising=False)
    assert distributed.relaunch(["seqtext", "train", "lm", "x"]) == [
        "torchrun", "--standalone", "--nproc-per-node", "2", "-m", "seqtext", "train", "lm", "x",
    ]  # fmt: skip
    monkeypatch.setenv("GROUP_WORLD_SIZE", "3")
    assert distributed.relaunch(["seqtext", "x"])[:4] == ["torchrun", "--nnodes", "3", "--nproc-per-node"]


def test_a_diverged_loss_on_any_process_stops_every_process_once(prose_file, tmp_path):
    out = tmp_path / "nan"
    args = ("--batch-size", "4", "--epochs", "5", "--eval-every", "1")
    env = {**child_env(), **diverging_env(tmp_path / "site", after=3, rank=1)}  # rank 1 alone diverges
    command = [*TORCHRUN, *train_lm_args(prose_file, out, *args)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)
    assert result.returncode != 0
    assert result.stderr.count("loss became") == 1, result.stderr[-3000:]  # told once, by rank 0
    assert "Resume with" not in result.stderr


def _worlds(size: int) -> list[distributed.World]:
    return [distributed.World(rank=r, size=size, local_rank=r, local_size=size, nodes=1) for r in range(size)]


def test_line_shards_cover_the_epoch_in_equal_steps_and_resume_mid_epoch():
    from seqtext.data import LineWindows
    from seqtext.training import shards

    lines = [[2, *range(4, 4 + n), 3] for n in [3, 20, 5, 40, 7, 9, 33, 2, 11, 18, 25, 6, 4, 8]]
    inner = LineWindows(lines, bptt=8, batch_size=2)
    parts = [shards.for_rank(inner, "x", world) for world in _worlds(3)]
    assert len({p.steps_per_epoch for p in parts}) == 1
    dealt = [b for p in parts for b in p.mine(1, 0)]
    assert sorted(i for b in dealt for i in b) == list(range(len(lines)))  # every line once in all
    for part in parts:
        windows = list(part.epoch(1, 0))
        assert len(windows) == part.steps_per_epoch  # the same count on every rank: nobody waits
        assert [w.inputs.tolist() for w in part.epoch(1, 0, start=3)] == [w.inputs.tolist() for w in windows[3:]]


def test_stream_shards_are_blocks_of_the_global_batch():
    from seqtext.data import StreamWindows
    from seqtext.training import shards

    ids = torch.arange(4, 4 + 301)
    whole = StreamWindows(ids, bptt=8, batch_size=6)
    parts = [shards.for_rank(StreamWindows(ids, bptt=8, batch_size=3), "x", world) for world in _worlds(2)]
    assert torch.equal(torch.cat([p.columns for p in parts]), whole.columns)
    assert all(p.steps_per_epoch == whole.steps_per_epoch for p in parts)
    with pytest.raises(ConfigError, match="× 2 processes needs at least"):
        shards.for_rank(StreamWindows(ids[:40], bptt=8, batch_size=3), "x", _worlds(2)[0])


def test_classifier_shards_deal_the_batches_out():
    from seqtext.sentiment.labelled import TextBatches
    from seqtext.training import shards

    ids = [[5 + i] * (1 + i % 4) for i in range(30)]  # 8 batches of one length, each its own ids
    inner = TextBatches(ids, [i % 2 for i in range(30)], batch_size=4)
    parts = [shards.for_rank(inner, "x", world) for world in _worlds(3)]  # 3 steps each: one batch twice
    seen = [b.ids.tolist() for p in parts for b in p.epoch(2, 0)]
    assert all(len(list(p.epoch(2, 0))) == p.steps_per_epoch for p in parts)
    every = [b.ids.tolist() for b in inner.epoch(2, 0)]
    assert all(batch in seen for batch in every) and len(seen) == len(every) + 1
    assert [b.ids.tolist() for b in parts[1].epoch(2, 0, start=2)] == [b.ids.tolist() for b in parts[1].epoch(2, 0)][2:]
    with pytest.raises(ConfigError, match="fewer than the 40 processes"):
        shards.for_rank(inner, "data.tsv", _worlds(40)[0])


TINY_RECIPE = """from seqtext.cli import app
from seqtext.lm import recipe
from seqtext.training.fitting import Candidate, Recipe

big = Candidate("LSTM 2×24", {"hidden_dim": 24, "layers": 2}, ((10, 2.0),))
recipe.CHAR_LM = Recipe("tiny", (big, Candidate("LSTM 1×16", {"hidden_dim": 16, "layers": 1}, ((10, 1.0),))))
app(prog_name="seqtext")
"""


def test_rank_zero_chooses_the_model_for_the_budget_and_every_process_trains_it(prose_file, tmp_path):
    """`train lm --max-time` with a budget recipe (a tiny one, so the tiny flags may be typed): rank 0 times
    the candidates, the others train what it chose (DistributedDataParallel refuses different models)."""
    script = tmp_path / "seqtext_tiny_recipe.py"
    script.write_text(TINY_RECIPE, encoding="utf-8")
    out = tmp_path / "chosen"
    tiny = [flag for flag in TINY if flag not in ("--hidden-dim", "32", "--layers", "1")]
    args = [str(prose_file), "--out", str(out), *tiny, "--bptt", "16", "--batch-size", "4", "--max-time", "3s"]
    result = torchrun(str(script), "train", "lm", *args, "--patience", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert " ".join(result.stderr.split()).count("chosen for the budget: LSTM 1×16 (LSTM 2×24: ") == 1
    config = json.loads((out / "config.json").read_text())["model"]
    assert (config["hidden_dim"], config["layers"]) == (16, 1)
