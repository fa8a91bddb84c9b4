"""Bounded memory and prompt stops (issue 22, class 3): every reader has a stated bound and refuses
beyond it with one line (standard input that never ends a line, a huge line, a huge file, a huge
option value), long texts are read in bounded chunks with the same answers, and a stop signal takes
effect between chunks. Endless and huge inputs go through the real readers with small bounds or
generators; nothing here writes gigabytes."""

import io
import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from helpers import FIXTURES, ROOT, SENTENCES, assert_clean_error, copy_run, invoke

import seqtext
from seqtext import textfiles, tokenizer
from seqtext.data import LineWindows, read_texts
from seqtext.errors import CorpusError
from seqtext.runs import reading

CLASSIFIER = FIXTURES / "run-0.1.0-classifier"


class Endless(io.RawIOBase):
    """A stream that never ends a line (like `yes | tr -d '\\n'`), counting what was read from it."""

    def __init__(self, byte: bytes = b"a") -> None:
        self.byte, self.read_bytes = byte, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = self.byte * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


# --- streams: a line at most MAX_LINE_BYTES, refused once that much is read --------------------------------------


def test_a_stream_that_never_ends_a_line_is_refused_at_the_bound(monkeypatch):
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 4096)
    endless = io.BufferedReader(Endless(), buffer_size=1024)
    with pytest.raises(CorpusError, match=r"standard input, line 1: longer than 4 KiB \(4,096 bytes\)"):
        list(textfiles.text_lines(endless, textfiles.STDIN))
    assert endless.raw.read_bytes <= 4096 + 2 * 1024, "read no further than the bound (and one buffer)"


def test_lines_up_to_the_bound_are_read_and_one_over_it_is_named(monkeypatch):
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 10)
    ok = b"0123456789\r\nabc\n"  # exactly the bound, its line end not counted
    assert list(textfiles.text_lines(io.BytesIO(ok), "x")) == ["0123456789", "abc"]
    with pytest.raises(CorpusError, match=r"^x, line 2: longer than 10 bytes"):
        list(textfiles.text_lines(io.BytesIO(b"ok\n01234567890\n"), "x"))


