"""Typed fields of dataclasses, checked: what every config and every file-backed record shares.

`check_types` holds each field to its annotation (a bool is no int, a string no number, floats
finite), `check_range` to its bounds, and `from_dict` builds a dataclass from untrusted JSON. Errors
are ConfigErrors that name the field, so the CLI can speak in flags (`--hidden-dim must be ...`) and
a loader in files and fields (`config.json: field "model.hidden_dim" must be ...`). Stdlib only.
"""

from __future__ import annotations

import functools
import json
import math
import types
import typing
from dataclasses import fields
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from seqtext.errors import ConfigError
from seqtext.textfiles import unicode_problem

MAX_INT = 2**63 - 1

T = TypeVar("T")


def field_error(name: str, problem: str) -> ConfigError:
    """A ConfigError about one field, worded for the CLI (`--hidden-dim must be ...`)."""
    return ConfigError(f"--{name.replace('_', '-')} {problem}", field=name, problem=problem)


def shown(value: Any) -> str:
    """A value as an error message shows it: short, strings quoted, JSON words for JSON values."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_finite(flag: str, value: float) -> float:
    """A float option that must be a real number: NaN and ±inf are refused (they break arithmetic later)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{flag} must be a number (got {shown(value)})")
    if not math.isfinite(value):
        raise ConfigError(f"{flag} must be a finite number (got {value})")
    return float(value)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed(value: Any, hint: Any, finite: bool) -> Any:
    """`value` as `hint` (int → float for a float, list → tuple), or a ConfigError problem string."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ValueError(f"must be one of {', '.join(args)} (got {shown(value)})")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false (got {shown(value)})")
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be a whole number (got {shown(value)})")
        if abs(value) > MAX_INT:  # Python's integers have no end; every count and size here fits in 64 bits
            raise ValueError(f"is out of range (got a number of {len(str(abs(value))):,} digits)")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number (got {shown(value)})")
        if math.isnan(value) or (finite and math.isinf(value)):
            raise ValueError(f"must be a finite number (got {value})")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string (got {shown(value)})")
        if problem := unicode_problem(value):  # it would be written to a file that could not be read back
            raise ValueError(f"is {problem}")
        return value
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(_typed(item, args[0], finite) for item in value)
    if origin is dict and isinstance(value, dict):
        return {_typed(k, args[0], finite): _typed(v, args[1], finite) for k, v in value.items()}
    raise ValueError(f"must be a {getattr(origin, '__name__', hint)} (got {shown(value)})")


def check_types(config: Any) -> None:
    """Every field of a dataclass holds its annotated type (bool ≠ int, no NaN, no inf unless allowed).

    Converts where JSON cannot say the difference (an int for a float, a list for a tuple). A class
    may allow ±inf in some float fields with `MAY_BE_INFINITE` (a "no best score yet" counter).
    """
    infinite = getattr(type(config), "MAY_BE_INFINITE", frozenset())
    for f in fields(config):
        value = getattr(config, f.name)
        try:
            typed = _typed(value, _hints(type(config))[f.name], finite=f.name not in infinite)
        except ValueError as exc:
            raise field_error(f.name, str(exc)) from None
        if typed is not value:
            object.__setattr__(config, f.name, typed)  # frozen dataclasses too


def check_range(name: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """low <= value <= high, or a ConfigError naming the field and the allowed range."""
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if high is None:
        problem = "cannot be negative" if low == 0 else f"must be at least {low:,}"
    else:
        problem = f"must be between {low:,} and {high:,}"
    raise field_error(name, f"{problem} (got {value})")


def from_dict(cls: type[T], data: Any, *, complete: bool = False) -> T:
    """Dict → dataclass, every field checked; unknown keys (typos, newer formats) are refused.

    complete=True (a file seqtext wrote) also refuses a missing key, except those the class names in
    `OPTIONAL_IN_FILES` (fields added later, which files written before them lack).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object (got {shown(data)})")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)}",
            field=unknown[0],
            problem="is not a known field (a typo, or a file from a newer seqtext)",
        )
    config = cls(**data)  # the values that are there, checked first: a wrong one is the likelier fault
    missing = sorted(known - set(data) - getattr(cls, "OPTIONAL_IN_FILES", frozenset())) if complete else []
    if missing:
        raise ConfigError(f"{cls.__name__} lacks field(s) {', '.join(missing)}", field=missing[0], problem="is missing")
    check_types(config)  # again for classes without a __post_init__ of their own (cheap, idempotent)
    return config
