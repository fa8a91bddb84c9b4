"""`seqtext complete --learn/--no-learn/--learn-lines/--forget/--user-data`: from a pipe and in a real terminal."""

import json
import os
import select
import subprocess
import sys
import time

import pytest
from helpers import ROOT, invoke


def test_pipe_lines_are_queries_unless_learn_lines(word_run, tmp_path):
    data = tmp_path / "personal.json"
    piped = "Me llamo Zorbaxa\nHola Zo\n"
    result = invoke("complete", word_run, "--user-data", data, input=piped)
    assert result.exit_code == 0, result.output
    assert "Zorbaxa" not in result.stdout.split("\n")[1] and not data.exists()  # queries only: nothing learned
    result = invoke("complete", word_run, "--user-data", data, "--learn", "--learn-lines", input=piped)
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n")[1].split("\t")[0] == "Zorbaxa"  # learned from the line before
    assert json.loads(data.read_text(encoding="utf-8"))["words"]["Zorbaxa"] == 1
    result = invoke("complete", word_run, "--user-data", data, "--text", "Adiós Zo")  # a later run reads it
    assert result.stdout.split("\n")[0].split("\t")[0] == "Zorbaxa"
    result = invoke("complete", word_run, "--user-data", data, "--forget", "--text", "Adiós Zo")
    assert result.exit_code == 0 and "Forgot everything learned" in result.stderr
    assert "Zorbaxa" not in result.stdout and not data.exists()