def endless_stdin(*args: str, chunk: bytes = b"Voy al parque " * 4096):
    """Run seqtext with a standard input that never ends a line (stops after 64 MiB, so a reader
    without a bound would finish instead of hanging); returns (exit code, stderr, peak memory in KiB)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "seqtext", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )

    def feed():
        try:
            for _ in range((64 << 20) // len(chunk)):
                process.stdin.write(chunk)
            process.stdin.close()
        except (BrokenPipeError, OSError, ValueError):  # the reader refused and left: what should happen
            pass

    threading.Thread(target=feed, daemon=True).start()
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, stderr, usage.ru_maxrss


@pytest.mark.parametrize("command", ["classify", "complete"])
def test_endless_standard_input_is_refused_with_one_line_and_little_memory(char_run, command):
    args = (command, str(CLASSIFIER), "-") if command == "classify" else (command, str(char_run))
    code, stderr, peak_kib = endless_stdin(*args)
    assert code == 1 and "Traceback" not in stderr, stderr
    assert stderr.strip().endswith("standard input, line 1: longer than 1 MiB (1,048,576 bytes), the longest line "
                                   "seqtext reads from a stream; end its texts with line breaks, or give a corpus as "
                                   "a file")  # fmt: skip
    assert peak_kib < 1_500_000, f"peak memory {peak_kib / 1024:.0f} MiB: the stream was not bounded"


def test_dev_zero_on_standard_input_is_named_binary(char_run):
    with open("/dev/zero", "rb") as zeros:
        result = subprocess.run(
            [sys.executable, "-m", "seqtext", "classify", str(CLASSIFIER), "-"],
            stdin=zeros,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    assert result.returncode == 1 and "standard input is a binary file (it holds NUL bytes)" in result.stderr


def test_a_huge_line_in_a_classified_file_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "MAX_LINE_BYTES", 1000)
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\n" + "x" * 1001 + "\n", encoding="utf-8")
    assert_clean_error(invoke("classify", CLASSIFIER, texts), f"{texts}, line 2: longer than 1000 bytes")
    table = tmp_path / "texts.tsv"
    table.write_text("text\tlabel\nfine\t1\n" + "y" * 1001 + "\t2\n", encoding="utf-8")
    assert_clean_error(invoke("classify", CLASSIFIER, table), f"{table}, line 3: longer than 1000 bytes")
    rows = tmp_path / "texts.jsonl"
    rows.write_text('{"text": "fine"}\n{"text": "' + "z" * 1001 + '"}\n', encoding="utf-8")
    assert_clean_error(invoke("classify", CLASSIFIER, rows), f"{rows}, line 2: longer than 1000 bytes")


def test_a_text_longer_than_a_classifier_reads_is_refused(tmp_path, monkeypatch):
    from seqtext.sentiment import labelled

    monkeypatch.setattr(labelled, "MAX_TEXT_CHARS", 50)
    texts = tmp_path / "texts.txt"
    texts.write_text("a fine film\n" + "a very long review " * 5 + "\n", encoding="utf-8")
    assert_clean_error(invoke("classify", CLASSIFIER, texts), f"{texts}, line 2: a text of 95 characters")
    assert_clean_error(invoke("classify", CLASSIFIER, "-", input="ok\n" + "b" * 51 + "\n"), "standard input, line 2")
    with pytest.raises(CorpusError, match="text 2: a text of 51 characters; a classifier reads texts of up to 50"):
        seqtext.classify(CLASSIFIER, ["fine", "c" * 51])


def test_classifier_batches_hold_a_bounded_number_of_tokens(monkeypatch):
    from seqtext.sentiment import labelled

    monkeypatch.setattr(labelled, "TOKENS_PER_BATCH", 100)
    ids = [[5] * 30] * 10 + [[5] * 3] * 40 + [[5] * 500]
    batches = labelled.length_batches(range(len(ids)), ids, batch_size=32)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    assert all(len(b) * len(ids[b[0]]) <= 100 or len(b) == 1 for b in batches)
    assert max(len(b) for b in batches) == 32, "short texts still fill a batch"
    counted = labelled.TextBatches(ids, [0] * len(ids), 32)
    assert counted.steps_per_epoch == len(batches) == len(list(counted.epoch(0, seed=0)))


# --- files read whole: MAX_TEXT_BYTES, lines of any length, read in chunks ---------------------------------------


def test_a_corpus_larger_than_the_bound_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "MAX_TEXT_BYTES", 1000)
    corpus = tmp_path / "big.txt"
    corpus.write_text("hola mundo\n" * 100, encoding="utf-8")  # 1,100 bytes
    with pytest.raises(CorpusError, match=r"big\.txt is larger than 1000 bytes, the most seqtext reads as one text"):
        read_texts(corpus)
    table = tmp_path / "big.jsonl"
    table.write_text('{"text": "hola mundo"}\n' * 50, encoding="utf-8")
    with pytest.raises(CorpusError, match=r"big\.jsonl is larger than 1000 bytes"):
        read_texts(table)
    monkeypatch.setattr("seqtext.data.MAX_PROMPT_BYTES", 500)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("x" * 501, encoding="utf-8")
    result = invoke("generate", tmp_path, "--prompt-file", prompt)
    assert_clean_error(result, f"--prompt-file {prompt} is larger than 500 bytes, the most seqtext reads")


def test_long_texts_are_tokenized_in_chunks_with_the_same_ids(word_run, monkeypatch):
    loaded = seqtext.load(word_run)
    text = " ".join(SENTENCES) * 40  # 7,000 characters in one line
    whole = tokenizer.encode_batch(loaded.tokenizer, [text, "Mi perro"])
    calls = []
    original = tokenizer._encode

    def spy(tok, texts):
        calls.append(sum(map(len, texts)))
        return original(tok, texts)

    monkeypatch.setattr(tokenizer, "ENCODE_CHARS", 500)
    monkeypatch.setattr(tokenizer, "_encode", spy)
    assert tokenizer.encode_batch(loaded.tokenizer, [text, "Mi perro"]) == whole
    assert len(calls) > 10 and max(calls) <= 500
    short = [*SENTENCES] * 40 + [""]  # many short texts, together over the limit
    monkeypatch.setattr(tokenizer, "ENCODE_CHARS", 1 << 20)
    whole = tokenizer.encode_batch(loaded.tokenizer, short)
    monkeypatch.setattr(tokenizer, "ENCODE_CHARS", 500)
    calls.clear()
    assert tokenizer.encode_batch(loaded.tokenizer, short) == whole
    assert len(calls) > 3 and max(calls) <= 500 and calls[0] > 400


@pytest.mark.parametrize("level", ["char", "word"])  # WordPiece breaks its ties differently run to run
def test_tokenizers_are_trained_in_pieces_with_the_same_vocabulary(monkeypatch, level):
    texts = [" ".join(SENTENCES) * 50, "Hola."]  # a long line and a short one
    whole = tokenizer.build_tokenizer(texts, level, 200).get_vocab()
    monkeypatch.setattr(tokenizer, "ENCODE_CHARS", 100)
    assert tokenizer.build_tokenizer(texts, level, 200).get_vocab() == whole


def test_evaluate_on_a_long_line_is_chunked_and_gives_the_same_figures(char_run, tmp_path, monkeypatch):
    long_line = tmp_path / "long.txt"
    long_line.write_text(" ".join(SENTENCES) * 30 + "\n", encoding="utf-8")  # one line of ~5,000 characters
    before = seqtext.evaluate(char_run, long_line)
    monkeypatch.setattr(tokenizer, "ENCODE_CHARS", 300)
    after = seqtext.evaluate(char_run, long_line)
    assert after.characters == before.characters and after.tokens == before.tokens
    assert after.loss == pytest.approx(before.loss, rel=1e-5)


class HugeLine:
    """A line of 10^12 token ids that exists only where it is sliced (a whole book on one line, and more)."""

    def __len__(self) -> int:
        return 10**12

    def __getitem__(self, part: slice) -> list[int]:
        return [5 + i % 7 for i in range(*part.indices(len(self)))]


def test_line_windows_hold_one_window_not_the_padded_line():
    windows = LineWindows([HugeLine(), [2, 5, 6, 3], [2, 7, 3]], bptt=16, batch_size=3)
    first = list(zip(range(3), windows.epoch(0, seed=None), strict=False))
    assert [tuple(w.inputs.shape) for _, w in first] == [(3, 16)] * 3
    assert [w.carry for _, w in first] == [False, True, True]
    huge = first[1][1].inputs[-1]  # sorted by length: the huge line is the batch's last row
    assert torch.equal(huge, torch.tensor([5 + i % 7 for i in range(16, 32)]))
    assert not first[1][1].inputs[0].any(), "the short lines are padding after their end"


# --- run files and options ----------------------------------------------------------------------------------------


def test_a_metrics_log_larger_than_the_bound_is_refused(char_run, tmp_path, monkeypatch):
    run = copy_run(char_run, tmp_path / "run")
    monkeypatch.setattr(reading, "MAX_METRICS_BYTES", 100)
    assert_clean_error(invoke("inspect", run), "metrics.jsonl is larger than 100 bytes, more than a run records")


def test_inspect_reads_the_metrics_log_a_line_at_a_time(char_run, tmp_path, monkeypatch):
    run = copy_run(char_run, tmp_path / "run")
    records = reading.read_metrics(run)
    held = []
    original = reading.metric_records

    def counted(path):
        for record in original(path):
            held.append(record)
            yield record

    monkeypatch.setattr("seqtext.runs.inspection.metric_records", counted)
    summary = seqtext.inspect_run(run)
    assert summary.evaluations == len(records) == len(held)
    assert summary.last["step"] == records[-1]["step"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--windows", "1000000000"], "--windows must be between 1 and 10,000 (got 1000000000)"),
        (["--batches", "20000"], "--batches must be between 1 and 10,000"),
        (["--steps", "1000000"], "--steps must be between 1 and 4,096"),
    ],
)
def test_gradients_options_are_bounded(char_run, lines_file, args, words):
    assert_clean_error(invoke("gradients", char_run, lines_file, *args), words)


# --- a stop takes effect between bounded chunks ----------------------------------------------------------------------


def stop_on_first_long_read(monkeypatch, kind=torch.nn.LSTM):
    """Make the recurrent network send SIGTERM to this process while it reads its first chunk of more
    than one token, and record the length of every chunk read: the command must stop before the next."""
    reads = []
    original = kind.forward

    def forward(self, x, *args, **kwargs):
        steps = x.size(1) if x.dim() == 3 else 1
        if steps > 1:
            reads.append(steps)
            if len(reads) == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # acted on at the next bytecode, when this chunk returns
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(kind, "forward", forward)
    return reads


def test_sigterm_stops_complete_on_a_long_line_between_chunks(word_run, monkeypatch):
    reads = stop_on_first_long_read(monkeypatch)
    line = " ".join(SENTENCES) * 200  # about 7,000 words: several chunks of 1,024 tokens
    result = invoke("complete", word_run, "--text", line, "--no-int8")
    assert result.exit_code == 143, result.output
    assert reads == [1024], "the stop came after the first chunk, before the second"


def test_sigterm_stops_complete_in_int8_within_a_token(word_run, monkeypatch):
    from seqtext.keyboard.int8 import Int8Steps

    steps, original = [], Int8Steps._step

    def step(self, ids, state):  # int8 reads a token at a time, in Python: a stop lands at the next one
        steps.append(1)
        if len(steps) == 2:  # the first is <bos>, read when the completer is made
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, ids, state)

    monkeypatch.setattr(Int8Steps, "_step", step)
    result = invoke("complete", word_run, "--text", " ".join(SENTENCES) * 200)
    assert result.exit_code == 143, result.output
    assert len(steps) <= 3, f"{len(steps)} tokens read after the stop"


def test_sigterm_stops_generate_reading_a_long_prompt(char_run, monkeypatch):
    reads = stop_on_first_long_read(monkeypatch)
    result = invoke("generate", char_run, "--prompt", "Voy al parque " * 500, "--max-new-tokens", "5")
    assert result.exit_code == 143 and reads == [1024], (result.output, reads)


def test_sigterm_stops_evaluate_between_windows(char_run, tmp_path, monkeypatch):
    data = tmp_path / "long.txt"
    data.write_text(" ".join(SENTENCES) * 30 + "\n", encoding="utf-8")
    reads = stop_on_first_long_read(monkeypatch)
    result = invoke("evaluate", char_run, data)
    assert result.exit_code == 143 and len(reads) == 1 and reads[0] <= 256, (result.output, reads)


def test_sigterm_stops_classify_between_batches(tmp_path, monkeypatch):
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{'a good film ' * (1 + i % 40)}\n" for i in range(400)), encoding="utf-8")
    reads = stop_on_first_long_read(monkeypatch)
    result = invoke("classify", CLASSIFIER, texts)
    assert result.exit_code == 143 and len(reads) == 1, (result.output, reads)


# --- the docs state the bounds the code holds ----------------------------------------------------------------------


def test_docs_state_every_bound():
    from seqtext import data, jsonfiles, limits
    from seqtext.keyboard import completion, userdata
    from seqtext.lm import generation, gradients
    from seqtext.sentiment import labelled

    size = textfiles.size_text
    errors = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    stated = [
        f"{size(textfiles.MAX_LINE_BYTES)} ({textfiles.MAX_LINE_BYTES:,} bytes)",
        f"| {size(textfiles.MAX_TEXT_BYTES)} |",
        f"| {size(data.MAX_PROMPT_BYTES)} |",
        f"| {labelled.MAX_TEXT_CHARS:,} characters |",
        f"at most {labelled.TOKENS_PER_BATCH:,} tokens",
        f"at most {tokenizer.ENCODE_CHARS:,} characters at a time",
        f"| {size(jsonfiles.MAX_JSON_BYTES)} |",
        f"| {size(reading.MAX_TOKENIZER_BYTES)} / {size(reading.MAX_METRICS_BYTES)} |",
        f"| {size(userdata.MAX_FILE_BYTES)}; each count at most 2⁵³ |",
        f"| 0 … {generation.MAX_TEMPERATURE} |",
        f"| {limits.MAX_LR} / {limits.MAX_WEIGHT} / {limits.MAX_CLIP:,} |",
        f"| {limits.MAX_SECONDS // 86_400} days / {limits.MAX_NGRAM_MB:,} MB |",
        f"| {completion.MAX_SUGGESTIONS:,} |",
        f"| {gradients.MAX_PROBES:,} / {gradients.MAX_STEPS_BACK:,} |",
        f"deeper than {jsonfiles.MAX_DEPTH} levels",
    ]
    assert userdata.MAX_COUNT == 2**53 and limits.MAX_SECONDS % 86_400 == 0  # as the table writes them
    assert [s for s in stated if s not in errors] == []
    from seqtext.serve import ServeConfig, guards, server

    serving = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    defaults = ServeConfig()
    stated = [
        f"`--max-connections` ({defaults.max_connections};",
        f"`--read-timeout` ({defaults.read_timeout:g} s:",
        f"may hold {guards.MAX_HEADER_BYTES:,} bytes",
        f"closed after {server.KEEP_ALIVE_SECONDS} s",
    ]
    assert [s for s in stated if s not in serving] == []
