"""Inputs that are not text (issue 9, class 3): compressed and binary files are named as such, NUL
bytes are refused with their line, a byte-order mark never becomes a vocabulary entry, and a closed
standard input is a clear error."""

import bz2
import gzip
import io
import json
import lzma
import subprocess
import sys
import zipfile

import pytest
from helpers import FIXTURES, ROOT, SENTENCES, invoke

from seqtext.data import read_prompt, read_texts
from seqtext.errors import CorpusError
from seqtext.sentiment.labelled import read_labelled, split_labelled
from seqtext.textfiles import text_lines

CORPUS = "".join(s + "\n" for s in SENTENCES * 10).encode("utf-8")
CLASSIFIER = FIXTURES / "run-0.1.0-classifier"


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("frases.txt", data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(CORPUS), "is a gzip file, not text; decompress it first, e.g. gunzip -k frases.txt"),
        (zipped(CORPUS), "is a zip archive, not text; extract it first"),
        (bz2.compress(CORPUS), "is a bzip2 file, not text"),
        (lzma.compress(CORPUS), "is an xz file, not text"),
        (CORPUS.decode().encode("utf-16"), "is UTF-16 text, not text; convert it to UTF-8"),
        (b"%PDF-1.7\n" + CORPUS, "is a PDF document, not text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is a PNG image, not text"),
        (b"PAR1\x00\x00", "is a parquet file, not text; give it the .parquet extension"),
        (b"\x00\x01\x02\x03" * 100, "is a binary file (it holds NUL bytes), not text"),
        (CORPUS + b"hola\x00mundo\n", "line 61: a NUL byte at column 5; text has none"),
        (CORPUS + "caf\xe9\n".encode("latin-1"), "line 61: not valid UTF-8 (byte 0xe9 at column 4); convert it"),
    ],
)
def test_not_text_is_named(tmp_path, content, message):
    path = tmp_path / "frases.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError) as raised:
        read_texts(path)
    assert message in str(raised.value)
    assert ("latin1" in str(raised.value)) == ("UTF-8 (byte" in message), "only text is told to convert from latin-1"


def test_the_cli_names_a_gzip_file(tmp_path):
    data = tmp_path / "frases.txt.gz"
    data.write_bytes(gzip.compress(CORPUS))
    result = invoke("train", "lm", data, "--out", tmp_path / "r")
    assert result.exit_code == 1 and "frases.txt.gz is a gzip file, not text; decompress it first" in result.stderr
    assert "Traceback" not in result.output


def test_tables_and_prompts_are_checked_the_same_way(tmp_path):
    table = tmp_path / "train.tsv"
    table.write_bytes(gzip.compress(b"PhraseId\tSentenceId\tPhrase\tSentiment\n1\t1\tgood\t4\n"))
    with pytest.raises(CorpusError, match=r"train\.tsv is a gzip file"):
        read_labelled(table)
    table.write_bytes(b"PhraseId\tSentenceId\tPhrase\tSentiment\n1\t1\tgo\x00od\t4\n")
    with pytest.raises(CorpusError, match="line 2: a NUL byte"):
        read_labelled(table)
    parquet = tmp_path / "train.parquet"
    parquet.write_bytes(b"text,label\n")
    with pytest.raises(CorpusError, match=r"train\.parquet is not a parquet file"):
        read_labelled(parquet)
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(gzip.compress(b"Voy al"))
    with pytest.raises(CorpusError, match=r"prompt\.txt is a gzip file"):
        read_prompt(prompt)


def test_byte_order_marks_never_reach_the_tokenizer(tmp_path):
    data = tmp_path / "bom.txt"
    half = "".join(s + "\n" for s in SENTENCES * 5)
    data.write_bytes(b"\xef\xbb\xbf" + half.encode() + b"\xef\xbb\xbf" + half.encode())  # two files concatenated
    texts = read_texts(data)
    assert texts[0] == SENTENCES[0] and not any("\ufeff" in t for t in texts)
    from seqtext.tokenizer import build_char_tokenizer

    assert "\ufeff" not in build_char_tokenizer(texts).get_vocab()
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"\xef\xbb\xbfVoy al")
    assert read_prompt(prompt) == "Voy al"
    assert list(text_lines(io.BytesIO(b"\xef\xbb\xbfhola\r\nadios\n"), "x")) == ["hola", "adios"]


def test_a_table_with_a_byte_order_mark_keeps_its_column_names(tmp_path):
    table = tmp_path / "train.tsv"
    table.write_bytes(b"\xef\xbb\xbfPhraseId\tSentenceId\tPhrase\tSentiment\n1\t1\tgood\t4\n2\t2\tbad\t0\n")
    rows, _ = read_labelled(table)
    assert rows.texts == ["good", "bad"] and rows.group_column == "SentenceId"
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"text": "good", "label": 4}\n')
    assert read_texts(jsonl) == ["good"]


def test_classify_reads_stdin_with_a_byte_order_mark(tmp_path):
    result = invoke("classify", CLASSIFIER, "-", input=b"\xef\xbb\xbfa great film\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].endswith("\ta great film")


def test_stdin_that_is_gzip_is_named(word_run):
    result = invoke("complete", word_run, input=gzip.compress(b"Mi per\n"))
    assert result.exit_code == 1 and "standard input is a gzip file, not text" in result.stderr


@pytest.mark.parametrize("command", ["complete", "classify"])
def test_a_closed_standard_input_is_a_clear_error(char_run, command):
    run, extra = (char_run, "") if command == "complete" else (CLASSIFIER, " -")
    shell = f"exec {sys.executable} -m seqtext {command} {run}{extra} <&-"
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "standard input is closed" in result.stderr and "Traceback" not in result.stderr


def test_a_closed_standard_output_is_a_clear_error(char_run):
    shell = f"exec {sys.executable} -m seqtext generate {char_run} --max-new-tokens 5 >&-"
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 1 and "standard output is closed" in result.stderr, result.stderr


def test_jsonl_groups_that_are_lists_still_split(tmp_path):
    rows = tmp_path / "rows.jsonl"
    lines = [{"text": t, "label": 4, "SentenceId": [i % 3]} for i, t in enumerate(["good", "bad", "fine", "ok"])]
    rows.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    data, _ = read_labelled(rows)
    train, valid, _ = split_labelled(data, 0.5, seed=0)
    assert len(train.texts) + len(valid.texts) == 4
