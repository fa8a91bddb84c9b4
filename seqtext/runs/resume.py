"""The resume state of a run that is not finished, and what "finished" means.

trainer_state.json is there from the first step of a training until everything the run promised is
written, and removed last; its "phase" says how far the run got:
- "training": optimizer.safetensors beside it holds the latest weights, optimizer moments and carried
  RNN state, and trainer_state.json the counters and random-generator states: --resume continues
  the training exactly. Both files are written before either replaces its predecessor, and the
  tensors carry the step they belong to, so a failed write leaves the previous pair whole;
- "finishing": the training is done (its result is recorded) and the steps after it (the 16-bit
  weights, the keyboard's n-gram, the phrase memory) are not all written yet: --resume does them.
Both phases keep the options the run was started with (what --resume continues). A run directory
with config.json and without trainer_state.json is finished.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from seqtext.config import TrainConfig
from seqtext.errors import CheckpointError
from seqtext.files import replacing
from seqtext.runs import checks
from seqtext.runs.reading import COMMAND_FOR_KIND, CONFIG_TYPES, TRAIN_CONFIG_TYPES
from seqtext.runs.saving import writing

RESUME_FILES = ("optimizer.safetensors", "trainer_state.json")  # removed in this order: the state last
ADAMW_SLOTS = ("step", "exp_avg", "exp_avg_sq")
PHASES = ("training", "finishing")
RESULT_FIELDS = {  # what a finished training reports (TrainResult), kept while the run is finishing
    "steps": int, "best_step": int, "best_metrics": dict, "stopped_by": str,
    "precision": str, "device": str, "tokens_per_s": float, "seconds": float,
}  # fmt: skip


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
    tensor_file, state_file = out_dir / "optimizer.safetensors", out_dir / "trainer_state.json"
    text = json.dumps({**state, "phase": "training", "param_groups": opt["param_groups"]}, indent=2, sort_keys=True)
    # Both files are written in full before either is renamed into place: a write that fails (a full
    # disk) leaves the previous pair as it was, and the step in the tensors' metadata pairs them.
    with writing(tensor_file), replacing(tensor_file) as tensor_tmp:
        save_file({k: v.cpu() for k, v in flat.items()}, str(tensor_tmp), metadata={"step": str(state["step"])})
        with writing(state_file), replacing(state_file) as state_tmp:
            state_tmp.write_text(text + "\n", encoding="utf-8")


def mark_trained(out_dir: Path, state: dict[str, Any], result: dict[str, Any]) -> None:
    """The training of out_dir is done: trainer_state.json says so (phase "finishing", with the result and
    the run's options), and the optimizer's tensors go. What comes after training is written next."""
    state_file = out_dir / "trainer_state.json"
    with writing(state_file), replacing(state_file) as tmp:
        finishing = {**state, "phase": "finishing", "result": result}
        tmp.write_text(json.dumps(finishing, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out_dir / "optimizer.safetensors").unlink(missing_ok=True)


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
    _check_pair(tensor_file, state_file, state)
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


def _check_pair(tensor_file: Path, state_file: Path, state: dict[str, Any]) -> None:
    """The tensors and the counters must be of the same step (older runs have no step in the tensors)."""
    try:
        with safe_open(str(tensor_file), framework="pt") as f:
            stamp = (f.metadata() or {}).get("step")
    except Exception as exc:  # SafetensorError for a truncated or foreign file
        raise checks.problem(tensor_file, f"not a complete safetensors file ({str(exc).splitlines()[0]})") from None
    step = state.get("step")  # its type and range are checked with the other counters
    if stamp is not None and type(step) is int and step >= 0 and stamp != str(step):
        why = f"its tensors are of step {stamp} but {state_file.name} is of step {step} (not written together)"
        raise checks.problem(tensor_file, why)


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
    """Everything the run promised is written: it is finished, and its directory keeps only the artifact."""
    for name in RESUME_FILES:
        (run / name).unlink(missing_ok=True)


def _trainer_state(run: Path) -> dict[str, Any]:
    """trainer_state.json, whose best score is Infinity before the first evaluation (the loop's counters
    allow it there alone, and the configs in it refuse any number that is not finite)."""
    return checks.json_file(run, "trainer_state.json", nonfinite=True)


def trained_result(run: Path) -> dict[str, Any] | None:
    """The recorded result of a run whose training is done but which is still finishing; None while it trains."""
    file = run / "trainer_state.json"
    state = _trainer_state(run)
    if _phase(file, state) != "finishing":
        return None
    result = checks.require(file, state, "result", dict, "an object")
    for name, kind in RESULT_FIELDS.items():
        value = checks.require(file, result, name, int | float if kind is float else kind, f"a {kind.__name__}")
        if isinstance(value, int | float) and not value >= 0:
            raise checks.problem(file, f'field "result.{name}" cannot be negative (got {value})')
    if not all(isinstance(k, str) and isinstance(v, int | float) for k, v in result["best_metrics"].items()):
        raise checks.problem(file, 'field "result.best_metrics" must map names to numbers')
    return {name: result[name] for name in RESULT_FIELDS}


def _phase(file: Path, state: dict[str, Any]) -> str:
    return checks.choice(file, state, "phase", PHASES) if "phase" in state else "training"  # older runs: training


@dataclass(frozen=True)
class Unfinished:
    """Why a run is not finished, and the command that finishes it."""

    phase: str  # "training" or "finishing"
    step: int
    kind: str
    train_config: TrainConfig  # the options it was started with: what it promised

    def promises(self, part: str) -> bool:
        """Whether the run was started to have `part`: "ngram", "phrase_memory" or "ensemble"."""
        value = getattr(self.train_config, part, None)
        return value > 1 if part == "ensemble" and isinstance(value, int) else bool(value)

    def why(self) -> str:
        if self.phase == "finishing":
            return "its training is done but the steps after it were not all written"
        return f"its training has not finished (it stopped, or is still running, at step {self.step:,})"

    def resume(self, run: Path) -> str:
        """The command that finishes the run."""
        if getattr(self.train_config, "ensemble", 1) > 1:
            return f"an ensemble does not resume: delete {run} and train it again"
        data = shlex.quote(self.train_config.data) if self.train_config.data else "DATA"
        command = COMMAND_FOR_KIND[self.kind].removesuffix("DATA")
        return f"resume with: {command}{data} --out {shlex.quote(str(run))} --resume"

    def message(self, run: Path, missing: str) -> str:
        """The one line that refuses to use the run without `missing`, a part it promised."""
        return f"{run} is unfinished: {self.why()}, so {missing} is not written yet; {self.resume(run)}"


def unfinished(run: Path) -> Unfinished | None:
    """None for a finished run (no trainer_state.json); else its phase, step and promises, checked."""
    file = checks.optional_run_file(run, "trainer_state.json")  # a pipe or a broken link there is an error
    if file is None:
        return None
    state = _trainer_state(run)
    model_config, train_config, _ = saved_run(run)
    kind = next(k for k, cls in CONFIG_TYPES.items() if isinstance(model_config, cls))
    phase = _phase(file, state)
    step = checks.require(file, state, "step", int, "a whole number") if phase == "training" else 0
    return Unfinished(phase, step, kind, train_config)


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
