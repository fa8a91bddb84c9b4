"""The files of a run directory, each read as untrusted input and checked: config.json (format,
kind, model config), tokenizer.json, the model's tensor header, train_config.json, metrics.jsonl,
and a classifier's ensemble.json and phrase_memory.json.

What these return is checked data; `seqtext.runs.loading` builds the ready-to-use model from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from torch import nn

from seqtext import __version__, jsonfiles
from seqtext.classifiers import RNNClassifier
from seqtext.config import ClassifierConfig, ClassifierTrainConfig, LMConfig, TrainConfig
from seqtext.errors import CheckpointError, CorpusError
from seqtext.limits import MAX_MEMBERS
from seqtext.models import RNNLanguageModel, implied_by_weights, on_meta
from seqtext.runs.checks import (
    check_run_dir,
    check_tensors,
    choice,
    config_from,
    json_file,
    module_specs,
    optional_run_file,
    problem,
    require,
    run_file,
    tensor_specs,
)
from seqtext.schema import shown
from seqtext.textfiles import size_text
from seqtext.tokenizer import SPECIAL_TOKENS, tokenizer_level

FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
CONFIG_TYPES: dict[str, type] = {"lm": LMConfig, "classifier": ClassifierConfig}
MODEL_TYPES: dict[str, type[nn.Module]] = {"lm": RNNLanguageModel, "classifier": RNNClassifier}
TRAIN_CONFIG_TYPES: dict[str, type[TrainConfig]] = {"lm": TrainConfig, "classifier": ClassifierTrainConfig}
COMMAND_FOR_KIND = {"lm": "seqtext train lm DATA", "classifier": "seqtext train classifier DATA"}
MAX_TOKENIZER_BYTES = 256 << 20  # a word vocabulary of millions of entries still fits
MAX_METRICS_BYTES = 256 << 20  # a million evaluations of a run logging its gradients
ENSEMBLE_FILE, ENSEMBLE_FORMAT = "ensemble.json", 1  # members/1/, members/2/, … beside member 0
MEMORY_FILE, MEMORY_FORMAT = "phrase_memory.json", 1  # --phrase-memory: phrase → training label id


def read_header(path: Path) -> dict[str, Any]:
    """config.json of a run, checked for completeness, format version and kind."""
    check_run_dir(path)
    missing = [name for name in REQUIRED if optional_run_file(path, name) is None]
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is not a seqtext run (missing {', '.join(missing)}). "
            f"Create one with: seqtext train lm DATA --out {path}"
        )
    header = json_file(path, "config.json")
    file = path / "config.json"
    version = header.get("format_version")
    if type(version) is not int or version < 1:
        raise problem(file, f'field "format_version" must be a positive whole number (got {shown(version)})')
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses run format {version}, newer than this seqtext {__version__} reads "
            f"(format {FORMAT_VERSION}); upgrade seqtext: pip install -U seqtext"
        )
    choice(file, header, "kind", CONFIG_TYPES)
    return header


def model_config(path: Path, header: dict[str, Any]) -> Any:
    """The model config of config.json: every field checked, and complete enough to build a model."""
    file = path / "config.json"
    config = config_from(CONFIG_TYPES[header["kind"]], header.get("model"), file, "model.")
    if config.vocab_size <= len(SPECIAL_TOKENS):
        raise problem(
            file, f'field "model.vocab_size" must be at least {len(SPECIAL_TOKENS) + 1} (got {config.vocab_size})'
        )
    if isinstance(config, LMConfig) and config.sample_by not in ("line", "stream"):
        raise problem(file, f'field "model.sample_by" must be line or stream (got {config.sample_by!r})')
    if isinstance(config, ClassifierConfig) and len(config.labels) < 2:
        raise problem(file, 'field "model.labels" must name at least two labels')
    return config


def read_tokenizer(run: Path, *, vocab_size: int | None = None, level: str | None = None) -> Tokenizer:
    """The run's tokenizer.json, checked: readable, ids 0..V-1 with the special tokens first, and (when
    given) as many tokens as the model's vocab_size, of the model's level."""
    path = optional_run_file(run, "tokenizer.json")
    if path is None:
        missing = run / "tokenizer.json"
        raise CheckpointError(f"{missing} is missing; the run directory is incomplete (train the run again)")
    try:
        jsonfiles.read_file(path, MAX_TOKENIZER_BYTES)  # strictly, before the tokenizer library reads it
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    except jsonfiles.JsonError as exc:
        raise problem(path, exc.problem) from None
    try:
        tokenizer = Tokenizer.from_str(text)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # tokenizers raises bare Exceptions, and pyo3 panics are BaseExceptions
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise problem(path, f"not a tokenizer ({reason})") from None
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise problem(path, "token ids are not 0, 1, 2, … without gaps")
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if vocab.get(token) != expected_id:
            raise problem(path, f"special token {token} must have id {expected_id} (has {vocab.get(token)})")
    if vocab_size is not None and len(vocab) != vocab_size:
        raise problem(
            path,
            f"{len(vocab):,} tokens, but the model has {vocab_size:,} (vocab_size): the run directory mixes "
            "files of two runs",
            "restore the run's own tokenizer.json, or train the run again",
        )
    found = tokenizer_level(tokenizer)
    if level is not None and found != level:
        raise problem(path, f"a {found or 'foreign'} tokenizer, but the model is {level}-level (level)")
    return tokenizer


def check_weights(path: Path, kind: str, config: Any) -> None:
    """model.safetensors holds exactly the tensors `config` describes: checked from the header, on a
    meta model, before any memory is allocated."""
    file = run_file(path, "model.safetensors")
    found = tensor_specs(file)
    if {dtype for dtype, _ in found.values()} == {"F16"}:
        # Weights stored in float16 (--fp16-weights) load into the float32 model. Only a whole file:
        # one 16-bit tensor among 32-bit ones is an edited file, refused below.
        found = {name: ("F32", shape) for name, (_, shape) in found.items()}

    def explain() -> str | None:
        implied = implied_by_weights({name: shape for name, (_, shape) in found.items()})
        for name, value in implied.items():
            fits = value if isinstance(value, tuple) else (value,)  # shapes a GRU and a CIFG share fit either
            if hasattr(config, name) and getattr(config, name) not in fits:
                return (
                    f'config.json disagrees: its field "model.{name}" is {getattr(config, name)!r} but these '
                    f"weights were trained with {' or '.join(map(repr, fits))}; restore the run's own "
                    "config.json, or train the run again"
                )
        return None

    check_tensors(file, found, module_specs(on_meta(MODEL_TYPES[kind], config)), explain=explain)


def read_train_config(run: Path) -> TrainConfig | None:
    """How a run was trained (train_config.json), every field checked; None when the run has no such file."""
    path = optional_run_file(Path(run), "train_config.json")
    if path is None:
        return None
    kind = read_header(Path(run))["kind"]
    return config_from(TRAIN_CONFIG_TYPES[kind], json_file(Path(run), "train_config.json"), path)


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The evaluations recorded so far (none when there is no metrics.jsonl); see `metric_records`."""
    return list(metric_records(run))


