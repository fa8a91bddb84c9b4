"""One line, never a traceback, and nothing silently accepted (issue 22, classes 5-8): invalid UTF-8
and unpaired surrogates are refused the same way everywhere; numbers that overflow are refused
naming the option or field; structure is checked (deep nesting, records missing fields or holding
strings, a run path that loops); a run file that exists but is not a regular file is an error, never
"absent"; JSON-lines corpora are read strictly with their line numbers; options that would override
each other are refused as a pair; a duplicate key is named."""

import json
import os
import subprocess
import sys

import pytest
from helpers import FIXTURES, PHRASES, ROOT, assert_clean_error, copy_run, invoke, train_tiny

import seqtext
from seqtext.config import ClassifierConfig, TrainConfig
from seqtext.errors import CheckpointError, ConfigError, CorpusError
from seqtext.keyboard.completion import Completer
from seqtext.keyboard.personal import PersonalModel

CLASSIFIER = FIXTURES / "run-0.1.0-classifier"


def personal_file(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --- class 5: invalid UTF-8 and unpaired surrogates, refused the same way everywhere ---------------------------------


@pytest.mark.parametrize(
    ("command", "option", "value", "words"),
    [
        ("complete", "--text", "\udced\udca0\udc80abc", "--text: not valid UTF-8 (byte 0xed at character 1)"),
        ("generate", "--prompt", "\udcff\udcfeHola", "--prompt: not valid UTF-8 (byte 0xff at character 1)"),
        (
            "complete",
            "--text",
            "Voy \ud800",
            "--text: not valid Unicode (an unpaired surrogate, U+D800, at character 5)",
        ),
    ],
)
def test_invalid_text_options_are_one_line(word_run, command, option, value, words):
    assert_clean_error(invoke(command, word_run, option, value), words)


def test_invalid_utf8_bytes_on_a_real_command_line(word_run):
    command = [sys.executable, "-m", "seqtext", "complete", str(word_run), "--text", b"\xed\xa0\x80abc"]
    result = subprocess.run(command, capture_output=True, cwd=ROOT, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr, stderr
    assert "--text: not valid UTF-8 (byte 0xed at character 1)" in stderr and len(stderr.strip().splitlines()) == 1


def test_the_python_api_refuses_surrogates_before_the_tokenizer(word_run, char_run, tmp_path):
    with pytest.raises(CorpusError, match="the text: not valid Unicode"):
        seqtext.complete(word_run, "Voy al \ud800")
    with pytest.raises(CorpusError, match="the text: not valid Unicode"):
        seqtext.complete(char_run, "Voy al \udfff")  # a char model would have read it as <unk>
    with pytest.raises(CorpusError, match="the text: not valid Unicode"):
        seqtext.generate(word_run, "\ud800 Hola", max_new_tokens=3)
    with pytest.raises(CorpusError, match="text 2: not valid Unicode"):
        seqtext.classify(CLASSIFIER, ["a fine film", "\ud800"])
    data = tmp_path / "me.json"
    typist = Completer(word_run, user_data=data)
    with pytest.raises(CorpusError, match="the text: not valid UTF-8"):
        typist.learn("Zorbaxa \udcff")
    assert not data.exists(), "nothing was learned, nothing written"
    with pytest.raises(ConfigError, match="--labels is not valid UTF-8"):
        ClassifierConfig(labels=("good", "bad\udcff"))


def test_surrogates_in_json_files_are_refused_naming_the_field(word_run, tmp_path):
    data = personal_file(tmp_path / "me.json", '{"format": "seqtext-personal", "version": 1, "words": {"\\ud800": 1}}')
    with pytest.raises(CorpusError, match=r'field "words" is not valid Unicode \(an unpaired surrogate, U\+D800'):
        PersonalModel(data)
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "hola"}\n{"text": "adi\\udcffos"}\n', encoding="utf-8")
    result = invoke("train", "lm", rows, "--out", tmp_path / "r")
    assert_clean_error(result, 'rows.jsonl, line 2: field "text" is not valid Unicode')


# --- class 6: numbers that overflow ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--temperature", "1e308"], "--temperature must be between 0 and 100 (got 1e+308)"),
        (["--temperature", "-1"], "--temperature must be between 0 and 100"),
        (["--top-k", str(10**400)], "--top-k must be between 1 and 2^63 - 1"),
        (["--max-new-tokens", str(10**30)], "--max-new-tokens must be between 0 and 2^63 - 1"),
    ],
)
def test_generation_options_out_of_range(char_run, args, words):
    assert_clean_error(invoke("generate", char_run, *args), words)


