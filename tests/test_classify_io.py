"""`seqtext classify` reads and writes in blocks (issue 21: the Python around the model). `line_blocks` gives
exactly the lines `text_lines` gives, and refuses exactly what it refuses with the same line, whatever falls on
a block's edge; classify reads its files and standard input through it, and writes a chunk's rows at once,
each as `seqtext.classify` answers it."""

import csv
import io
import json
import re

import pytest
from helpers import FIXTURES, copy_run, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqtext
from seqtext import textfiles
from seqtext.errors import CorpusError
from seqtext.runs.saving import write_phrase_memory
from seqtext.sentiment.inputs import read_inputs
from seqtext.textfiles import line_blocks, text_lines

CLASSIFIER = FIXTURES / "run-0.1.0-classifier"
# Pieces that make every case of a line: text, multi-byte UTF-8 (cut by a block edge or not), line ends,
# carriage returns, byte-order marks, invalid UTF-8 and NUL bytes.
PIECES = [b"a", b"b c", b"\n", b"\n", b"\r", b"\r\n", b"\xef\xbb\xbf", "ñ".encode(), "€".encode(), b"\xe9", b"\x00"]


def outcome(read, data: bytes, max_bytes: int) -> list[str] | str:
    """Every line read, or the message of the first problem (which ends the reading)."""
    try:
        return list(read(io.BytesIO(data), "in.txt", max_bytes))
    except CorpusError as exc:
        return str(exc)


def by_blocks(stream, name, max_bytes):
    for lines in line_blocks(stream, name, max_bytes):
        yield from lines


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    block=st.integers(1, 24),
    max_bytes=st.integers(3, 30),
)
def test_blocks_give_the_lines_and_errors_of_text_lines(content, block, max_bytes):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(textfiles, "BLOCK_BYTES", block)
        assert outcome(by_blocks, content, max_bytes) == outcome(text_lines, content, max_bytes)


@pytest.mark.parametrize("block", [5, 64, 1 << 20])
def test_long_files_read_in_blocks_name_the_line_of_a_problem(monkeypatch, block):
    monkeypatch.setattr(textfiles, "BLOCK_BYTES", block)
    good = "".join(f"línea {i}\r\n" if i % 3 else f"\ufeffline {i}\n" for i in range(500)).encode()
    assert [line for lines in line_blocks(io.BytesIO(good), "f") for line in lines] == list(
        text_lines(io.BytesIO(good), "f")
    )
    for bad, message in [
        (b"caf\xe9\n", "f, line 501: not valid UTF-8 (byte 0xe9 at column 4)"),
        (b"ho\x00la\n", "f, line 501: a NUL byte at column 3"),
        (b"x" * 2000 + b"\n", "f, line 501: longer than 1000 bytes"),
        (b"y" * 5000, "f, line 501: longer than 1000 bytes"),  # no line end, as an endless stream
    ]:
        with pytest.raises(CorpusError, match=re.escape(message)):
            list(line_blocks(io.BytesIO(good + bad + b"fine\n"), "f", 1000))


def test_classify_inputs_keep_their_chunks_and_name_a_long_text(tmp_path, monkeypatch):
    from seqtext.sentiment import labelled

    monkeypatch.setattr(textfiles, "BLOCK_BYTES", 7)
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"text {i}\n" for i in range(10)), encoding="utf-8")
    chunks = [chunk for chunk, _ in read_inputs(str(texts), chunk_size=3).chunks]
    assert chunks == [[f"text {i}" for i in range(j, min(j + 3, 10))] for j in range(0, 10, 3)]
    monkeypatch.setattr(labelled, "MAX_TEXT_CHARS", 6)
    texts.write_text("a\nbb\n" + "c" * 7 + "\n" + "d" * 8 + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{texts}, line 3: a text of 7 characters"):
        list(read_inputs(str(texts)).chunks)


def test_classify_reads_a_file_and_standard_input_alike(tmp_path, monkeypatch):
    monkeypatch.setattr(textfiles, "BLOCK_BYTES", 16)
    lines = "".join(f"{'a fine film' if i % 2 else 'a dull film'} number {i}\r\n" for i in range(50))
    texts = tmp_path / "texts.txt"
    texts.write_text(lines, encoding="utf-8", newline="")
    from_file = invoke("classify", CLASSIFIER, texts)
    from_stdin = invoke("classify", CLASSIFIER, "-", input=lines.encode())
    assert from_file.exit_code == 0 and from_file.stdout == from_stdin.stdout
    rows = from_file.stdout.splitlines()
    assert len(rows) == 51 and rows[1].endswith("\ta dull film number 0") and rows[50].endswith("number 49")


def test_every_output_format_writes_what_the_api_answers(tmp_path):
    run = copy_run(CLASSIFIER, tmp_path / "run")
    write_phrase_memory(run, {"a dull film": 0, "bueno": 4})
    texts = ["a fine film", "", "A  dull film", "bueno", "tabs\tinside  and  spaces", "ñandú €", "None"]
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    answers = seqtext.classify(run, texts)
    assert [a.probs for a in answers[2:4]] == [[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]]  # the phrase memory's
    outputs = {}
    for fmt in ("tsv", "csv", "jsonl"):
        result = invoke("classify", run, tmp_path / "in.txt", "--format", fmt)
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.stdout
    names = [f"prob_{name.replace(' ', '_')}" for name in seqtext.load(run).config.labels]
    tsv = "\t".join(["label", "name", *names, "text"]) + "\n"
    tsv += "".join(
        f"{a.label}\t{a.name}\t" + "".join(f"{p:.4f}\t" for p in a.probs) + " ".join(t.split()) + "\n"
        for t, a in zip(texts, answers, strict=True)
    )
    assert outputs["tsv"] == tsv
    rows = list(csv.reader(io.StringIO(outputs["csv"])))
    assert rows[0] == ["label", "name", *names, "text"]
    assert rows[1:] == [
        [str(a.label), a.name, *(f"{p:.4f}" for p in a.probs), t] for t, a in zip(texts, answers, strict=True)
    ]
    lines = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert lines == [
        {"text": t, "label": a.label, "name": a.name, "probs": a.probs} for t, a in zip(texts, answers, strict=True)
    ]
    test = tmp_path / "test.tsv"
    phrases = ["a fine film", " ", "a dull film", "bueno", "None"]
    test.write_text("PhraseId\tSentenceId\tPhrase\n" + "".join(f"{7 + i}\t1\t{t}\n" for i, t in enumerate(phrases)))
    result = invoke("classify", run, test, "--format", "kaggle")
    [(read, ids)] = list(read_inputs(str(test), id_column="PhraseId").chunks)
    kaggle = "".join(f"{i},{a.label}\n" for i, a in zip(ids, seqtext.classify(run, read), strict=True))
    assert ids == [7, 8, 9, 10, 11] and result.stdout == "PhraseId,Sentiment\n" + kaggle
