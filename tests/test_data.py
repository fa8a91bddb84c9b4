import pytest
import torch

from seqtext.data import (
    LineWindows,
    StreamWindows,
    check_lm_size,
    count_characters,
    looks_like_lines,
    read_texts,
    split_texts,
)
from seqtext.errors import CorpusError
from seqtext.tokenizer import PAD_ID


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("hola\nqué tal\n".encode() + b"caf\xe9\n")
    with pytest.raises(CorpusError, match=r"bad.txt, line 3: not valid UTF-8"):
        read_texts(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_texts(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no text"):
        read_texts(tmp_path / "empty.txt")


def test_text_column_of_a_jsonl_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": 1, "body": "hola"}\n{"id": 2, "body": "adiós"}\n', encoding="utf-8")
    assert read_texts(path, "body") == ["hola", "adiós"]
    with pytest.raises(CorpusError, match=r"no column 'text' \(columns: id, body\)"):
        read_texts(path, "text")


def test_shape_detection(lines_file, prose_file):
    assert looks_like_lines(lines_file.read_text(encoding="utf-8").splitlines())
    assert not looks_like_lines(prose_file.read_text(encoding="utf-8").splitlines())


def test_split_is_deterministic_and_disjoint():
    texts = [f"line {i}." for i in range(100)]
    a = split_texts(texts, 0.1, stream=False, seed=3)
    assert a == split_texts(texts, 0.1, stream=False, seed=3)
    assert len(a[1]) == 10 and not set(a[0]) & set(a[1])
    assert split_texts(texts, 0.1, stream=True, seed=3)[1] == texts[-10:]


def test_stream_windows_predict_every_token_once():
    ids = torch.arange(4, 4 + 101)
    windows = StreamWindows(ids, bptt=7, batch_size=4)
    for epoch in (0, 1, 2):
        targets = torch.cat([w.targets for w in windows.epoch(epoch, seed=0)], dim=1)
        assert sorted(t for t in targets.flatten().tolist() if t != PAD_ID) == ids[1:].tolist()


def test_stream_windows_resume_mid_epoch_replays_the_rest():
    windows = StreamWindows(torch.arange(4, 400), bptt=5, batch_size=3)
    full = list(windows.epoch(1, seed=7))
    rest = list(windows.epoch(1, seed=7, start=4))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(full[4:], rest, strict=True))


def test_line_windows_start_each_line_and_carry_inside_long_lines():
    lines = [[2, 5, 6, 3], [2, *range(5, 25), 3]]
    windows = list(LineWindows(lines, bptt=8, batch_size=2).epoch(0, seed=0))
    assert [w.carry for w in windows] == [False, True, True]
    assert windows[0].inputs[:, 0].tolist() == [2, 2]


def test_line_windows_resume_mid_epoch():
    lines = [[2, *range(5, 5 + n), 3] for n in range(1, 40)]
    lw = LineWindows(lines, bptt=8, batch_size=4)
    full = list(lw.epoch(2, seed=1))
    rest = list(lw.epoch(2, seed=1, start=5))
    assert len(rest) == len(full) - 5 and torch.equal(full[5].inputs, rest[0].inputs)


def test_too_small_corpus_says_the_numbers():
    windows = StreamWindows(torch.arange(4, 104), bptt=32, batch_size=8)
    with pytest.raises(CorpusError, match=r"gives 99 training tokens; --bptt 32 × --batch-size 8 needs at least 264"):
        check_lm_size(windows, "tiny.txt", 32, 8)
    with pytest.raises(CorpusError, match=r"gives 2 training lines; --batch-size 8 needs at least 8"):
        check_lm_size(LineWindows([[2, 5, 3], [2, 6, 3]], 16, 8), "tiny.txt", 16, 8)


def test_characters_count_one_newline_per_line():
    assert count_characters(["ab", "", "c"], stream=True) == 3 + 1 + 2
    assert count_characters(["ab", "", "c"], stream=False) == 3 + 2
