"""Save and load run directories: safetensors + JSON + tokenizer.json, never pickle.

The only module that writes files inside a run directory. Every file is written to a temporary name
and renamed into place (`seqtext.files.replacing`), so a crash while saving leaves the previous file
intact. Everything read back is untrusted and checked by `seqtext.runs.runfiles` before it is used.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_file, save_model
from tokenizers import Tokenizer
from torch import nn

from seqtext import __version__
from seqtext.config import (
    ClassifierConfig,
    ClassifierTrainConfig,
    LMConfig,
    TrainConfig,
    to_dict,
    write_json,
)
from seqtext.errors import CheckpointError
from seqtext.files import replacing
from seqtext.models import RNNClassifier, RNNLanguageModel, implied_by_weights, on_meta
from seqtext.runs import runfiles
from seqtext.schema import shown
from seqtext.tokenizer import SPECIAL_TOKENS

FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
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

    def check_finite(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores this model computed, refused when they overflowed (finite but extreme weights)."""
        if not bool(torch.isfinite(scores).all()):
            raise CheckpointError(
                f"{self.path}: the model's scores overflowed (weights too large); train the run again"
            )
        return scores


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


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The evaluations recorded so far (none when there is no metrics.jsonl); a damaged line is an error naming it."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        lines = runfiles.run_file(Path(run), "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable ({exc})") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            why = "" if isinstance(record, dict) else f"a JSON {type(record).__name__}"
        except json.JSONDecodeError as exc:
            why = f"{exc.msg} at column {exc.colno}"
        except RecursionError:
            why = "nested too deeply"
        if not why and (type(step := record.get("step", 0)) is not int or step < 0):
            why = f'its "step" is {shown(step)}, not a whole number'
        if why:
            raise CheckpointError(f"{path}, line {number}: not a JSON object ({why}); delete that line")
        records += [record] if record else []
    return records


def truncate_metrics(run: Path, last_step: int) -> None:
    """Drop evaluations after `last_step` (written after the resume point, so they will be redone)."""
    kept = [r for r in read_metrics(run) if r.get("step", 0) <= last_step]
    with replacing(run / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), encoding="utf-8")


def read_header(path: Path) -> dict[str, Any]:
    """config.json of a run, checked for completeness, format version and kind."""
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is not a seqtext run (missing {', '.join(missing)}). "
            f"Create one with: seqtext train lm DATA --out {path}"
        )
    header = runfiles.json_file(path, "config.json")
    file = path / "config.json"
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        raise runfiles.problem(file, f'field "format_version" must be a positive whole number (got {shown(version)})')
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses run format {version}, newer than this seqtext {__version__} reads "
            f"(format {FORMAT_VERSION}); upgrade seqtext: pip install -U seqtext"
        )
    runfiles.choice(file, header, "kind", CONFIG_TYPES)
    return header


def model_config(path: Path, header: dict[str, Any]) -> Any:
    """The model config of config.json: every field checked, and complete enough to build a model."""
    file = path / "config.json"
    config = runfiles.config_from(CONFIG_TYPES[header["kind"]], header.get("model"), file, "model.")
    if config.vocab_size <= len(SPECIAL_TOKENS):
        raise runfiles.problem(
            file, f'field "model.vocab_size" must be at least {len(SPECIAL_TOKENS) + 1} (got {config.vocab_size})'
        )
    if isinstance(config, LMConfig) and config.sample_by not in ("line", "stream"):
        raise runfiles.problem(file, f'field "model.sample_by" must be line or stream (got {config.sample_by!r})')
    if isinstance(config, ClassifierConfig) and len(config.labels) < 2:
        raise runfiles.problem(file, 'field "model.labels" must name at least two labels')
    return config


def load_tokenizer(run: Path, *, vocab_size: int | None = None, level: str | None = None) -> Tokenizer:
    """The tokenizer saved in a run directory, checked (and against the model's vocab_size and level)."""
    path = run / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory is incomplete (train the run again)")
    return runfiles.read_tokenizer(runfiles.run_file(run, "tokenizer.json"), vocab_size=vocab_size, level=level)


def check_weights(path: Path, kind: str, config: Any) -> None:
    """model.safetensors holds exactly the tensors `config` describes: checked from the header, on a
    meta model, before any memory is allocated."""
    file = runfiles.run_file(path, "model.safetensors")
    found = runfiles.tensor_specs(file)
    if {dtype for dtype, _ in found.values()} == {"F16"}:
        # Weights stored in float16 (--fp16-weights) load into the float32 model. Only a whole file:
        # one 16-bit tensor among 32-bit ones is an edited file, refused below.
        found = {name: ("F32", shape) for name, (_, shape) in found.items()}

    def explain() -> str | None:
        implied = implied_by_weights({name: shape for name, (_, shape) in found.items()})
        for name, value in implied.items():
            if hasattr(config, name) and getattr(config, name) != value:
                return (
                    f'config.json disagrees: its field "model.{name}" is {getattr(config, name)!r} but these '
                    f"weights were trained with {value!r}; restore the run's own config.json, or train the run again"
                )
        return None

    runfiles.check_tensors(file, found, runfiles.module_specs(on_meta(MODEL_TYPES[kind], config)), explain=explain)


def read_train_config(run: Path) -> TrainConfig | None:
    """How a run was trained (train_config.json), every field checked; None when the run has no such file."""
    path = Path(run) / "train_config.json"
    if not path.is_file():
        return None
    kind = read_header(Path(run))["kind"]
    return runfiles.config_from(TRAIN_CONFIG_TYPES[kind], runfiles.json_file(Path(run), "train_config.json"), path)


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Loaded:
    """Load a run directory for inference (eval mode), every file checked first."""
    path = Path(path)
    header = read_header(path)
    kind = header["kind"]
    config = model_config(path, header)
    read_train_config(path)  # not needed for inference, but a damaged one means a damaged run
    check_weights(path, kind, config)
    tokenizer = load_tokenizer(path, vocab_size=config.vocab_size, level=config.level)
    model = MODEL_TYPES[kind](config)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except Exception as exc:  # changed on disk since its header was checked
        raise runfiles.problem(path / "model.safetensors", f"unreadable ({str(exc).splitlines()[0]})") from exc
    for name, tensor in model.state_dict().items():
        if not bool(torch.isfinite(tensor).all()):
            raise runfiles.problem(
                path / "model.safetensors",
                f"tensor {name!r} holds NaN or infinite values",
                "the run diverged or the file is damaged: train the run again",
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
