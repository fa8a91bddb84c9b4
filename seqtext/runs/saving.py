"""Writing a run directory: safetensors + JSON + tokenizer.json, never pickle.

Every file is written to a temporary name and renamed into place (`seqtext.files.replacing`), so a
crash while saving leaves the previous file intact. Training writes through these functions; what
they write is read back, checked, by `seqtext.runs.reading`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file, save_model
from tokenizers import Tokenizer
from torch import nn

from seqtext import __version__
from seqtext.config import TrainConfig, to_dict, write_json
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


def save(out_dir: Path, model: nn.Module, tokenizer: Tokenizer, train_config: TrainConfig) -> None:
    """Write a complete checkpoint; config.json goes last, so its presence marks completeness."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with replacing(out_dir / "model.safetensors") as tmp:
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
    with replacing(out_dir / "model.safetensors") as tmp:
        save_model(half, str(tmp))  # save_model: tied weights are shared tensors


def save_tensors(out_dir: Path, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a further safetensors file into a run (the keyboard's n-gram), with its JSON header as metadata."""
    with replacing(out_dir / name) as tmp:
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
    with replacing(out_dir / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))


def append_metrics(out_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per evaluation."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def truncate_metrics(run: Path, last_step: int) -> None:
    """Drop evaluations after `last_step` (written after the resume point, so they will be redone)."""
    kept = [r for r in read_metrics(run) if r.get("step", 0) <= last_step]
    with replacing(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")


def write_ensemble(out: Path, count: int) -> None:
    """Mark `out` as an ensemble of `count` members (written last: until then it is a single model)."""
    write_json(out / ENSEMBLE_FILE, {"format": ENSEMBLE_FORMAT, "members": count})


def write_phrase_memory(out: Path, phrases: dict[str, int]) -> None:
    """Write a classifier's phrase memory (phrase → training label id) into its run directory."""
    write_json(out / MEMORY_FILE, {"format": MEMORY_FORMAT, "phrases": phrases})
