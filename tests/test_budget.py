"""Training to a budget: --max-steps, and the schedule planned in the steps --max-time buys, resumed exactly.

Time is a FakeClock here (seqtext.training.loop.clock): the tests never depend on this machine's speed.
"""

import json
import os
import signal

import pytest
import torch
from helpers import TINY_MODEL, TINY_TRAIN
from safetensors.torch import load_file

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import ConfigError, TrainingStopped
from seqtext.training import loop


class FakeClock:
    """Each reading is 0.5 s after the last; after `slow_after` readings, 1 s (the machine got busier)."""

    def __init__(self, slow_after: int) -> None:
        self.readings, self.now, self.slow_after = 0, 0.0, slow_after

    def __call__(self) -> float:
        self.readings += 1
        self.now += 0.5 if self.readings < self.slow_after else 1.0
        return self.now


BUDGET = {**TINY_TRAIN, "epochs": None, "max_time": 30.0, "patience": 0, "eval_every": 5}


def train(data, out, clock, callback=None, resume=False, **options):
    loop.clock = clock
    return seqtext.train_lm(
        LMConfig(**TINY_MODEL),
        TrainConfig(data=str(data), out=str(out), **{**BUDGET, **options}),
        resume=resume,
        callback=callback,
    )


@pytest.fixture(autouse=True)
def _real_clock_after(monkeypatch):
    monkeypatch.setattr(loop, "clock", loop.clock)  # restored after each test


def plans_of(events):
    return [e.info for e in events if e.kind == "plan"]


@pytest.mark.parametrize("stop_at", [3, 30])  # before the first plan; after the machine slowed down
def test_a_budget_planned_run_resumes_on_the_same_schedule(lines_file, tmp_path, stop_at):
    events = []
    straight = train(lines_file, tmp_path / "straight", FakeClock(slow_after=60), events.append)
    plans = plans_of(events)
    assert len(plans) >= 2 and plans[0]["step"] <= 5, plans  # the first plan, then one for the slower clock
    assert plans[-1]["seconds_per_step"] > plans[0]["seconds_per_step"]
    assert straight.stopped_by == "max_time" and straight.steps == pytest.approx(plans[-1]["total_steps"], abs=3)

    def stop(event):
        resumed_events.append(event)
        if event.kind == "step" and event.step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    clock, resumed_events = FakeClock(slow_after=60), []  # one clock: time goes on across the stop
    with pytest.raises(TrainingStopped):
        train(lines_file, tmp_path / "resumed", clock, stop)
    saved = json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())
    assert saved["schedule"]["segments"][0][:2] == [0, 0.0] and saved["schedule"]["step_limit"] >= 1_000_000
    result = train(lines_file, tmp_path / "resumed", clock, resumed_events.append, resume=True)
    assert plans_of(resumed_events) == plans and result.steps == straight.steps
    a, b = (load_file(str(run / "model.safetensors")) for run in (tmp_path / "straight", tmp_path / "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run left the uninterrupted run's schedule"
    records = [
        [{k: v for k, v in json.loads(line).items() if k != "train_loss"} for line in (run / "metrics.jsonl").open()]
        for run in (tmp_path / "straight", tmp_path / "resumed")
    ]  # train_loss averages the steps since the last evaluation, which a resumed run did not all see
    assert records[0] == records[1]


def test_without_a_budget_nothing_is_planned_and_nothing_measured(lines_file, tmp_path):
    events = []
    train(lines_file, tmp_path / "e", FakeClock(slow_after=10), events.append, max_time=None, epochs=2)
    assert plans_of(events) == [] and events[-1].kind in ("eval", "save")


def test_max_steps_stops_the_run_and_plans_the_schedule_over_its_steps(lines_file, tmp_path):
    rates = []

    def watch(event):
        if event.kind == "step":
            rates.append(event.step)

    result = train(lines_file, tmp_path / "s", FakeClock(slow_after=10**6), watch, max_time=None, max_steps=11)
    assert result.stopped_by == "max_steps" and result.steps == 11 and rates[-1] == 11
    records = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 11  # the last step is evaluated
    capped = train(lines_file, tmp_path / "c", FakeClock(slow_after=10**6), max_time=None, max_steps=10**6, epochs=1)
    assert capped.stopped_by == "epochs"
    timed = train(lines_file, tmp_path / "t", FakeClock(slow_after=10**6), max_time=5.0, max_steps=10**6)
    assert timed.stopped_by == "max_time"


@pytest.mark.parametrize("value", [0, -3])
def test_max_steps_must_be_positive(value):
    with pytest.raises(ConfigError, match=rf"^--max-steps must be at least 1 \(got {value}\)$"):
        TrainConfig(max_steps=value)
    with pytest.raises(ConfigError, match="--max-steps must be a whole number"):
        TrainConfig(max_steps=2.5)


def test_max_steps_on_the_command_line(lines_file, tmp_path):
    from typer.testing import CliRunner

    from seqtext.cli import app

    tiny = ["--embed-dim", "8", "--hidden-dim", "8", "--layers", "1", "--batch-size", "8", "--precision", "fp32"]
    done = CliRunner().invoke(
        app, ["train", "lm", str(lines_file), "--out", str(tmp_path / "lm"), "--max-steps", "3", *tiny]
    )
    assert done.exit_code == 0, done.output
    assert "(3 steps, stopped by max_steps" in done.output
    assert json.loads((tmp_path / "lm" / "train_config.json").read_text())["max_steps"] == 3
    refused = CliRunner().invoke(app, ["train", "classifier", str(lines_file), "--max-steps", "0"])
    assert refused.exit_code == 2 and "Invalid value for '--max-steps'" in refused.output
