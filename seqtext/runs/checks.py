"""How every file of a run directory is read as untrusted input: checked before anything is built.

A run directory may be edited, truncated, swapped from another run or written by hand. These
readers turn each problem into one CheckpointError line that names the file, the field and the fix.
Sizes are checked before anything is allocated: the header of a safetensors file (read without its
tensors) must match the tensors the configuration describes, so an edited `vocab_size` cannot make
a loader allocate gigabytes, and non-finite weights are refused as they are loaded.

Every reader of a run file goes through these helpers (`seqtext.runs.reading` for the files every
run has, the keyboard's n-gram table, the resume state): `json_file` and `config_from` for JSON,
`tensor_specs` / `check_tensors` / `load_tensors` for safetensors, and `problem` for a message in
the same words.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from seqtext.config import read_json
from seqtext.errors import CheckpointError, ConfigError
from seqtext.schema import from_dict, shown

T = TypeVar("T")
FIX = "restore it from a copy of the run, or train the run again"
Spec = tuple[str, tuple[int, ...]]  # safetensors dtype ("F32") and shape
DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def problem(file: Path, what: str, fix: str = FIX) -> CheckpointError:
    """'FILE: WHAT; FIX' — the one line every check of a run file ends in."""
    return CheckpointError(f"{file}: {what}; {fix}")


def run_file(run: Path, name: str) -> Path:
    """The path of `name` in a run directory, which must be a regular file (not a directory or device)."""
    path = run / name
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise problem(path, "a symbolic link to nothing") from None
        raise CheckpointError(f"{path} is missing; {FIX}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a pipe, a socket or a device"
        raise problem(path, f"{what}, not a regular file")
    return path


def optional_run_file(run: Path, name: str) -> Path | None:
    """The path of `name` in a run directory when anything is there, None only when nothing is.

    What is there must be a regular file (run_file): a pipe, a device, a directory or a broken link
    is an error, never taken for a missing file, so a run is never read without a part it has.
    """
    try:
        os.lstat(run / name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a symbolic-link loop in the run's path, a permission denied
        raise CheckpointError(f"{run / name}: cannot be read ({exc.strerror})") from None
    return run_file(run, name)


def check_run_dir(run: Path) -> None:
    """A run path that cannot even be looked at (a loop of symbolic links, a name too long, no
    permission) is one line; nothing there, or a file, is left to the callers' own words."""
    try:
        os.stat(run)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise CheckpointError(f"{run}: cannot use this run path ({exc.strerror}); check it") from None


def json_file(run: Path, name: str, *, nonfinite: bool = False) -> dict[str, Any]:
    """A JSON object from a run directory (of a sane size); `nonfinite`: ±Infinity and NaN read as numbers."""
    path = run_file(run, name)
    try:
        return read_json(path, nonfinite=nonfinite)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None


def config_from(cls: type[T], data: Any, file: Path, prefix: str = "") -> T:
    """A config dataclass from a file's JSON, every field checked; errors name the file and the field.

    `prefix` is where the fields sit in the file ("model." for config.json's "model" object).
    """
    try:
        return from_dict(cls, data, complete=True)
    except ConfigError as exc:
        if exc.field is None:
            raise problem(file, f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None
        name = json.dumps(prefix + exc.field)  # quoted, with any control characters escaped
        raise problem(file, f"field {name} {exc.problem}") from None


def require(file: Path, data: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """data[key], which must exist and be of `kind` (a bool is never an int): else a clear error."""
    if key not in data:
        raise problem(file, f'field "{key}" is missing')
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise problem(file, f'field "{key}" must be {what} (got {shown(value)})')
    return value


def choice(file: Path, data: dict[str, Any], key: str, choices: Iterable[str]) -> str:
    """data[key], which must be one of `choices`."""
    value, allowed = data.get(key), list(choices)
    if not isinstance(value, str) or value not in allowed:
        raise problem(file, f'field "{key}" must be one of {", ".join(allowed)} (got {shown(value)})')
    return value


def tensor_specs(path: Path) -> dict[str, Spec]:
    """Name → (dtype, shape) of every tensor in a safetensors file, read from its header alone."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}  # noqa: SIM118
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    except Exception as exc:  # SafetensorError for a truncated, foreign or hand-written file
        raise problem(path, f"not a complete safetensors file ({str(exc).splitlines()[0]})") from None


def tensor_metadata(path: Path) -> dict[str, str]:
    """The metadata (string to string) of a safetensors file's header; {} when it has none."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror})") from None
    except Exception as exc:
        raise problem(path, f"not a complete safetensors file ({str(exc).splitlines()[0]})") from None


def module_specs(model: nn.Module, prefix: str = "") -> list[tuple[list[str], Spec]]:
    """The tensors a module's weights file holds: one entry per tensor, with all the names it goes by.

    A tied weight (the embedding as output layer) is one tensor under two names; safetensors keeps
    one of them. Build the module on the "meta" device to get these without allocating anything.
    """
    groups: dict[int, tuple[list[str], Spec]] = {}
    saved = set(model.state_dict(keep_vars=True))  # without non-persistent buffers (derived at load)
    for name, tensor in itertools.chain(
        model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)
    ):
        if name not in saved:
            continue
        spec = (DTYPES.get(tensor.dtype, str(tensor.dtype)), tuple(tensor.shape))
        groups.setdefault(id(tensor), ([], spec))[0].append(prefix + name)
    return list(groups.values())


def check_tensors(
    path: Path,
    found: dict[str, Spec],
    expected: Iterable[tuple[list[str], Spec]],
    *,
    every_name: bool = False,
    explain: Callable[[], str | None] | None = None,
    prefix: str = "",
) -> None:
    """The tensors of a file (its header) are exactly the expected ones, with their shapes and dtypes.

    Only names under `prefix` are compared (a file may hold several groups). With every_name, a tied
    tensor must be present under each of its names. `explain` may say which config field disagrees.
    """
    names = {name for name in found if name.startswith(prefix)}
    unknown = set(names)
    for aliases, spec in expected:
        unknown -= set(aliases)
        present = [name for name in aliases if name in names]
        wrong = next((name for name in present if found[name] != spec), None)
        if wrong is None and present and (len(present) == len(aliases) or not every_name):
            continue
        told = explain() if explain else None
        if told:
            raise CheckpointError(f"{path}: {told}")
        if wrong is None:
            missing = next(name for name in aliases if name not in names)
            raise problem(path, f"tensor {missing!r} is missing; the file comes from another run")
        has = f"{found[wrong][0]} {list(found[wrong][1])}"
        raise problem(path, f"tensor {wrong!r} is {has}, but the model needs {spec[0]} {list(spec[1])}")
    if unknown and explain and (told := explain()):
        raise CheckpointError(f"{path}: {told}")
    if unknown:
        shown_names = ", ".join(sorted(unknown)[:3])
        raise problem(path, f"tensors this model does not have ({shown_names}); the file comes from another run")


def tensor_lines(tensor: torch.Tensor) -> list[str]:
    """The lines of a word list stored by saving.lines_tensor; [] when its bytes are not UTF-8 (a damaged file)."""
    try:
        return bytes(tensor.tolist()).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return []


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose header was checked; NaN or infinite values are refused."""
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # changed on disk since its header was read, or unreadable
        raise problem(path, f"unreadable ({str(exc).splitlines()[0]})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise problem(
                path, f"tensor {name!r} holds NaN or infinite values (training diverged, or the file is damaged)"
            )
    return tensors