def test_generate_from_python_refuses_an_overflowing_temperature(char_run):
    with pytest.raises(ConfigError, match="--temperature must be between 0 and 100"):
        seqtext.generate(char_run, "Hola", temperature=1e308)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--epochs", str(10**400)], "--epochs is out of range (got a number of 401 digits)"),
        (["--patience", str(2**64)], "--patience is out of range"),
        (["--lr", "1e300"], "--lr must be between 0 and 10 (got 1e+300)"),
        (["--weight-decay", "1e9"], "--weight-decay must be between 0 and 100"),
        (["--clip", "1e308"], "--clip must be between 0 and 1,000,000"),
        (["--max-time", "99999999999d"], "--max-time must be between 0 and 31,622,400"),
    ],
)
def test_training_options_out_of_range(lines_file, tmp_path, args, words):
    assert_clean_error(invoke("train", "lm", lines_file, "--out", tmp_path / "r", *args), words)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("count", "words"),
    [
        ("1" + "0" * 400, 'field "words.perro" is out of range (got 1000'),
        (str(2**60), "must be a whole number from 1 to 9,007,199,254,740,992"),
        ("1e400", 'field "words.perro" is out of range (got 1e400: beyond what a float holds)'),
    ],
)
def test_user_data_counts_that_overflow_are_refused(tmp_path, count, words):
    text = '{"format": "seqtext-personal", "version": 1, "words": {"perro": ' + count + "}}"
    data = personal_file(tmp_path / "me.json", text)
    with pytest.raises(CorpusError, match="user data") as refused:
        PersonalModel(data)
    assert words in str(refused.value) and "it was left as it is" in str(refused.value)
    assert data.read_text(encoding="utf-8") == text


def test_a_metrics_step_that_overflows_is_one_line_in_plot_and_inspect(char_run, tmp_path):
    pytest.importorskip("matplotlib")
    run = copy_run(char_run, tmp_path / "run")
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as log:
        log.write('{"step": 1' + "0" * 400 + ', "val_loss": 1.0}\n')
    lines = len((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines())
    words = f'metrics.jsonl, line {lines}: field "step" is out of range'
    assert_clean_error(invoke("plot", run, "--out", tmp_path / "x.png"), words)
    assert_clean_error(invoke("inspect", run), words)


# --- class 7: structure ----------------------------------------------------------------------------------------------


def test_user_data_nested_100000_deep_is_one_line(word_run, tmp_path):
    data = personal_file(tmp_path / "me.json", "[" * 100_000 + "]" * 100_000)
    result = invoke("complete", word_run, "--text", "Mi per", "--user-data", data)
    assert_clean_error(result, "nested too deeply")


def test_metrics_records_missing_fields_are_shown_and_strings_are_refused(char_run, tmp_path):
    pytest.importorskip("matplotlib")
    run = copy_run(char_run, tmp_path / "run")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:
        del record["epoch"], record["seconds"]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    shown = invoke("inspect", run)
    assert shown.exit_code == 0 and "epoch unknown, time unknown" in shown.stderr, shown.output
    assert invoke("plot", run, "--out", tmp_path / "x.png").exit_code == 0
    records[1]["val_loss"] = "low"
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    words = "metrics.jsonl, line 2: its \"val_loss\" is 'low', not a number; delete that line"
    assert_clean_error(invoke("inspect", run), words)
    assert_clean_error(invoke("plot", run, "--out", tmp_path / "x.png"), words)
    (run / "metrics.jsonl").write_text('{"val_loss": 1.0}\n', encoding="utf-8")
    assert_clean_error(invoke("inspect", run), 'line 1: its "step" is null, not a whole number')


def test_serve_on_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    result = invoke("serve", loop, "--port", "0")
    assert_clean_error(result, f"{loop}: cannot use this run path (Too many levels of symbolic links)")
    assert_clean_error(invoke("inspect", loop), "Too many levels of symbolic links")


# --- class 8: nothing silently accepted -------------------------------------------------------------------------------


def not_a_file(path, kind):
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/null")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(path.parent / "nowhere")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "broken link"])
@pytest.mark.parametrize("name", ["phrase_memory.json", "ensemble.json"])
def test_classifier_files_that_are_not_regular_files_are_errors_not_absent(tmp_path, name, kind):
    run = copy_run(CLASSIFIER, tmp_path / "run")
    not_a_file(run / name, kind)
    texts = tmp_path / "texts.txt"
    texts.write_text("a great film\n", encoding="utf-8")
    result = invoke("classify", run, texts)
    assert_clean_error(result, f"{run / name}: ")
    assert "not a regular file" in result.stderr or "symbolic link to nothing" in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_an_ngram_file_that_is_not_a_regular_file_is_refused_the_same_way(word_run, tmp_path, kind):
    run = copy_run(word_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["model"]["ngram_weights"] = [0.1, 0.2]
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    not_a_file(run / "ngram.safetensors", kind)
    result = invoke("complete", run, "--text", "Mi per")
    assert_clean_error(result, f"{run / 'ngram.safetensors'}: a pipe, a socket or a device, not a regular file")


@pytest.mark.parametrize("name", ["train_config.json", "metrics.jsonl"])
def test_other_optional_run_files_that_are_pipes_are_refused(char_run, tmp_path, name):
    run = copy_run(char_run, tmp_path / "run")
    not_a_file(run / name, "fifo")
    assert_clean_error(invoke("inspect", run), f"{run / name}: a pipe, a socket or a device, not a regular file")


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        ('{"text": "hola"}\n{"text": [1, 2]}\n', "rows.jsonl, line 2: 'text' is a JSON list, not text"),
        ('{"text": "hola"}\n{"text": {"a": 1}}\n', "rows.jsonl, line 2: 'text' is a JSON object, not text"),
        ('{"text": "hola"}\n{"text": 5}\n', "rows.jsonl, line 2: 'text' is a JSON number, not text"),
        ('{"text": "hola"}\n\n[1, 2]\n', "rows.jsonl, line 3: a JSON list, not an object"),
        ('{"text": "hola"}\n"adios"\n', "rows.jsonl, line 2: a JSON string, not an object"),
        ('{"text": "hola"}\n{"text": "a", "text": "b"}\n', 'rows.jsonl, line 2: the key "text" appears twice'),
        ('{"text": "hola"}\n{"text": "a"\n', "rows.jsonl, line 2: not readable JSON (Expecting ',' delimiter"),
    ],
)
def test_jsonl_corpora_are_read_strictly_with_line_numbers(tmp_path, lines, words):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(lines, encoding="utf-8")
    assert_clean_error(invoke("train", "lm", rows, "--out", tmp_path / "r"), words)
    assert_clean_error(invoke("classify", CLASSIFIER, rows), words)