def metric_records(run: Path) -> Iterator[dict[str, Any]]:
    """The evaluations of metrics.jsonl one at a time, every record checked (record_problem); a damaged
    line is an error naming it. The file holds MAX_METRICS_BYTES at most, each line within the stream
    bound (seqtext.textfiles), and is read a line at a time."""
    path = optional_run_file(Path(run), "metrics.jsonl")
    if path is None:
        return
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise CheckpointError(
                f"{path} is larger than {size_text(MAX_METRICS_BYTES)}, more than a run records; "
                "it was replaced or damaged: restore it, or delete it"
            )
        with path.open("rb") as f:
            for number, record in jsonfiles.json_lines(f, str(path), nonfinite=True):
                if why := record_problem(record):
                    raise CheckpointError(f"{path}, line {number}: {why}; delete that line")
                if record:
                    yield record
    except CheckpointError:  # an OSError too
        raise
    except jsonfiles.JsonError as exc:
        raise CheckpointError(f"{path}, line {exc.line}: {exc.problem}; delete that line") from None
    except CorpusError as exc:  # a line over the stream bound
        raise CheckpointError(f"{exc}; delete that line") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None


def record_problem(record: Any) -> str | None:
    """What is wrong with one metrics.jsonl record, None when nothing: an object whose "step" is a whole
    number ≥ 0, and every other value a number (NaN and ±inf record a diverged loss) or, for a curve
    (grad_tt), a list of numbers."""
    if not isinstance(record, dict):
        return f"not a JSON object (a JSON {type(record).__name__})"
    if record and (type(step := record.get("step")) is not int or step < 0):
        return f'its "step" is {shown(step)}, not a whole number'
    for key, value in record.items():
        numbers = value if isinstance(value, list) else [value]
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            kind = "a list of numbers" if isinstance(value, list) else "a number"
            return f"its {json.dumps(key)} is {shown(value)}, not {kind}"
    return None


def member_dir(run: Path, index: int) -> Path:
    """Where member `index` of an ensemble lives: the run directory itself for member 0, else members/INDEX."""
    return run if index == 0 else run / "members" / str(index)


def ensemble_size(run: Path) -> int:
    """Members of a run directory: 1 without ensemble.json, else its checked "members" field."""
    file = run / ENSEMBLE_FILE
    if optional_run_file(run, ENSEMBLE_FILE) is None:
        return 1
    data = json_file(run, ENSEMBLE_FILE)
    version = require(file, data, "format", int, "a whole number")
    if version != ENSEMBLE_FORMAT:
        raise problem(file, f'field "format" is {version}; this seqtext reads ensemble format {ENSEMBLE_FORMAT}')
    count = require(file, data, "members", int, "a whole number")
    if not 2 <= count <= MAX_MEMBERS:
        raise problem(file, f'field "members" must be between 2 and {MAX_MEMBERS} (got {count})')
    return count


def read_phrase_memory(run: Path, num_classes: int) -> dict[str, int]:
    """The run's phrase memory (phrase → training label id), every entry checked; empty when it has none."""
    file = run / MEMORY_FILE
    if optional_run_file(run, MEMORY_FILE) is None:
        return {}
    data = json_file(run, MEMORY_FILE)
    if require(file, data, "format", int, "a whole number") != MEMORY_FORMAT:
        raise problem(file, f'field "format" must be {MEMORY_FORMAT}')
    phrases = require(file, data, "phrases", dict, "an object of phrase: label id")
    for text, label in phrases.items():
        if type(label) is not int or not 0 <= label < num_classes:
            raise problem(file, f"phrase {text[:40]!r} has label {label!r}, not a label id of this run")
    return phrases
