"""A run directory at a glance (`seqtext inspect`): the model it holds, how it was trained, how far
training got and when its best figures came, and the files it is made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seqtext.config import to_dict
from seqtext.models import count_parameters, parameter_groups
from seqtext.runs.loading import load
from seqtext.runs.reading import metric_records, read_header, read_train_config

# The validation figure that picked the kept checkpoint: the tasks' `monitor` (a test holds them equal).
MONITOR = {"lm": ("val_loss", "min"), "classifier": ("val_accuracy", "max")}
SAMPLE = 40  # vocabulary entries shown: the most frequent words, or the first characters in sorted order


@dataclass(frozen=True)
class RunSummary:
    """What `seqtext inspect` shows; `to_dict()` is its --json form."""

    path: str
    kind: str  # "lm" or "classifier"
    seqtext_version: str
    format_version: int
    model: dict[str, Any]  # the LMConfig or ClassifierConfig fields
    parameters: int
    parameters_per_layer: dict[str, int]  # embed, rnn.l0, …, head (a tied matrix counts once)
    vocab_size: int
    vocab_sample: list[str]
    recipe: dict[str, Any] | None  # train_config.json; None for a run without one
    evaluations: int
    last: dict[str, Any] | None  # step, epoch, seconds and figures of the last evaluation
    best: dict[str, Any] | None  # the same for the evaluation whose checkpoint was kept, and its metric
    resumable: bool  # trainer_state.json is there: unfinished (or still training), `--resume` continues it
    unfinished: str | None  # why the run is not finished, and the command that finishes it; None when finished
    files: dict[str, int]  # name → size in bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _evaluation(record: dict[str, Any]) -> dict[str, Any]:
    when = {k: record.get(k) for k in ("step", "epoch", "seconds")}
    figures = {k: v for k, v in record.items() if k.startswith("val_") or k == "train_loss"}
    return {**when, "figures": figures}


class _Evaluations:
    """How many evaluations a run recorded, its last and its best, read in one pass over its records
    (metrics.jsonl is read a line at a time, never held whole)."""

    def __init__(self, kind: str, records: Iterable[dict[str, Any]]) -> None:
        name, mode = MONITOR[kind]
        self.count, last, pick = 0, None, None
        for record in records:
            self.count, last = self.count + 1, record
            value = record.get(name)
            if not isinstance(value, int | float) or value != value:  # not recorded, or NaN
                continue
            if pick is None or (value < pick[name] if mode == "min" else value > pick[name]):
                pick = record
        self.last = None if last is None else _evaluation(last)
        self.best = None if pick is None else {"metric": name, "mode": mode, **_evaluation(pick)}


def inspect_run(path: str | Path) -> RunSummary:
    """Summarise a run directory; damaged or foreign directories raise the errors `load` raises."""
    path = Path(path)
    loaded = load(path)
    header = read_header(path)
    state = loaded.unfinished
    recipe = read_train_config(path)
    evaluations = _Evaluations(loaded.kind, metric_records(path))
    vocab = loaded.tokenizer.get_vocab_size()
    return RunSummary(
        path=str(path),
        kind=loaded.kind,
        seqtext_version=str(header.get("seqtext_version")),
        format_version=header["format_version"],
        model=to_dict(loaded.config),
        parameters=count_parameters(loaded.model),
        parameters_per_layer={
            name: sum(p.numel() for p in group) for name, group in parameter_groups(loaded.model).items()
        },
        vocab_size=vocab,
        vocab_sample=[loaded.tokenizer.id_to_token(i) for i in range(4, min(vocab, 4 + SAMPLE))],
        recipe=None if recipe is None else to_dict(recipe),
        evaluations=evaluations.count,
        last=evaluations.last,
        best=evaluations.best,
        resumable=state is not None and not state.promises("ensemble"),
        unfinished=None if state is None else f"{state.why()}; {state.resume(path)}",
        files={f.name: f.stat().st_size for f in sorted(path.iterdir()) if f.is_file()},
    )
