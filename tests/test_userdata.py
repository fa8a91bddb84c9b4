"""The keyboard's user data is never lost: concurrent learners merge, a kill loses at most the last
SAVE_DELAY, writes are atomic and follow symbolic links, and a damaged file is never replaced.

Real processes learn into one file at once (the CLI, and the PersonalModel with a write per line);
the write delay is checked with a fake clock and timer, not with the wall clock."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter

import pytest
from helpers import ROOT

import seqtext
import seqtext.keyboard.personal as personal
from seqtext.errors import ConfigError, CorpusError
from seqtext.keyboard.personal import SAVE_DELAY, PersonalModel


def child_env() -> dict[str, str]:
    """The environment of a child process: this test's (hermetic: built by conftest's fixtures), offline."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


def saved(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def learner(run, data, *flags) -> subprocess.Popen:
    """`seqtext complete RUN --learn --learn-lines --user-data DATA`, fed and read through pipes."""
    command = [sys.executable, "-m", "seqtext", "complete", str(run), "--learn", "--learn-lines", "--user-data"]
    return subprocess.Popen(
        [*command, str(data), *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        env=child_env(),
    )


def feed(process: subprocess.Popen, line: str) -> str:
    """One query line in, its answer line out (so the line was learned when this returns)."""
    process.stdin.write(line + "\n")
    process.stdin.flush()
    return process.stdout.readline()


def ended(process: subprocess.Popen) -> tuple[int, str]:
    """Close its input, wait for it; its exit code and stderr."""
    try:
        if process.stdin is not None:
            process.stdin.close()
            process.stdin = None
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


# --- several learners, one file --------------------------------------------------------------------------------


def test_two_cli_learners_at_once_lose_nothing(word_run, tmp_path):
    """Both processes run from start to end together, so a file read at start and written at exit
    (last writer wins) would lose one of them; every count must be the sum of both."""
    data = tmp_path / "personal.json"
    first, second = learner(word_run, data), learner(word_run, data)
    try:
        for i in range(20):
            assert feed(first, f"Hola común alfa{i}")
            assert feed(second, f"Hola común beta{i}")
    finally:
        results = [ended(process) for process in (first, second)]
    for code, err in results:
        assert code == 0, err
    words = saved(data)["words"]
    alone = {f"{name}{i}": 1 for name in ("alfa", "beta") for i in range(20)}
    assert words == {"Hola": 40, "común": 40, **alone}
    follows = saved(data)["follows"]
    assert follows[""] == {"Hola": 40} and follows["hola"] == {"común": 40} and len(follows["comun"]) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personal.json"]  # no lock or temporary file left


WRITER = """
import sys
from pathlib import Path
from seqtext.keyboard.personal import PersonalModel
model = PersonalModel(Path(sys.argv[1]))  # save_delay 0: a locked read-merge-write per line
for i in range(int(sys.argv[3])):
    model.learn(f"todos {sys.argv[2]}{i}")
"""


def test_many_writers_take_turns_and_every_count_reaches_the_file_once(tmp_path):
    """Three processes writing the file after every line, as fast as they can: the lock makes them take
    turns and each write adds only what its process learned since its own last write."""
    data, lines = tmp_path / "personal.json", 60
    command = [sys.executable, "-c", WRITER, str(data)]
    env = child_env()
    writers = [subprocess.Popen([*command, name, str(lines)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
               for name in ("uno", "dos", "tres")]  # fmt: skip
    for process in writers:
        code, err = ended(process)
        assert code == 0, err
    words = saved(data)["words"]
    assert words["todos"] == 3 * lines and len(words) == 1 + 3 * lines
    assert all(count == 1 for word, count in words.items() if word != "todos")
    assert saved(data)["follows"]["todos"] == {w: 1 for w in words if w != "todos"}


def test_two_models_in_one_process_merge_and_never_count_twice(tmp_path):
    data = tmp_path / "personal.json"
    a, b = PersonalModel(data), PersonalModel(data)
    a.learn("Zorbaxa")
    b.learn("Quetzal")
    a.learn("Zorbaxa")
    assert saved(data)["words"] == {"Zorbaxa": 2, "Quetzal": 1}
    assert a.words == Counter({"Zorbaxa": 2, "Quetzal": 1})  # a write brings in what others wrote
    a.save()
    b.save()  # nothing new: nothing added again
    assert saved(data)["words"] == {"Zorbaxa": 2, "Quetzal": 1}


def test_a_keyboard_offers_what_another_process_wrote_to_its_file(word_run, tmp_path):
    data = tmp_path / "personal.json"
    mine = seqtext.Completer(word_run, user_data=data)
    assert "Zorbaxa" not in [s.word for s in mine.suggest("Hola Zo")]
    PersonalModel(data).learn("Me llamo Zorbaxa")  # another terminal, or another worker of a server
    assert mine.suggest("Hola Zo")[0].word == "Zorbaxa"  # taken in at the next keystroke
    mine.learn("Quetzal")
    assert saved(data)["words"] == {"Me": 1, "llamo": 1, "Zorbaxa": 1, "Quetzal": 1}  # and nothing counted twice


# --- a kill loses at most SAVE_DELAY ---------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_learner_killed_with_sigkill_keeps_the_lines_it_learned(word_run, tmp_path):
    """26 lines, then nothing more (the pipe stays open): the process writes them by itself within
    SAVE_DELAY, without further input or an exit; a SIGKILL after that loses none of them."""
    data = tmp_path / "personal.json"
    process = learner(word_run, data)
    try:
        for i in range(26):
            assert feed(process, f"Línea número{i}")
        deadline = time.monotonic() + 120  # generous: a loaded machine; the delay itself is tested below
        while time.monotonic() < deadline:
            if data.exists() and saved(data)["words"].get("Línea") == 26:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
        process.stdout.close()
        process.stderr.close()
    words = saved(data)["words"]
    assert words == {"Línea": 26, **{f"número{i}": 1 for i in range(26)}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personal.json"]


class Clock:
    """time.monotonic and threading.Timer for PersonalModel, moved by hand."""

    def __init__(self, monkeypatch):
        self.now, self.timers = 100.0, []
        clock = self

        class Timer:
            def __init__(self, interval, function):
                self.interval, self.function, self.cancelled = interval, function, False
                clock.timers.append(self)

            def start(self):
                pass

            def cancel(self):
                self.cancelled = True

        monkeypatch.setattr(personal.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(personal.threading, "Timer", Timer)


def test_a_learned_line_is_written_at_once_or_within_the_delay(tmp_path, monkeypatch):
    clock, data = Clock(monkeypatch), tmp_path / "personal.json"
    model = PersonalModel(data, save_delay=SAVE_DELAY)
    model.learn("uno")
    assert saved(data)["words"] == {"uno": 1} and not clock.timers  # nothing written lately: at once
    clock.now += 0.25
    model.learn("dos")
    model.learn("tres")
    assert saved(data)["words"] == {"uno": 1}  # the last write is 0.25 s old: a timer writes the rest
    assert len(clock.timers) == 1 and clock.timers[0].interval == pytest.approx(SAVE_DELAY - 0.25)
    clock.now += SAVE_DELAY - 0.25
    clock.timers[0].function()
    assert saved(data)["words"] == {"uno": 1, "dos": 1, "tres": 1}
    clock.now += 5
    model.learn("cuatro")
    assert saved(data)["words"]["cuatro"] == 1 and len(clock.timers) == 1
    clock.now += 0.5
    model.learn("cinco")
    model.save()  # what `seqtext complete` does when its input ends, or on Ctrl-C / SIGTERM
    assert saved(data)["words"]["cinco"] == 1 and clock.timers[1].cancelled


def test_the_timer_really_writes_a_pending_line(tmp_path):
    data = tmp_path / "personal.json"
    model = PersonalModel(data, save_delay=0.05)
    model.learn("uno")
    model.learn("dos")  # within the delay: the timer thread writes it
    model._timer.join(timeout=60)
    assert saved(data)["words"] == {"uno": 1, "dos": 1}


def test_a_failed_write_by_the_timer_is_told_at_the_next_line_and_nothing_is_lost(tmp_path, monkeypatch):
    clock, data = Clock(monkeypatch), tmp_path / "personal.json"
    model = PersonalModel(data, save_delay=SAVE_DELAY)
    model.learn("uno")
    clock.now += 0.5
    model.learn("dos")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as disk:
        disk.setattr(os, "replace", full)
        clock.timers[0].function()  # the timer's write fails: nobody to tell yet
        with pytest.raises(ConfigError, match=r"--user-data .*personal.json: cannot write it \(No space left"):
            model.learn("tres")
    assert saved(data)["words"] == {"uno": 1}  # the file keeps what it held
    model.learn("tres")
    model.save()  # space again: everything learned since reaches the file
    assert saved(data)["words"] == {"uno": 1, "dos": 1, "tres": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personal.json"]


# --- symbolic links, damaged files, temporaries ----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_symbolic_link_is_followed_and_stays_a_link(word_run, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target, link = tmp_path / "real" / "mine.json", tmp_path / "links" / "personal.json"
    link.symlink_to(target)  # dangling: nothing learned yet
    completer = seqtext.Completer(word_run, user_data=link)
    completer.learn("Me llamo Zorbaxa")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert saved(target)["words"]["Zorbaxa"] == 1
    assert [p.name for p in (tmp_path / "links").iterdir()] == ["personal.json"]  # nothing written beside the link
    seqtext.Completer(word_run, user_data=target).learn("Zorbaxa otra vez")  # the file itself, by its own name
    completer.learn("Adiós Zorbaxa")  # through the link: the lock is the target's, so both merge
    assert saved(link)["words"]["Zorbaxa"] == 3 and link.is_symlink()
    completer.forget()  # forgets the data, keeps the link
    assert link.is_symlink() and not target.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_symbolic_link_through_the_cli(word_run, tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text('{"format": "seqtext-personal", "version": 1, "words": {"Quetzal": 2}}', encoding="utf-8")
    link.symlink_to(target)
    process = learner(word_run, link)
    assert feed(process, "Me llamo Zorbaxa")
    code, err = ended(process)
    assert code == 0, err
    assert link.is_symlink() and saved(target)["words"] == {"Quetzal": 2, "Me": 1, "llamo": 1, "Zorbaxa": 1}


def test_a_file_damaged_while_learning_is_refused_and_left_alone(tmp_path):
    data = tmp_path / "personal.json"
    model = PersonalModel(data)
    model.learn("uno")
    data.write_text('{"format": "seqtext-personal", "version": 1, "words": {"uno": 1', encoding="utf-8")  # cut short
    before = data.read_bytes()
    with pytest.raises(CorpusError, match=r"personal.json: not readable JSON \(.* at line 1") as caught:
        model.learn("dos")
    assert "\n" not in str(caught.value) and "it was left as it is" in str(caught.value)
    assert data.read_bytes() == before  # never replaced by what this process learned
    assert model.words["dos"] == 1  # still in memory


def test_a_truncated_or_empty_file_is_refused_at_start(word_run, tmp_path):
    data = tmp_path / "personal.json"
    whole = json.dumps({"format": "seqtext-personal", "version": 1, "words": {"Zorbaxa": 3}})
    for content in (whole[: len(whole) // 2], ""):
        data.write_text(content, encoding="utf-8")
        with pytest.raises(CorpusError, match="not readable JSON"):
            seqtext.Completer(word_run, user_data=data)
        assert data.read_text(encoding="utf-8") == content


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_file_is_private_and_a_rewrite_keeps_its_permissions(tmp_path):
    data = tmp_path / "personal.json"
    PersonalModel(data).learn("uno")
    assert stat.S_IMODE(data.stat().st_mode) == 0o600  # what its user typed: nobody else reads it
    data.chmod(0o640)
    PersonalModel(data).learn("dos")
    assert stat.S_IMODE(data.stat().st_mode) == 0o640 and saved(data)["words"] == {"uno": 1, "dos": 1}


def test_temporaries_of_a_killed_writer_are_removed_and_others_kept(tmp_path):
    data = tmp_path / "personal.json"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".personal.json.{int(gone.stdout)}-0123abcd.tmp"
    alive = tmp_path / f".personal.json.{os.getpid()}-0123abcd.tmp"  # a writer still at work
    other = tmp_path / f".notes.txt.{int(gone.stdout)}-0123abcd.tmp"  # not ours to remove
    for path in (dead, alive, other):
        path.write_text("{", encoding="utf-8")
    PersonalModel(data).learn("uno")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["personal.json", alive.name, other.name])


# --- the server ------------------------------------------------------------------------------------------------


def test_the_server_learns_into_the_file_and_merges_with_others(word_run, tmp_path):
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from seqtext.serve import ServeConfig, load_runs
    from seqtext.serve.app import create_app

    data = tmp_path / "personal.json"
    hosted = load_runs([f"es={word_run}"], user_data=data)
    with TestClient(create_app(hosted, ServeConfig()), base_url="http://localhost") as client:
        answer = client.post("/v1/learn", json={"text": "Me llamo Zorbaxa"})
        assert answer.status_code == 200 and answer.json() == {"model": "es", "words": 3}
        PersonalModel(data).learn("Quetzal")  # another learner of the same file meanwhile
        words = [s["word"] for s in client.post("/v1/complete", json={"text": "Hola Zo"}).json()["suggestions"]]
        assert words[0] == "Zorbaxa"
        assert client.post("/v1/learn", json={"text": "Zorbaxa"}).status_code == 200  # within the delay: pending
    for model in hosted.values():
        model.shutdown()  # what `seqtext serve` does when it stops: the pending line is written
    assert saved(data)["words"] == {"Me": 1, "llamo": 1, "Zorbaxa": 2, "Quetzal": 1}


def test_a_server_without_user_data_does_not_learn_and_a_failed_write_is_503(word_run, tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from seqtext.serve import ServeConfig, load_runs
    from seqtext.serve.app import create_app

    with TestClient(create_app(load_runs([str(word_run)]), ServeConfig()), base_url="http://localhost") as client:
        answer = client.post("/v1/learn", json={"text": "Hola"})
        assert answer.status_code == 409 and "--user-data" in answer.json()["error"]["message"]
    data = tmp_path / "personal.json"
    hosted = load_runs([str(word_run)], user_data=data)
    with TestClient(create_app(hosted, ServeConfig()), base_url="http://localhost") as client:

        def full(*args):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "replace", full)
        answer = client.post("/v1/learn", json={"text": "Hola Zorbaxa"})
        assert answer.status_code == 503 and str(tmp_path) not in answer.text  # no server path to the client
        monkeypatch.undo()
        assert client.post("/v1/learn", json={"text": "Adiós"}).status_code == 200
    for model in hosted.values():
        model.shutdown()
    assert saved(data)["words"] == {"Hola": 1, "Zorbaxa": 1, "Adiós": 1}