def test_jsonl_tables_train_a_classifier_with_labels_and_a_json_list_file_reads_too(tmp_path):
    rows = tmp_path / "rows.json"
    phrases = [{"text": t, "label": i % 5} for i, t in enumerate(["good", "bad", "fine", "awful", "great"] * 4)]
    rows.write_text(json.dumps(phrases), encoding="utf-8")
    from seqtext.sentiment.labelled import read_labelled

    table, _ = read_labelled(rows)
    assert table.texts[:3] == ["good", "bad", "fine"] and table.labels[:3] == [0, 1, 2]
    rows.write_text(json.dumps([*phrases, [1]]), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"rows\.json, item 21: a JSON list, not an object"):
        read_labelled(rows)


def test_prompt_and_prompt_file_together_are_refused(char_run, tmp_path):
    prompt = tmp_path / "p.txt"
    prompt.write_text("Voy al", encoding="utf-8")
    result = invoke("generate", char_run, "--prompt", "Mi", "--prompt-file", prompt)
    assert_clean_error(result, "--prompt and --prompt-file both give the prompt: pass only one")


@pytest.mark.parametrize("fraction", ["0.2", "0.05"])  # the default, typed, is a choice too
def test_valid_and_valid_fraction_together_are_refused(lines_file, tmp_path, fraction):
    words = "--valid names the validation data and --valid-fraction holds out a share of DATA instead"
    out = tmp_path / "r"
    result = invoke("train", "lm", lines_file, "--out", out, "--valid", lines_file, "--valid-fraction", fraction)
    assert_clean_error(result, words)
    phrases = PHRASES
    result = invoke("train", "classifier", phrases, "--out", out, "--valid", phrases, "--valid-fraction", fraction)
    assert_clean_error(result, words)
    assert not out.exists()


def test_valid_with_a_fraction_is_refused_from_python_when_training_starts(lines_file, tmp_path):
    with pytest.raises(ConfigError, match="pass only one"):
        train_tiny(lines_file, tmp_path / "r", valid=str(lines_file), valid_fraction=0.3)
    assert not (tmp_path / "r").exists()
    assert TrainConfig(valid="v.txt", valid_fraction=0.3).valid_fraction == 0.3, "a saved config still reads"


def test_a_duplicate_key_in_a_run_file_is_named(char_run, tmp_path):
    run = copy_run(char_run, tmp_path / "run")
    text = (run / "config.json").read_text(encoding="utf-8")
    (run / "config.json").write_text(text.replace('"kind": "lm"', '"kind": "lm", "kind": "classifier"'), "utf-8")
    with pytest.raises(CheckpointError, match=r'config\.json: the key "kind" appears twice in one object'):
        seqtext.load(run)
    run = copy_run(char_run, tmp_path / "run2")
    text = (run / "train_config.json").read_text(encoding="utf-8")
    (run / "train_config.json").write_text(text.replace('"seed": 0', '"seed": 0, "seed": 1'), "utf-8")
    assert_clean_error(invoke("inspect", run), 'train_config.json: the key "seed" appears twice')


def test_a_resume_state_that_is_a_pipe_is_an_error_not_a_finished_run(interrupted_run, tmp_path):
    run = copy_run(interrupted_run, tmp_path / "run")
    not_a_file(run / "trainer_state.json", "fifo")
    words = f"{run / 'trainer_state.json'}: a pipe, a socket or a device, not a regular file"
    assert_clean_error(invoke("inspect", run), words)
    assert_clean_error(invoke("train", "lm", "x.txt", "--out", run, "--resume"), words)
