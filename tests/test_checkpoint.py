import json

import pytest
import torch
from helpers import copy_run

import seqtext
from seqtext.errors import CheckpointError
from seqtext.runs.reading import FORMAT_VERSION


def test_run_is_exactly_these_files(char_run):
    names = sorted(p.name for p in char_run.iterdir())
    assert names == ["config.json", "metrics.jsonl", "model.safetensors", "tokenizer.json", "train_config.json"]


def test_config_json_describes_the_model(char_run):
    header = json.loads((char_run / "config.json").read_text(encoding="utf-8"))
    assert header["format_version"] == FORMAT_VERSION and header["kind"] == "lm"
    assert header["model"]["sample_by"] == "line" and header["model"]["vocab_size"] > 4


def test_reload_gives_identical_logits(char_run):
    a, b = seqtext.load(char_run), seqtext.load(char_run)
    ids = torch.tensor([[2, 5, 6, 7]])
    assert torch.equal(a.model(ids)[0], b.model(ids)[0])
    assert not a.model.training


def test_not_a_run(tmp_path):
    with pytest.raises(CheckpointError, match=r"is not a seqtext run \(missing config.json, model.safetensors"):
        seqtext.load(tmp_path)


def test_newer_format_is_refused(char_run, tmp_path):
    copy = copy_run(char_run, tmp_path / "newer")
    header = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    (copy / "config.json").write_text(json.dumps({**header, "format_version": FORMAT_VERSION + 1}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="newer than this seqtext"):
        seqtext.load(copy)


def test_damaged_weights_are_a_clear_error(char_run, tmp_path):
    copy = copy_run(char_run, tmp_path / "damaged")
    (copy / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a complete safetensors file"):
        seqtext.load(copy)


def test_no_pickle_in_the_package():
    from pathlib import Path

    source = "".join(p.read_text(encoding="utf-8") for p in Path(seqtext.__file__).parent.glob("*.py"))
    assert "torch.load" not in source and "import pickle" not in source
