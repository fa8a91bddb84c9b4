"""Writing a run directory: safetensors + JSON + tokenizer.json, never pickle.

Every file is written to a temporary name and renamed into place (`seqtext.files.replacing`), so a
crash while saving leaves the previous file intact, and a write that fails (no space, a read-only
disk, an I/O error) is a NotWritten error naming the file. Training writes through these functions;
what they write is read back, checked, by `seqtext.runs.reading`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file, save_model
from tokenizers import Tokenizer
from torch import nn

from seqtext import __version__
from seqtext.config import TrainConfig, to_dict
from seqtext.config import write_json as _write_json
from seqtext.errors import NotWritten
from seqtext.files import replacing
from seqtext.runs.reading import (
    ENSEMBLE_FILE,
    ENSEMBLE_FORMAT,
    FORMAT_VERSION,
    MEMORY_FILE,
    MEMORY_FORMAT,
    read_header,
    read_metrics,
)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """A write of `path` that fails (no space, a read-only disk, an I/O error, no permission) becomes
    one NotWritten line naming it, whichever library wrote it."""
    try:
        yield
    except SafetensorError as exc:  # "Error while serializing: I/O error: No space left on device (os error 28)"
        found = re.search(r'I/O error: (.+?) \(os error \d+\)|message: "([^"]+)"', str(exc))
        why = (found[1] or found[2]) if found else str(exc).splitlines()[0]
        raise NotWritten(f"{path}: cannot write it ({why})") from None
    except OSError as exc:
        raise NotWritten(f"{path}: cannot write it ({exc.strerror or exc})") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file of a run atomically."""
    with writing(path):
        _write_json(path, data)


def save(out_dir: Path, model: nn.Module, tokenizer: Tokenizer, train_config: TrainConfig) -> None:
    """Write a complete checkpoint; config.json goes last, so its presence marks completeness."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with writing(out_dir / "model.safetensors"), replacing(out_dir / "model.safetensors") as tmp:
        save_model(model, str(tmp))  # save_model, not save_file: tied weights are shared tensors
    save_tokenizer(out_dir, tokenizer)
    write_json(out_dir / "train_config.json", to_dict(train_config))
    header = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "seqtext_version": __version__,
        "model": to_dict(model.config),
    }
    write_json(out_dir / "config.json", header)  # no timestamps: identical runs → identical files


def save_weights_fp16(out_dir: Path, model: nn.Module) -> None:
    """Rewrite model.safetensors in float16: half the size on disk; loading casts back to float32."""
    half = copy.deepcopy(model).half()
    with writing(out_dir / "model.safetensors"), replacing(out_dir / "model.safetensors") as tmp:
        save_model(half, str(tmp))  # save_model: tied weights are shared tensors


def save_tensors(out_dir: Path, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a further safetensors file into a run (the keyboard's n-gram), with its JSON header as metadata."""
    with writing(out_dir / name), replacing(out_dir / name) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def lines_tensor(lines: list[str]) -> torch.Tensor:
    """Lines of text as one uint8 tensor (UTF-8, joined by newlines): how a run's word lists are stored."""
    return torch.tensor(list("\n".join(lines).encode("utf-8")), dtype=torch.uint8)


def update_model_config(out_dir: Path, config: Any) -> None:
    """Rewrite the model config of a finished run's config.json (a value chosen after training)."""
    header = read_header(out_dir)
    write_json(out_dir / "config.json", {**header, "model": to_dict(config)})


def save_tokenizer(out_dir: Path, tokenizer: Tokenizer) -> None:
    """Write tokenizer.json (Hugging Face format)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.json"
    with writing(path), replacing(path) as tmp:
        try:
            tokenizer.save(str(tmp))
        except Exception as exc:  # tokenizers reports a failed write as a bare Exception
            raise OSError(f"{str(exc).splitlines()[0]}") from None


def append_metrics(out_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per evaluation; a line that cannot be written whole is taken back."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.jsonl"
    with writing(path), path.open("ab") as f:
        size = f.tell()
        try:
            f.write((json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
            f.flush()
        except OSError:
            with contextlib.suppress(OSError):
                f.truncate(size)  # no half line for the next reader to trip on
            raise


def truncate_metrics(run: Path, last_step: int) -> None:
    """Drop evaluations after `last_step` (written after the resume point, so they will be redone)."""
    kept = [r for r in read_metrics(run) if r.get("step", 0) <= last_step]
    with writing(run / "metrics.jsonl"), replacing(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")


def write_ensemble(out: Path, count: int) -> None:
    """Mark `out` as an ensemble of `count` members (written last: until then it is a single model)."""
    write_json(out / ENSEMBLE_FILE, {"format": ENSEMBLE_FORMAT, "members": count})


def write_phrase_memory(out: Path, phrases: dict[str, int]) -> None:
    """Write a classifier's phrase memory (phrase → training label id) into its run directory."""
    write_json(out / MEMORY_FILE, {"format": MEMORY_FORMAT, "phrases": phrases})
