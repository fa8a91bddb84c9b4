"""Save and load run directories: safetensors + JSON + tokenizer.json, never pickle.

The only module that reads or writes files inside a run directory. Every file is written to a
temporary name and renamed into place, so a crash while saving leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from tokenizers import Tokenizer
from torch import nn

from seqtext import __version__
from seqtext.config import (
    ClassifierConfig,
    ClassifierTrainConfig,
    LMConfig,
    TrainConfig,
    from_dict,
    read_json,
    to_dict,
    write_json,
)
from seqtext.errors import CheckpointError, ConfigError
from seqtext.models import RNNClassifier, RNNLanguageModel

FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
RESUME_FILES = ("optimizer.safetensors", "trainer_state.json")
CONFIG_TYPES: dict[str, type] = {"lm": LMConfig, "classifier": ClassifierConfig}
MODEL_TYPES: dict[str, type[nn.Module]] = {"lm": RNNLanguageModel, "classifier": RNNClassifier}
TRAIN_CONFIG_TYPES: dict[str, type[TrainConfig]] = {"lm": TrainConfig, "classifier": ClassifierTrainConfig}
COMMAND_FOR_KIND = {"lm": "seqtext train lm DATA", "classifier": "seqtext train classifier DATA"}


@dataclass(frozen=True)
class Loaded:
    """A ready-to-use model: eval mode, on its device, with the tokenizer it was trained with."""

    kind: str
    model: Any  # RNNLanguageModel or RNNClassifier
    tokenizer: Tokenizer
    config: Any  # LMConfig or ClassifierConfig
    path: Path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it atomically replaces target."""
    tmp = target.with_name(target.name + ".tmp")
    yield tmp
    os.replace(tmp, target)


def save(out_dir: Path, model: nn.Module, tokenizer: Tokenizer, train_config: TrainConfig) -> None:
    """Write a complete checkpoint; config.json goes last, so its presence marks completeness."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _replacing(out_dir / "model.safetensors") as tmp:
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


def save_tokenizer(out_dir: Path, tokenizer: Tokenizer) -> None:
    """Write tokenizer.json (Hugging Face format)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _replacing(out_dir / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))


def append_metrics(out_dir: Path, record: dict[str, Any]) -> None:
    """One JSON line per evaluation."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The evaluations recorded so far (none when there is no metrics.jsonl); a damaged line is an error naming it."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable ({exc})") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line) if line.strip() else {}
            problem = "" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
        except json.JSONDecodeError as exc:
            problem = f"{exc.msg} at column {exc.colno}"
        if problem:
            raise CheckpointError(f"{path}, line {number}: not a JSON object ({problem}); delete that line")
        records += [record] if record else []
    return records


def truncate_metrics(run: Path, last_step: int) -> None:
    """Drop evaluations after `last_step` (written after the resume point, so they will be redone)."""
    kept = [r for r in read_metrics(run) if r.get("step", 0) <= last_step]
    with _replacing(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")


def save_resume_state(
    out_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> None:
    """Everything --resume needs: latest weights, optimizer moments, carried RNN state, counters, RNG."""
    opt = optimizer.state_dict()
    flat = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            flat[f"optimizer.{index}.{name}"] = torch.as_tensor(value).clone().contiguous()
    flat.update({f"extra.{k}": v.detach().clone().contiguous() for k, v in tensors.items()})
    with _replacing(out_dir / "optimizer.safetensors") as tmp:
        save_file({k: v.cpu() for k, v in flat.items()}, str(tmp))
    write_json(out_dir / "trainer_state.json", {**state, "param_groups": opt["param_groups"]})


def load_resume_state(
    run: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore what save_resume_state wrote; returns the counters and the extra tensors."""
    if not all((run / name).is_file() for name in RESUME_FILES):
        raise CheckpointError(
            f"{run} has nothing to resume (no {' or '.join(RESUME_FILES)}): the run finished "
            "or never started. Start a new run with another --out."
        )
    state = read_json(run / "trainer_state.json")
    try:
        flat = load_file(str(run / "optimizer.safetensors"), device=str(device))
    except SafetensorError as exc:
        raise CheckpointError(f"{run}/optimizer.safetensors is damaged ({exc}); the run cannot resume") from exc
    model.load_state_dict({k[6:]: v for k, v in flat.items() if k.startswith("model.")})
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": slots, "param_groups": state.pop("param_groups")})
    return state, {k[6:]: v for k, v in flat.items() if k.startswith("extra.")}


def clear_resume_state(run: Path) -> None:
    """A finished run cannot be resumed; its directory keeps only the artifact."""
    for name in RESUME_FILES:
        (run / name).unlink(missing_ok=True)


def read_header(path: Path) -> dict[str, Any]:
    """config.json of a run, checked for completeness and format version."""
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is not a seqtext run (missing {', '.join(missing)}). "
            f"Create one with: seqtext train lm DATA --out {path}"
        )
    try:
        header = read_json(path / "config.json")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses run format {version}, newer than this seqtext {__version__} reads "
            f"(format {FORMAT_VERSION}); upgrade seqtext: pip install -U seqtext"
        )
    if header.get("kind") not in CONFIG_TYPES:
        raise CheckpointError(f"{path}/config.json has unknown kind {header.get('kind')!r}")
    return header


def read_train_config(run: Path) -> TrainConfig | None:
    """How a run was trained (train_config.json), or None when the run has no such file."""
    path = Path(run) / "train_config.json"
    if not path.is_file():
        return None
    try:
        return from_dict(TRAIN_CONFIG_TYPES[read_header(Path(run))["kind"]], read_json(path))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_tokenizer(run: Path) -> Tokenizer:
    """The tokenizer saved in a run directory."""
    try:
        return Tokenizer.from_file(str(run / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise CheckpointError(f"{run}/tokenizer.json is missing or damaged ({exc})") from exc


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Loaded:
    """Load a run directory for inference (eval mode)."""
    path = Path(path)
    header = read_header(path)
    kind = header["kind"]
    try:
        config = from_dict(CONFIG_TYPES[kind], header["model"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}/config.json: {exc}") from exc
    model = MODEL_TYPES[kind](config)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except Exception as exc:  # safetensors, torch and tokenizers each raise their own types
        raise CheckpointError(f"{path} is damaged ({str(exc).splitlines()[0]}); retrain it") from exc
    tokenizer = load_tokenizer(path)
    if tokenizer.get_vocab_size() != config.vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.get_vocab_size()} tokens but the model expects "
            f"{config.vocab_size}; the run directory mixes files of two runs"
        )
    return Loaded(kind, model.to(device).eval(), tokenizer, config, path)


def as_loaded(source: Loaded | str | Path, kind: str, action: str) -> Loaded:
    """Accept a loaded model or a run path; refuse a run of the wrong kind."""
    loaded = source if isinstance(source, Loaded) else load(source)
    if loaded.kind != kind:
        wanted = "a language model" if kind == "lm" else "a classifier"
        raise CheckpointError(
            f"{loaded.path} is a {'language model' if loaded.kind == 'lm' else 'classifier'} run; "
            f"'{action}' needs {wanted}"
        )
    return loaded
