"""Run directories before training: never overwrite a run, and resume with the options it started with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from seqtext import checkpoint
from seqtext.config import TrainConfig, from_dict, read_json
from seqtext.errors import ConfigError


def check_out_dir(out: Path, resume: bool, model_config: Any, train_config: TrainConfig) -> None:
    """Never overwrite a finished run; on --resume, insist on the options the run started with."""
    if not resume:
        if (out / "config.json").exists() or (out / "trainer_state.json").exists():
            raise ConfigError(
                f"{out} already holds a run; choose another --out, delete it, or pass --resume "
                "to continue an interrupted run"
            )
        return
    saved_model, saved_train = saved_configs(out)
    ignore = {"vocab_size", "sample_by"}
    for name, saved, given in [
        *_differences(saved_model, model_config, ignore),
        *_differences(saved_train, train_config),
    ]:
        raise ConfigError(
            f"--{name.replace('_', '-')} is {given!r} but the run in {out} was started with {saved!r}; "
            "--resume continues with the original options"
        )


def _differences(saved: Any, given: Any, ignore: set[str] | None = None) -> Iterator[tuple[str, Any, Any]]:
    for f in fields(saved):
        if f.name not in (ignore or set()) and getattr(saved, f.name) != getattr(given, f.name):
            yield f.name, getattr(saved, f.name), getattr(given, f.name)


def saved_configs(out: Path) -> tuple[Any, TrainConfig]:
    """The model and training configs an interrupted run was started with (what --resume continues)."""
    if not (out / "trainer_state.json").is_file():
        raise checkpoint.CheckpointError(
            f"{out} has nothing to resume (no trainer_state.json): the run finished or never saved a step. "
            "Start a new run with another --out."
        )
    state = read_json(out / "trainer_state.json")
    model_config = from_dict(checkpoint.CONFIG_TYPES[state["kind"]], state["model_config"])
    return model_config, from_dict(checkpoint.TRAIN_CONFIG_TYPES[state["kind"]], state["train_config"])
