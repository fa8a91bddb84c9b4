"""Ensembles of classifiers in one run directory, and reading them back.

An ensemble run is member 0's complete run directory (config.json, model.safetensors, tokenizer.json)
plus `members/1/`, `members/2/`, … (each a complete run directory of its own) and `ensemble.json`,
written last, which says how many members there are. Every member is trained on the same training
phrases with the same tokenizer and validation split, from another seed, so `classify` and
`evaluate` tokenize once and average the members' probabilities. Without ensemble.json a run
directory is a single model, read as it always was.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from seqtext.config import MAX_MEMBERS, write_json
from seqtext.errors import CheckpointError
from seqtext.runs import checkpoint, runfiles
from seqtext.runs.checkpoint import Loaded

ENSEMBLE_FILE = "ensemble.json"
FORMAT = 1
# Loaded members by the model of the run that names them: classify is called chunk by chunk, and
# the members are read and checked once per loaded run, not once per chunk.
_MEMBERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def member_dir(out: Path, index: int) -> Path:
    """Where member `index` lives: the run directory itself for member 0, else members/INDEX."""
    return out if index == 0 else out / "members" / str(index)


def write_ensemble(out: Path, count: int) -> None:
    """Mark `out` as an ensemble of `count` members (written last: until then it is a single model)."""
    write_json(out / ENSEMBLE_FILE, {"format": FORMAT, "members": count})


def ensemble_size(run: Path) -> int:
    """Members of a run directory: 1 without ensemble.json, else its checked "members" field."""
    file = run / ENSEMBLE_FILE
    if not file.is_file():
        return 1
    data = runfiles.json_file(run, ENSEMBLE_FILE)
    version = runfiles.require(file, data, "format", int, "a whole number")
    if version != FORMAT:
        raise runfiles.problem(file, f'field "format" is {version}; this seqtext reads ensemble format {FORMAT}')
    count = runfiles.require(file, data, "members", int, "a whole number")
    if not 2 <= count <= MAX_MEMBERS:
        raise runfiles.problem(file, f'field "members" must be between 2 and {MAX_MEMBERS} (got {count})')
    return count


def members(clf: Loaded) -> tuple[Loaded, ...]:
    """The loaded members of a classifier run (the run itself first), each checked against member 0."""
    cached = _MEMBERS.get(clf.model)
    if cached is not None:
        return cached
    loaded = [clf]
    for index in range(1, ensemble_size(clf.path)):
        folder = member_dir(clf.path, index)
        if not (folder / "config.json").is_file():
            raise CheckpointError(
                f"{clf.path / ENSEMBLE_FILE} names member {index} but {folder} holds no run; "
                "copy the whole run directory (members/ included), or train the ensemble again"
            )
        member = checkpoint.load(folder, device=clf.device)
        check_member(clf, member, index)
        loaded.append(member)
    result = tuple(loaded)
    _MEMBERS[clf.model] = result
    return result


def check_member(first: Loaded, member: Loaded, index: int) -> None:
    """A member must read texts as member 0 does and answer with the same labels."""
    where = f"{member.path} (member {index} of the ensemble in {first.path})"
    if member.kind != "classifier":
        raise CheckpointError(f"{where} is a language-model run; every member of an ensemble is a classifier")
    if tuple(member.config.labels) != tuple(first.config.labels):
        raise CheckpointError(
            f"{where} predicts the labels {', '.join(member.config.labels)}, not {', '.join(first.config.labels)}; "
            "every member needs the same label set: train the ensemble again"
        )
    same_reading = all(
        getattr(member.config, name) == getattr(first.config, name) for name in ("level", "lowercase", "vocab_size")
    )
    if not same_reading or member.tokenizer.to_str() != first.tokenizer.to_str():
        raise CheckpointError(
            f"{where} has another tokenizer or vocabulary than member 0; the members of an ensemble read "
            "texts with one tokenizer: train the ensemble again"
        )
