"""A run directory loaded for use: `load()` checks every file first (`seqtext.runs.reading`), then
builds the model on its device in eval mode. What else the run holds comes with the loaded object,
read and checked the first time it is asked for and kept there: an ensemble's members and a
classifier's phrase memory. What an area builds from it to reuse across calls (the keyboard's
Completer) is kept there too, so it goes when the loaded run goes: no module-level caches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model
from tokenizers import Tokenizer

from seqtext.errors import CheckpointError
from seqtext.runs.checks import check_run_dir, problem
from seqtext.runs.reading import (
    ENSEMBLE_FILE,
    MEMORY_FILE,
    MODEL_TYPES,
    check_weights,
    ensemble_size,
    member_dir,
    model_config,
    read_header,
    read_phrase_memory,
    read_tokenizer,
    read_train_config,
)
from seqtext.runs.resume import Unfinished, unfinished
from seqtext.wordinput import spell_vocabulary


@dataclass(frozen=True)
class Loaded:
    """A ready-to-use model: eval mode, on its device, with the tokenizer it was trained with."""

    kind: str
    model: Any  # RNNLanguageModel or RNNClassifier
    tokenizer: Tokenizer
    config: Any  # LMConfig or ClassifierConfig
    path: Path
    # What an area builds from this run and reuses from call to call, by the area's key: the keyboard's
    # Completer of `seqtext.complete(loaded, ...)`, whose state cache stays warm between keystrokes.
    # Each loaded run has its own (dataclasses.replace makes a new, empty one).
    reused: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

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

    @functools.cached_property
    def unfinished(self) -> Unfinished | None:
        """Why the run is not finished (its training or the steps after it were stopped); None when it is."""
        return unfinished(self.path)

    def require(self, what: str, promise: str, present: bool) -> None:
        """Refuse, in one line with the command that finishes the run, to go on without a part that an
        unfinished run promised (`promise`: "ngram", "phrase_memory", "ensemble") but has not written yet."""
        state = self.unfinished
        if state is not None and state.promises(promise) and not present:
            raise CheckpointError(state.message(self.path, what))

    @functools.cached_property
    def members(self) -> tuple[Loaded, ...]:
        """The loaded members of an ensemble run, this run first, each checked against it; (self,) for
        any other run. Read once, on first use: classify is called chunk by chunk."""
        self.require("the ensemble", "ensemble", (self.path / ENSEMBLE_FILE).is_file())
        loaded = [self]
        for index in range(1, ensemble_size(self.path)):
            folder = member_dir(self.path, index)
            if not (folder / "config.json").is_file():
                raise CheckpointError(
                    f"{self.path / ENSEMBLE_FILE} names member {index} but {folder} holds no run; "
                    "copy the whole run directory (members/ included), or train the ensemble again"
                )
            member = load(folder, device=self.device)
            _check_member(self, member, index)
            loaded.append(member)
        return tuple(loaded)

    @functools.cached_property
    def phrase_memory(self) -> dict[str, int]:
        """A classifier run's phrase memory (--phrase-memory): phrase → training label id; empty without one."""
        if self.kind != "classifier":
            return {}
        self.require("its phrase memory", "phrase_memory", (self.path / MEMORY_FILE).is_file())
        return read_phrase_memory(self.path, self.config.num_classes)


def _check_member(first: Loaded, member: Loaded, index: int) -> None:
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


def load(path: str | Path, *, device: str | torch.device = "cpu") -> Loaded:
    """Load a run directory for inference (eval mode), every file checked first."""
    path = Path(path)
    check_run_dir(path)  # a path that cannot be looked at (a loop of links) is named as such, first
    if not (path / "config.json").exists() and (state := unfinished(path)) is not None:
        raise CheckpointError(f"{path} has no checkpoint yet ({state.why()}); {state.resume(path)}")
    header = read_header(path)
    kind = header["kind"]
    config = model_config(path, header)
    read_train_config(path)  # not needed for inference, but a damaged one means a damaged run
    check_weights(path, kind, config)
    tokenizer = read_tokenizer(path, vocab_size=config.vocab_size, level=config.level)
    model = MODEL_TYPES[kind](config)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except Exception as exc:  # changed on disk since its header was checked
        raise problem(path / "model.safetensors", f"unreadable ({str(exc).splitlines()[0]})") from exc
    try:
        spell_vocabulary(model, tokenizer)  # the character-aware input's spellings come from tokenizer.json
    except ValueError as exc:
        raise problem(path / "config.json", f'field "model.char_vocab" does not fit tokenizer.json ({exc})') from exc
    for name, tensor in model.state_dict().items():
        if not bool(torch.isfinite(tensor).all()):
            raise problem(
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
