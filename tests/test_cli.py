import json
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, TINY_LM_FLAGS, assert_clean_error, copy_run, diverge_here, invoke

TINY = TINY_LM_FLAGS


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert all(name in result.stdout for name in ("train", "generate", "evaluate"))


def test_end_to_end_with_every_option(lines_file, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "train",
        "lm",
        lines_file,
        "--out",
        out,
        "--level",
        "word",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--embed-dim",
        "16",
        "--hidden-dim",
        "16",
        "--dropout",
        "0.1",
        "--tie-weights",
        "--max-vocab",
        "40",
        "--sample-by",
        "line",
        "--valid-fraction",
        "0.1",
        "--bptt",
        "8",
        "--batch-size",
        "8",
        "--lr",
        "0.005",
        "--weight-decay",
        "0.0",
        "--clip",
        "0.5",
        "--epochs",
        "2",
        "--max-time",
        "1m",
        "--patience",
        "3",
        "--eval-every",
        "4",
        "--teacher-forcing",
        "0.9",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.stderr and result.stdout == ""
    saved = json.loads((out / "train_config.json").read_text(encoding="utf-8"))
    assert (saved["lr"], saved["max_time"], saved["teacher_forcing"], saved["seed"]) == (0.005, 60.0, 0.9, 3)
    model = json.loads((out / "config.json").read_text(encoding="utf-8"))["model"]
    assert (model["level"], model["cell"], model["layers"], model["tie_weights"]) == ("word", "gru", 2, True)

    result = invoke(
        "generate",
        out,
        "--prompt",
        "Voy al",
        "--max-new-tokens",
        "5",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("\n")

    result = invoke("evaluate", out, lines_file, "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"loss", "perplexity", "bits_per_char", "tokens", "characters"}
    result = invoke("evaluate", out, lines_file)
    assert result.exit_code == 0 and "bits_per_char" in result.stderr


def test_generate_from_a_prompt_file(char_run, tmp_path):
    prompt = tmp_path / "p.txt"
    prompt.write_text("Mi ", encoding="utf-8")
    result = invoke("generate", char_run, "--prompt-file", prompt, "--temperature", "0", "--max-new-tokens", "5")
    assert result.exit_code == 0, result.output


def test_python_m_seqtext_works():
    result = subprocess.run([sys.executable, "-m", "seqtext", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "generate" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "has no text"),
        (b"hola\n\xff\xfe\n", "line 2: not valid UTF-8"),
        (b"hola.\nadios.\n" * 3, "training lines; --batch-size 8 needs at least 8"),
    ],
)
def test_bad_corpora(tmp_path, content, message):
    data = tmp_path / "data.txt"
    if content is not None:
        data.write_bytes(content)
    assert_clean_error(invoke("train", "lm", data, "--out", tmp_path / "r", *TINY), message)
    assert not (tmp_path / "r" / "config.json").exists()


def test_text_column_for_a_plain_text_corpus_is_refused(lines_file, tmp_path):
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "r", "--text-column", "review")
    assert_clean_error(result, "is plain text (one text per line) with no columns; --text-column applies to")
    assert not (tmp_path / "r").exists()


def test_prose_too_small_for_bptt_says_the_numbers(tmp_path):
    data = tmp_path / "prose.txt"
    data.write_text("una frase sin fin\ny otra más\n\n" * 4, encoding="utf-8")
    result = invoke("train", "lm", data, "--out", tmp_path / "r", *TINY, "--sample-by", "stream")
    assert_clean_error(result, "--bptt 16 × --batch-size 8 needs at least 136")


@pytest.mark.parametrize(("option", "value"), [("--cell", "transformer"), ("--level", "byte"), ("--bogus", "1")])
def test_unknown_options_and_values_are_usage_errors(lines_file, tmp_path, option, value):
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "r", option, value)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-time", "soon", "--max-time 'soon' is not a duration"),
        ("--dropout", "1.5", "--dropout must be in [0, 1)"),
        ("--device", "cuda", None),
    ],
)
def test_invalid_values_are_one_line_errors(lines_file, tmp_path, option, value, message):
    import torch

    if option == "--device" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "r", *TINY, option, value)
    assert_clean_error(result, message or "no CUDA GPU is available")


