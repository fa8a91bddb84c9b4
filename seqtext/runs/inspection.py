"""A run directory at a glance (`seqtext inspect`): the model it holds, how it was trained, how far
training got and when its best figures came, and the files it is made of."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seqtext.config import to_dict
from seqtext.models import count_parameters, parameter_groups
from seqtext.runs.loading import load
from seqtext.runs.reading import read_header, read_metrics, read_train_config

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
    resumable: bool  # trainer_state.json is there: interrupted (or still training), `--resume` continues it
    files: dict[str, int]  # name → size in bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _evaluation(record: dict[str, Any]) -> dict[str, Any]:
    when = {k: record.get(k) for k in ("step", "epoch", "seconds")}
    figures = {k: v for k, v in record.items() if k.startswith("val_") or k == "train_loss"}
    return {**when, "figures": figures}


def best_evaluation(kind: str, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluation that picked the kept checkpoint: the first with the best monitored figure."""
    name, mode = MONITOR[kind]
    scored = [r for r in records if isinstance(r.get(name), int | float) and r[name] == r[name]]  # not NaN
    if not scored:
        return None
    pick = min(scored, key=lambda r: r[name]) if mode == "min" else max(scored, key=lambda r: r[name])
    return {"metric": name, "mode": mode, **_evaluation(pick)}


def inspect_run(path: str | Path) -> RunSummary:
    """Summarise a run directory; damaged or foreign directories raise the errors `load` raises."""
    path = Path(path)
    header = read_header(path)
    loaded = load(path)
    recipe = read_train_config(path)
    records = read_metrics(path)
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
        evaluations=len(records),
        last=_evaluation(records[-1]) if records else None,
        best=best_evaluation(loaded.kind, records),
        resumable=(path / "trainer_state.json").is_file(),
        files={f.name: f.stat().st_size for f in sorted(path.iterdir()) if f.is_file()},
    )
