"""The CUDA path: training on the GPU (cuDNN's RNNs, bf16 autocast), a few steps against the CPU, an exact
resume on the GPU, generation and completion from a GPU-loaded run, and one process under torchrun with
NCCL. Marked `gpu`: they run where torch sees a CUDA GPU and skip, saying why, everywhere else
(tests/conftest.py). The last test checks the GPU generator's part of the resume state on any machine."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import ROOT, TINY_MODEL, TINY_TRAIN
from safetensors.torch import load_file

import seqtext
from seqtext import LMConfig, TrainConfig
from seqtext.errors import CheckpointError, TrainingStopped
from seqtext.training import replicas

# cuBLAS is deterministic only with a fixed workspace, read when CUDA first creates a cuBLAS handle: set
# before any test runs (the GPU tests compare weights bit for bit); nothing reads it on a CPU-only machine.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

GPU_TRAIN = {**TINY_TRAIN, "device": "cuda", "precision": "auto"}


@pytest.fixture()
def exact_fp32():
    """fp32 as the CPU computes it: no TF32 in cuDNN's RNNs (on by default) or cuBLAS, deterministic cuDNN."""
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):  # torch 2.9 and later
        knobs = [(rnn, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    else:
        knobs = [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    knobs.append((torch.backends.cudnn, "deterministic", True))
    saved = [getattr(owner, name) for owner, name, _ in knobs]
    for owner, name, value in knobs:
        setattr(owner, name, value)
    yield
    for (owner, name, _), value in zip(knobs, saved, strict=True):
        setattr(owner, name, value)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def val_losses(run: Path) -> list[float]:
    return [json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def train(data: Path, out: Path, model: dict | None = None, callback=None, **options) -> seqtext.TrainResult:
    return seqtext.train_lm(
        LMConfig(**{**TINY_MODEL, **(model or {})}),
        TrainConfig(data=str(data), out=str(out), **{**GPU_TRAIN, **options}),
        callback=callback,
    )


@pytest.mark.gpu
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_trains_on_the_gpu_with_cudnn_and_bf16(cell, lines_file, tmp_path):
    result = train(lines_file, tmp_path / cell, {"cell": cell}, epochs=3)
    assert result.device.startswith("cuda") and torch.backends.cudnn.is_available()
    assert result.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    losses = val_losses(tmp_path / cell)
    assert all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < losses[0]
    assert {w.device.type for w in weights(tmp_path / cell).values()} == {"cpu"}  # saved to load anywhere
    assert seqtext.evaluate(tmp_path / cell, lines_file).bits_per_char > 0


@pytest.mark.gpu
def test_a_few_gpu_steps_match_the_cpu(exact_fp32, lines_file, tmp_path):
    """The same seed, data and fp32 on both devices: the step losses agree to float rounding (1e-4
    relative), and so do the weights (AdamW's first steps move each weight by about lr whatever the
    gradient's size, so a gradient that rounds to the other sign can move one weight by 2·lr)."""
    losses: dict[str, list[float]] = {"cpu": [], "cuda": []}
    for device in losses:
        train(
            lines_file,
            tmp_path / device,
            {"dropout": 0.0},
            callback=lambda e, d=device: losses[d].append(e.loss) if e.kind == "step" else None,
            device=device,
            precision="fp32",
            max_steps=5,
            eval_every=5,
        )
    assert len(losses["cuda"]) == 5 and losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-4)
    cpu, gpu = weights(tmp_path / "cpu"), weights(tmp_path / "cuda")
    for name in cpu:
        difference = (cpu[name] - gpu[name]).abs()
        assert difference.max() <= 2 * TrainConfig.lr + 1e-5 and difference.mean() < 1e-4, name
    assert val_losses(tmp_path / "cuda") == pytest.approx(val_losses(tmp_path / "cpu"), rel=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("model", "options"),
    [({"dropout": 0.1, "layers": 2}, {}), ({"cell": "gru"}, {"teacher_forcing": 0.75})],
    ids=["lstm-dropout", "gru-scheduled-sampling"],
)
def test_resume_is_exact_on_the_gpu(model, options, lines_file, tmp_path, monkeypatch):
    """Interrupted at step 7 and resumed, on the GPU: the same weights, bit for bit, as a run never
    interrupted. Dropout and scheduled sampling draw from the GPU's generator, which the resume state keeps."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    options = {"epochs": 3, "patience": 0, "eval_every": 5, **options}
    straight = tmp_path / "straight"
    train(lines_file, straight, model, **options)

    def interrupt_at_step_7(event):
        if event.kind == "step" and event.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    resumed = tmp_path / "resumed"
    with pytest.raises(TrainingStopped):
        train(lines_file, resumed, model, callback=interrupt_at_step_7, **options)
    assert "gpu_rngs" in json.loads((resumed / "trainer_state.json").read_text())
    config = LMConfig(**{**TINY_MODEL, **model})
    seqtext.train_lm(
        config, TrainConfig(data=str(lines_file), out=str(resumed), **{**GPU_TRAIN, **options}), resume=True
    )
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run diverged from the uninterrupted one"
    assert val_losses(straight) == val_losses(resumed)


@pytest.mark.gpu
def test_generate_and_complete_on_the_gpu(keyboard_run, char_run):
    """Runs trained anywhere load onto the GPU: sampling is reproducible by seed, and the keyboard
    suggests what it suggests on the CPU."""
    for run in (char_run, keyboard_run):
        on_gpu = seqtext.load(run, device="cuda")
        assert next(on_gpu.model.parameters()).is_cuda
        texts = {seqtext.generate(on_gpu, "Voy al", max_new_tokens=12, temperature=0.8, seed=3) for _ in range(2)}
        assert len(texts) == 1 and texts.pop()
        streamed = "".join(seqtext.generate_stream(on_gpu, "Voy al", max_new_tokens=12, temperature=0.8, seed=3))
        assert streamed == seqtext.generate(on_gpu, "Voy al", max_new_tokens=12, temperature=0.8, seed=3)
    on_cpu, on_gpu = seqtext.load(keyboard_run), seqtext.load(keyboard_run, device="cuda")
    for typed in ("Voy al parque con mi ", "Voy al parque con mi p", "Mañana"):
        cpu = seqtext.complete(on_cpu, typed, k=3, int8=False)  # a GPU steps in fp32; a CPU in int8 by default
        gpu = seqtext.complete(on_gpu, typed, k=3)
        assert [c.word for c in gpu] == [c.word for c in cpu], typed
        assert [c.prob for c in gpu] == pytest.approx([c.prob for c in cpu], abs=1e-3)
    completer = seqtext.Completer(on_gpu, user_data=None)
    assert [c.word for c in completer.suggest("Voy al parque con mi p", 3)] == [
        c.word for c in seqtext.complete(on_cpu, "Voy al parque con mi p", k=3, int8=False)
    ]


NCCL_SCRIPT = """
import json, sys
import torch.distributed as dist
import seqtext
from seqtext import LMConfig, TrainConfig

seen = {}
def callback(event):
    if event.kind == "start":
        seen.update(backend=dist.get_backend(), world=dist.get_world_size(), device=event.info["device"])
result = seqtext.train_lm(
    LMConfig(embed_dim=16, hidden_dim=32, layers=1, dropout=0.0),
    TrainConfig(data=sys.argv[1], out=sys.argv[2], bptt=16, batch_size=8, epochs=2, device="cuda"),
    callback=callback,
)
print(json.dumps({**seen, "steps": result.steps}))
"""


@pytest.mark.gpu
def test_one_process_under_torchrun_trains_with_nccl(lines_file, tmp_path):
    script = tmp_path / "nccl_run.py"
    script.write_text(NCCL_SCRIPT, encoding="utf-8")
    out = tmp_path / "nccl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    result = subprocess.run(
        [*command, str(script), str(lines_file), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["backend"] == "nccl" and seen["world"] == 1 and seen["device"].startswith("cuda")
    assert seen["steps"] > 0 and seqtext.load(out).kind == "lm"
    assert not (out / "trainer_state.json").exists()


def test_the_resume_state_keeps_and_checks_the_gpu_generator(lines_file, tmp_path, monkeypatch):
    """On any machine: a process that uses CUDA saves its GPU generator in trainer_state.json and
    restores it on --resume; a damaged one is refused in one line. (A simulated GPU generator here.)"""
    restored: list[list[int]] = []
    state = list(range(16))
    monkeypatch.setattr(replicas, "gpu_rng", lambda: state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda t: restored.append(t.tolist()))
    config = TrainConfig(data=str(lines_file), out=str(tmp_path / "r"), **{**TINY_TRAIN, "epochs": 2})

    def interrupt(event):
        if event.kind == "step" and event.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingStopped):
        seqtext.train_lm(LMConfig(**TINY_MODEL), config, callback=interrupt)
    file = tmp_path / "r" / "trainer_state.json"
    saved = json.loads(file.read_text())
    assert saved["gpu_rngs"] == [state]
    file.write_text(json.dumps({**saved, "gpu_rngs": [[300] * 16]}))
    with pytest.raises(CheckpointError, match='field "gpu_rngs" does not hold 1 GPU random-generator state'):
        seqtext.train_lm(LMConfig(**TINY_MODEL), config, resume=True)
    file.write_text(json.dumps(saved))
    seqtext.train_lm(LMConfig(**TINY_MODEL), config, resume=True)
    assert restored == [state]
