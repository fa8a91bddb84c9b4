"""`seqtext complete` (once, piped, interactive), `evaluate --keyboard` and `train lm --preset keyboard`."""

import json
import os
import select
import subprocess
import sys
import time

import pytest
from helpers import ROOT, invoke
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import seqtext
from seqtext.cli.keyboard import keyboard_app
from seqtext.presets import PRESETS


def test_text_answers_once(word_run):
    result = invoke("complete", word_run, "--text", "Voy al parque con mi per")
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\n") == ["perro", ""]
    result = invoke("complete", word_run, "--text", "Voy al parque con ", "--k", "2", "--json")
    suggestions = json.loads(result.stdout)
    assert len(suggestions) == 2 and set(suggestions[0]) == {"word", "prob"}
    assert suggestions[0]["prob"] >= suggestions[1]["prob"]
    folded = json.loads(invoke("complete", word_run, "--text", "El nin", "--k", "5", "--json").stdout)
    assert folded[0]["word"] == "niño"  # found by folding: shown at the probability it ranks by, in order
    assert [s["prob"] for s in folded] == sorted((s["prob"] for s in folded), reverse=True)


def test_piped_lines_get_one_output_line_each(word_run):
    result = invoke("complete", word_run, input="Voy al parque con mi per\n¿que\n\nMi perro come mucho\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 5 and lines[-1] == ""
    assert lines[0].split("\t")[0] == "perro" and lines[1].split("\t")[0] == "Quedamos"
    assert len(lines[2].split("\t")) == 3 and lines[3] == ""  # line start: three words; nothing longer than "mucho"
    result = invoke("complete", word_run, "--json", input="Mi per\r\n")
    assert [s["word"] for s in json.loads(result.stdout)] == ["perro"]


def test_bad_input_is_a_one_line_error(word_run, tmp_path):
    result = invoke("complete", word_run, input=b"Mi per\n\xff\xfe\n")
    assert result.exit_code == 1 and "standard input, line 2: not valid UTF-8" in result.stderr
    assert result.stdout.split("\n")[0] == "perro"
    result = invoke("complete", tmp_path)
    assert result.exit_code == 1 and "is not a seqtext run" in result.stderr
    assert invoke("complete", word_run, "--text", "x", "--k", "0").exit_code == 2


def type_keys(keys, suggest):
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        return keyboard_app(suggest, input=pipe, output=DummyOutput()).run()


def test_interactive_keys_accept_suggestions(word_run):
    completer = seqtext.Completer(word_run)
    asked = []

    def suggest(typed):
        asked.append(typed)
        return [s.word for s in completer.suggest(typed, 3)]

    typed = "Voy al parque con mi per"
    assert type_keys(typed + "\t\r", suggest) == "Voy al parque con mi perro "
    assert asked[: len(typed) + 1] == [typed[:i] for i in range(len(typed) + 1)]  # once per keystroke
    assert asked[-1] == "Voy al parque con mi perro "
    assert type_keys("Mi per\x1b1\r", suggest) == "Mi perro "  # Alt-1
    second = [s.word for s in completer.suggest("Voy al ", 3)][1]
    assert type_keys("Voy al \x1b2\r", suggest) == f"Voy al {second} "  # Alt-2
    assert type_keys("xyzzy\t\x1b3\r", suggest) == "xyzzy"  # nothing to accept: nothing happens
    assert type_keys("Voy\x04", suggest) is None  # Ctrl-D quits
    assert type_keys("\x03", suggest) is None  # Ctrl-C quits


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_interactive_in_a_real_terminal(word_run):
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "24", "PROMPT_TOOLKIT_NO_CPR": "1"}
    command = [sys.executable, "-m", "seqtext", "complete", str(word_run)]
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    screen = b""

    def wait_for(text, seconds=120.0):
        nonlocal screen
        deadline = time.monotonic() + seconds
        while text not in screen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
        return text in screen

    try:
        assert wait_for(b"Tab or Alt-1: take the first"), screen.decode(errors="replace")
        os.write(master, b"Voy al parque con mi per")
        assert wait_for(b"perro"), screen.decode(errors="replace")
        os.write(master, b"\t\r")
        os.write(master, b"\x04")
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)


def test_evaluate_keyboard_json(word_run, lines_file):
    result = invoke("evaluate", word_run, lines_file, "--keyboard", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {"ksr", "next_word_top1", "next_word_top3", "latency_ms_p50", "latency_ms_p99"} <= set(figures)
    assert {"loss", "perplexity", "bits_per_char"} <= set(figures)
    assert 0 < figures["ksr"] < 1 and 0 <= figures["next_word_top1"] <= figures["next_word_top3"] <= 1
    result = invoke("evaluate", word_run, lines_file, "--keyboard", "--k", "5", "--json")
    assert "next_word_top5" in json.loads(result.stdout)
    result = invoke("evaluate", word_run, lines_file, "--keyboard")
    assert result.exit_code == 0 and "ksr" in result.stderr and "latency_ms_p99" in result.stderr


def test_preset_keyboard_with_an_override(lines_file, tmp_path):
    out = tmp_path / "kb"
    result = invoke(
        "train", "lm", lines_file, "--out", out, "--preset", "keyboard", "--hidden-dim", "32", "--embed-dim", "16",
        "--max-vocab", "60", "--batch-size", "8", "--epochs", "1", "--precision", "fp32", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = json.loads((out / "config.json").read_text(encoding="utf-8"))["model"]
    train = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    preset = PRESETS["keyboard"]
    assert (model["hidden_dim"], model["embed_dim"], model["max_vocab"], train["batch_size"]) == (32, 16, 60, 8)
    assert (model["level"], model["cell"], model["layers"]) == (preset["level"], preset["cell"], preset["layers"])
    assert (model["tie_weights"], model["dropout"]) == (preset["tie_weights"], preset["dropout"])
    assert (train["lr"], train["sampled_softmax"]) == (preset["lr"], preset["sampled_softmax"])
    assert train["ngram"] and train["memory"]  # the n-gram and the sentence memory beside the model
    assert invoke("train", "lm", lines_file, "--out", tmp_path / "x", "--preset", "phone").exit_code == 2