def test_the_default_user_data_lives_in_the_data_directory(word_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if sys.platform != "linux":
        pytest.skip("XDG_DATA_HOME is the Linux convention")
    result = invoke("complete", word_run, "--learn", "--learn-lines", input="Me llamo Zorbaxa\n")
    assert result.exit_code == 0, result.output
    assert "Zorbaxa" in (tmp_path / "seqtext" / "personal.json").read_text(encoding="utf-8")


def test_learning_flags_that_contradict_the_input(word_run, tmp_path):
    data = tmp_path / "personal.json"
    for flags, message in [
        (["--learn"], "add --learn-lines"),
        (["--learn-lines"], "only with --learn"),
        (["--no-learn", "--learn-lines"], "only with --learn"),
        (["--learn", "--text", "Hola"], "add --learn-lines"),
    ]:
        result = invoke("complete", word_run, "--user-data", data, *flags, input="Hola\n")
        assert result.exit_code == 1 and message in result.stderr, (flags, result.output)
    assert not data.exists()
    assert invoke("complete", word_run, "--user-data", data, "--no-learn", input="Hola\n").exit_code == 0


def test_damaged_or_unwritable_user_data_is_one_line_and_loses_nothing(word_run, tmp_path):
    data = tmp_path / "personal.json"
    data.write_text('{"format": "seqtext-personal", "version": 1, "words": {"Zorbaxa": "many"}}', encoding="utf-8")
    before, model = data.read_bytes(), {p.name: p.read_bytes() for p in word_run.iterdir()}
    for flags in ([], ["--learn", "--learn-lines"]):
        result = invoke("complete", word_run, "--user-data", data, *flags, input="Hola Zo\n")
        assert result.exit_code == 1 and result.stdout == ""
        assert f"user data {data}: field" in result.stderr and "--forget" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert data.read_bytes() == before  # never overwritten
    assert {p.name: p.read_bytes() for p in word_run.iterdir()} == model  # nor the model
    result = invoke("complete", word_run, "--user-data", data, "--forget", "--learn", "--learn-lines", input="Hi Zo\n")
    assert result.exit_code == 0, result.output  # --forget removed the damaged file; learning wrote a new one
    assert json.loads(data.read_text(encoding="utf-8"))["words"] == {"Hi": 1, "Zo": 1}
    (tmp_path / "file").write_text("x", encoding="utf-8")
    result = invoke("complete", word_run, "--user-data", tmp_path / "file" / "p.json", "--learn", "--learn-lines")
    assert result.exit_code == 1 and "--user-data" in result.stderr and "is a file" in result.stderr
    result = invoke("complete", word_run, "--user-data", tmp_path, input="Hola\n")
    assert result.exit_code == 1 and "not a regular file" in result.stderr


class Terminal:
    """`seqtext complete` in a pseudo-terminal; finished lines come back on a pipe (stdout redirected)."""

    def __init__(self, run, *flags):
        import pty

        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "24", "PROMPT_TOOLKIT_NO_CPR": "1"}
        command = [sys.executable, "-m", "seqtext", "complete", str(run), *map(str, flags)]
        self.process = subprocess.Popen(
            command, stdin=slave, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, env=env, text=True
        )
        os.close(slave)

        self.screen = b""

    def _drain(self, seconds: float) -> None:
        """Read what the child drew (so it never blocks on a full terminal), for up to `seconds`."""
        while select.select([self.master], [], [], seconds)[0]:
            try:
                self.screen += os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            seconds = 0

    def _wait_for_prompt(self, seconds: float = 30.0) -> None:
        """Keys sent before the next line's prompt is drawn would meet the terminal in cooked mode.

        The prompt may already have been drawn before type_line cleared the screen; then this waits out
        its `seconds` and goes on (the prompt is there): short, or a test waits minutes for nothing."""
        deadline = time.monotonic() + seconds
        while b"> " not in self.screen and time.monotonic() < deadline and self.process.poll() is None:
            self._drain(0.2)

    def type_line(self, keys: str, seconds: float = 120.0) -> str:
        """Type keys ending with Enter; the finished line, as the prompt printed it."""
        self._wait_for_prompt()
        os.write(self.master, keys.encode())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([self.process.stdout], [], [], 0.2)[0]:
                line = self.process.stdout.readline().rstrip("\n")
                self._drain(0)  # the finished line's last drawing came before the line did
                self.screen = b""
                return line
            self._drain(0)
        raise AssertionError(f"no line came back for {keys!r}: {self.screen.decode(errors='replace')}")

    def close(self) -> int:
        try:
            self._wait_for_prompt()
            os.write(self.master, b"\x04")  # Ctrl-D
            deadline = time.monotonic() + 120
            while self.process.poll() is None and time.monotonic() < deadline:
                self._drain(0.2)
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_prompt_learns_a_line_on_enter_and_remembers_it_after_a_restart(word_run, tmp_path):
    data = tmp_path / "personal.json"
    terminal = Terminal(word_run, "--user-data", data)  # learning is on by default at the terminal
    try:
        assert terminal.type_line("Me llamo Zorbaxa\r") == "Me llamo Zorbaxa"
        assert terminal.type_line("Hola Zo\t\r") == "Hola Zorbaxa "  # offered on the next line: Tab took it
    finally:
        assert terminal.close() == 0
    assert json.loads(data.read_text(encoding="utf-8"))["words"]["Zorbaxa"] == 2
    terminal = Terminal(word_run, "--user-data", data, "--no-learn")  # a restart
    try:
        assert terminal.type_line("Zo\t\r") == "Zorbaxa "
        assert terminal.type_line("Qwertyuiop\r") == "Qwertyuiop"
    finally:
        assert terminal.close() == 0
    assert "Qwertyuiop" not in data.read_text(encoding="utf-8")  # --no-learn learned nothing
    terminal = Terminal(word_run, "--user-data", data, "--forget")
    try:
        assert terminal.type_line("Zo\t\r") == "Zo"  # forgotten: nothing to take
    finally:
        assert terminal.close() == 0
    assert json.loads(data.read_text(encoding="utf-8"))["words"] == {"Zo": 1}  # only what was typed since


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_prompt_refuses_damaged_user_data_before_typing(word_run, tmp_path):
    data = tmp_path / "personal.json"
    data.write_text("{oops", encoding="utf-8")
    terminal = Terminal(word_run, "--user-data", data)
    assert terminal.close() == 1
    assert data.read_text(encoding="utf-8") == "{oops"


def test_learning_is_on_by_default_only_at_the_terminal():
    from seqtext.cli.keyboard import learning_mode
    from seqtext.errors import ConfigError

    assert learning_mode(None, False, at_terminal=True) is True
    assert learning_mode(False, False, at_terminal=True) is False
    assert learning_mode(None, False, at_terminal=False) is False
    assert learning_mode(True, True, at_terminal=False) is True
    with pytest.raises(ConfigError, match="at the terminal a line is learned when Enter ends it"):
        learning_mode(None, True, at_terminal=True)