def test_directory_that_is_not_a_run(tmp_path):
    assert_clean_error(invoke("generate", tmp_path), "is not a seqtext run")
    assert_clean_error(invoke("evaluate", tmp_path, tmp_path / "x.txt"), "is not a seqtext run")


def test_run_from_a_newer_format(char_run, tmp_path):
    copy = copy_run(char_run, tmp_path / "newer")
    header = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    (copy / "config.json").write_text(json.dumps({**header, "format_version": 99}), encoding="utf-8")
    assert_clean_error(invoke("generate", copy), "uses run format 99, newer than this seqtext")


def test_existing_run_is_not_overwritten(char_run, lines_file):
    before = (char_run / "model.safetensors").read_bytes()
    assert_clean_error(invoke("train", "lm", lines_file, "--out", char_run, *TINY), "already holds a run")
    assert (char_run / "model.safetensors").read_bytes() == before


def test_resume_of_a_finished_run_is_refused(char_run, lines_file):
    assert_clean_error(invoke("train", "lm", lines_file, "--out", char_run, "--resume"), "has nothing to resume")


def test_nan_loss_exits_1_naming_the_step(lines_file, tmp_path, monkeypatch):
    diverge_here(monkeypatch, after=3)
    result = invoke("train", "lm", lines_file, "--out", tmp_path / "r", *TINY, "--epochs", "5", "--eval-every", "1")
    assert_clean_error(result, "loss became", after_progress=True)
    assert "at step" in result.stderr and "best checkpoint" in result.stderr


def test_ctrl_c_saves_exits_130_and_resume_finishes(tmp_path):
    from helpers import SENTENCES

    data = tmp_path / "many.txt"
    data.write_text("".join(s + "\n" for s in SENTENCES * 1000), encoding="utf-8")  # ~700 steps per epoch
    out = tmp_path / "r"
    command = [
        sys.executable,
        "-m",
        "seqtext",
        "train",
        "lm",
        str(data),
        "--out",
        str(out),
        *TINY,
        "--epochs",
        "1",
        "--eval-every",
        "50",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    while not (out / "model.safetensors").exists():  # wait for a checkpoint (real progress), not for a clock
        time.sleep(0.02)
        assert process.poll() is None, process.stderr.read()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert "interrupted at step" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert (out / "optimizer.safetensors").is_file() and (out / "model.safetensors").is_file()

    result = invoke("train", "lm", data, "--out", out, "--resume", "--lr", "0.5")
    assert_clean_error(result, "--lr is 0.5 but the run")
    result = invoke("train", "lm", data, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert not (out / "trainer_state.json").exists() and (out / "config.json").is_file()


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("lm", "--lr", "inf"),
        ("lm", "--clip", "nan"),
        ("lm", "--weight-decay", "inf"),
        ("lm", "--dropout", "nan"),
        ("lm", "--teacher-forcing", "nan"),
        ("lm", "--valid-fraction", "-inf"),
        ("classifier", "--word-dropout", "nan"),
        ("classifier", "--lr", "nan"),
    ],
)
def test_non_finite_training_options_are_refused(lines_file, tmp_path, command, option, value):
    result = invoke("train", command, lines_file, "--out", tmp_path / "r", option, value)
    if result.exit_code == 2:  # refused by the parser already (an option with a range, like --clip)
        assert "Traceback" not in result.output and option in result.output
    else:
        assert_clean_error(result, f"{option} must be a finite number (got {value})")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("option", "value"), [("--temperature", "nan"), ("--temperature", "inf"), ("--top-p", "nan")])
def test_non_finite_sampling_options_are_refused(char_run, option, value):
    assert_clean_error(invoke("generate", char_run, option, value), f"{option} must be a finite number")
