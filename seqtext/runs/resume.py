"""The resume state of an interrupted run: latest weights, optimizer moments, carried RNN state,
counters and random-generator state (optimizer.safetensors + trainer_state.json), written atomically
and checked against the model and the optimizer when read back, and the options the run was started
with (what --resume continues). Removed when a run finishes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from seqtext.config import TrainConfig, write_json
from seqtext.errors import CheckpointError
from seqtext.files import replacing
from seqtext.runs import checks
from seqtext.runs.reading import CONFIG_TYPES, TRAIN_CONFIG_TYPES

RESUME_FILES = ("optimizer.safetensors", "trainer_state.json")
ADAMW_SLOTS = ("step", "exp_avg", "exp_avg_sq")


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
    with replacing(out_dir / "optimizer.safetensors") as tmp:
        save_file({k: v.cpu() for k, v in flat.items()}, str(tmp))
    write_json(out_dir / "trainer_state.json", {**state, "param_groups": opt["param_groups"]})


def load_resume_state(
    run: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore what save_resume_state wrote, every tensor checked against the model and the optimizer.

    Returns the rest of trainer_state.json (its RNG state checked; the counters are the loop's to
    check) and the task's extra tensors. The saved parameter groups are not used: the optimizer's own
    come from the same options, and the learning rate is set before every step.
    """
    if any(checks.optional_run_file(run, name) is None for name in RESUME_FILES):  # a pipe there is an error
        raise CheckpointError(
            f"{run} has nothing to resume (no {' or '.join(RESUME_FILES)}): the run finished "
            "or never started. Start a new run with another --out."
        )
    state_file, tensor_file = run / "trainer_state.json", checks.run_file(run, "optimizer.safetensors")
    state = _trainer_state(run)
    rng = checks.require(state_file, state, "torch_rng", list, "a list of bytes")
    if len(rng) != len(torch.get_rng_state()) or not all(type(b) is int and 0 <= b < 256 for b in rng):
        raise checks.problem(state_file, 'field "torch_rng" is not a random-generator state of this torch')
    found = checks.tensor_specs(tensor_file)
    checks.check_tensors(tensor_file, found, checks.module_specs(model, "model."), every_name=True, prefix="model.")
    _check_optimizer_slots(tensor_file, found, [p for group in optimizer.param_groups for p in group["params"]])
    flat = checks.load_tensors(tensor_file, device)
    model.load_state_dict({k[6:]: v for k, v in flat.items() if k.startswith("model.")})
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    optimizer.load_state_dict({"state": slots, "param_groups": optimizer.state_dict()["param_groups"]})
    state.pop("param_groups", None)
    return state, {k[6:]: v for k, v in flat.items() if k.startswith("extra.")}


def _check_optimizer_slots(path: Path, found: dict[str, checks.Spec], params: list[torch.Tensor]) -> None:
    """AdamW's moments: for each parameter none yet, or all three slots with the parameter's shape."""
    seen: dict[int, set[str]] = {}
    for name in (n for n in found if n.startswith("optimizer.")):
        parts = name.split(".")
        index = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
        if not 0 <= index < len(params) or parts[2] not in ADAMW_SLOTS:
            raise checks.problem(path, f"{name!r} is no optimizer state of this model (a foreign file)")
        shape = () if parts[2] == "step" else tuple(params[index].shape)
        if found[name] != ("F32", shape):
            raise checks.problem(
                path, f"tensor {name!r} is {found[name][0]} {list(found[name][1])}, expected F32 {list(shape)}"
            )
        seen.setdefault(index, set()).add(parts[2])
    for index, names in seen.items():
        if names != set(ADAMW_SLOTS):
            raise checks.problem(path, f"optimizer state {index} lacks {', '.join(sorted(set(ADAMW_SLOTS) - names))}")


def clear_resume_state(run: Path) -> None:
    """A finished run cannot be resumed; its directory keeps only the artifact."""
    for name in RESUME_FILES:
        (run / name).unlink(missing_ok=True)


def _trainer_state(run: Path) -> dict[str, Any]:
    """trainer_state.json, whose best score is Infinity before the first evaluation (the loop's counters
    allow it there alone, and the configs in it refuse any number that is not finite)."""
    return checks.json_file(run, "trainer_state.json", nonfinite=True)


def saved_run(out: Path) -> tuple[Any, TrainConfig, dict[str, Any]]:
    """The model and training configs an interrupted run was started with, and where its data files were."""
    if checks.optional_run_file(out, "trainer_state.json") is None:
        raise CheckpointError(
            f"{out} has nothing to resume (no trainer_state.json): the run finished or never saved a step. "
            "Start a new run with another --out."
        )
    file = out / "trainer_state.json"
    state = _trainer_state(out)
    kind = checks.choice(file, state, "kind", CONFIG_TYPES)
    model_config = checks.config_from(CONFIG_TYPES[kind], state.get("model_config"), file, "model_config.")
    train_config = checks.config_from(TRAIN_CONFIG_TYPES[kind], state.get("train_config"), file, "train_config.")
    known = state.get("sources")  # checked where it is used; older runs lack it
    return model_config, train_config, known if isinstance(known, dict) else {}


def saved_configs(out: Path) -> tuple[Any, TrainConfig]:
    """The model and training configs an interrupted run was started with (what --resume continues)."""
    model_config, train_config, _ = saved_run(out)
    return model_config, train_config
