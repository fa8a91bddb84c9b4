"""Training to a budget: --max-steps, and the schedule planned in the steps --max-time buys, resumed exactly.

Time is a FakeClock here (seqtext.training.loop.clock): the tests never depend on this machine's speed.
"""

import json
import math
import os
import signal
from dataclasses import replace

import pytest
import torch
from helpers import TINY_MODEL, TINY_TRAIN, interrupt_at, invoke
from safetensors.torch import load_file

import seqtext
from seqtext.config import LMConfig, TrainConfig
from seqtext.errors import ConfigError, TrainingStopped
from seqtext.lm import recipe as recipes
from seqtext.lm.recipe import CHAR_LM, budget_recipe
from seqtext.training import loop
from seqtext.training.fitting import MARGIN, Candidate, Recipe, choose


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


# Choosing the model for the budget (seqtext.training.fitting): step times the test decides.

BIG, MIDDLE, SMALL = {"hidden_dim": 64, "layers": 2}, {"hidden_dim": 32, "layers": 2}, {"hidden_dim": 32, "layers": 1}
RECIPE = Recipe(
    "test",
    (
        Candidate("big", BIG, ((50, 3.0), (100, 2.0), (200, 1.5))),
        Candidate("middle", MIDDLE, ((50, 3.2), (200, 2.2), (400, 1.8))),
        Candidate("small", SMALL, ((100, 3.0), (1000, 2.0))),
    ),
    loss="bpc",
)


def step_seconds(fields):
    return {64: 1.0, 32: 0.25}[fields["hidden_dim"]] * fields["layers"]  # big 2 s, middle 0.5 s, small 0.25 s


def test_a_curve_is_interpolated_in_log_steps_and_promises_nothing_beyond_its_last_point():
    big = RECIPE.candidates[0]
    assert big.expected_loss(100) == 2.0 and big.expected_loss(200) == 1.5
    assert big.expected_loss(150) == pytest.approx(2.0 - 0.5 * math.log(1.5) / math.log(2))
    assert big.expected_loss(25) == pytest.approx(4.0)  # the first segment's slope, below the first point
    assert big.expected_loss(10**6) == 1.5 and big.expected_loss(0) > 4.0
    assert Candidate("one point", {}, ((10, 2.5),)).expected_loss(3) == 2.5


@pytest.mark.parametrize(
    ("budget", "step_limit", "chosen", "why"),
    [
        # big 150 steps → 1.71, middle 600 → 1.80 (its last point), small 1,200 → 2.00
        (300.0, math.inf, "big", "big: 150 steps here at 2.00 s a step, bpc 1.71 expected; middle: 600 steps"),
        # big 50 → 3.00, middle 200 → 2.20, small 400 → 2.40
        (100.0, math.inf, "middle", "middle: 200 steps here at 0.50 s a step, bpc 2.20 expected; small: 400"),
        (100.0, 40, "big", "big: 40 steps here at 2.00 s a step, bpc 3.32 expected"),  # --max-steps caps them all
    ],
)
def test_the_candidate_whose_curve_promises_the_lowest_loss_is_chosen(budget, step_limit, chosen, why):
    choice = choose(RECIPE, budget, step_limit, step_seconds, clock=lambda: 0.0)
    assert choice.chosen == chosen and list(choice.seconds_per_step) == ["big", "middle", "small"]
    assert choice.fields == {"big": BIG, "middle": MIDDLE, "small": SMALL}[chosen]
    assert why in choice.why and choice.summary == f"{chosen} ({choice.why})"


def test_the_default_stays_unless_another_promises_a_margin_less():
    def chosen(small_loss):
        recipe = Recipe("two", (Candidate("big", BIG, ((100, 2.0),)), Candidate("small", SMALL, ((100, small_loss),))))
        return choose(recipe, 1000.0, math.inf, step_seconds, clock=lambda: 0.0).chosen

    assert chosen(2.0 - MARGIN / 2) == "big" and chosen(2.0 - MARGIN) == "small"


def test_on_a_text_smaller_than_the_curves_measured_the_default_is_kept():
    measured = replace(RECIPE, steps_per_epoch=100)  # big's curve reaches 200 steps: 2 epochs of its text
    assert measured.epochs_measured() == 2.0 and RECIPE.epochs_measured() == math.inf
    # 100 s buy big 50 steps: 1 epoch of a text of 50 steps an epoch, so the curves decide
    assert choose(measured, 100.0, math.inf, step_seconds, clock=lambda: 0.0, steps_per_epoch=50).chosen == "middle"
    # 2.5 epochs of a text of 20 steps an epoch: more than big's curve measured, so big stays, and says why
    kept = choose(measured, 100.0, math.inf, step_seconds, clock=lambda: 0.0, steps_per_epoch=20)
    assert kept.chosen == "big" and kept.fields == BIG
    assert kept.why.startswith(
        "big kept: the budget buys it 2.5 epochs of this text, beyond the 2.0 its curve was measured over; "
        "big: 50 steps here"
    )
    # a recipe that does not know its text, or a caller that does not know the run's, compares the curves
    assert choose(RECIPE, 100.0, math.inf, step_seconds, clock=lambda: 0.0, steps_per_epoch=20).chosen == "middle"
    assert choose(measured, 100.0, math.inf, step_seconds, clock=lambda: 0.0).chosen == "middle"
    assert CHAR_LM.epochs_measured() == pytest.approx(1548 / 246)


def test_measuring_counts_in_the_budget():
    choice = choose(RECIPE, 300.0, math.inf, step_seconds, clock=FakeClock(slow_after=10**6))  # 0.5 s a reading
    assert choice.seconds == 0.5 and "big: 149 steps here" in choice.why  # (300 - 0.5) / 2


def test_a_recipe_never_chooses_for_a_user_who_chose():
    assert RECIPE.open_to({"dropout", "lr"}) is RECIPE
    assert RECIPE.open_to({"hidden_dim"}) is None and RECIPE.open_to({"layers", "lr"}) is None
    assert budget_recipe(None, "char", {"lr", "dropout", "seed"}) is CHAR_LM
    for typed in ("hidden_dim", "layers", "cell", "embed_dim", "bptt", "batch_size"):  # its evidence's settings
        assert budget_recipe(None, "char", {typed}) is None
    assert budget_recipe(None, "word", set()) is None and budget_recipe("keyboard", "char", set()) is None


def tiny_recipe(big_wins):
    """Two tiny candidates; the fake clock buys both the same steps, so the curves alone decide."""
    small_curve = ((10, 2.5), (100, 2.0)) if big_wins else ((10, 1.0), (100, 0.5))
    return Recipe(
        "tiny",
        (
            Candidate("LSTM 2×24", {"hidden_dim": 24, "layers": 2}, ((10, 2.0), (100, 1.0))),
            Candidate("LSTM 1×16", {"hidden_dim": 16, "layers": 1}, small_curve),
        ),
    )


def train_chosen(data, out, recipe, callback=None, resume=False):
    loop.clock = FakeClock(slow_after=10**6)  # every step 0.5 s: the 30 s budget buys each candidate 60
    model = {k: v for k, v in TINY_MODEL.items() if k not in ("hidden_dim", "layers")}
    config = TrainConfig(data=str(data), out=str(out), **{**BUDGET, "eval_every": 50})
    return seqtext.train_lm(LMConfig(**model), config, resume=resume, callback=callback, recipe=recipe)


TIMED = "49 steps here at 0.50 s a step"  # timing both candidates (3 steps of 0.5 s each) is paid from the budget
CHOICES = [
    (True, (24, 2), f"LSTM 2×24 (LSTM 2×24: {TIMED}, loss 1.31 expected; LSTM 1×16: {TIMED}, loss 2.15 expected)"),
    (False, (16, 1), f"LSTM 1×16 (LSTM 2×24: {TIMED}, loss 1.31 expected; LSTM 1×16: {TIMED}, loss 0.65 expected)"),
]


@pytest.mark.parametrize(("big_wins", "shape", "why"), CHOICES)
def test_the_choice_is_trained_saved_and_shown(lines_file, tmp_path, big_wins, shape, why):
    events = []
    train_chosen(lines_file, tmp_path / "run", tiny_recipe(big_wins), events.append)
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())["chosen"]
    assert saved == why
    assert events[0].kind == "start" and events[0].info["chosen"] == saved
    config = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (config["hidden_dim"], config["layers"]) == shape


def test_a_run_on_a_small_text_trains_the_default_and_says_why(lines_file, tmp_path):
    small_text = replace(tiny_recipe(big_wins=False), steps_per_epoch=10**4)  # its curves: 0.01 epochs
    train_chosen(lines_file, tmp_path / "run", small_text)
    chosen = json.loads((tmp_path / "run" / "train_config.json").read_text())["chosen"]
    assert chosen.startswith("LSTM 2×24 (LSTM 2×24 kept: the budget buys it ")
    config = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (config["hidden_dim"], config["layers"]) == (24, 2)


def test_a_resumed_run_keeps_its_choice_bit_for_bit(lines_file, tmp_path):
    straight = train_chosen(lines_file, tmp_path / "straight", tiny_recipe(big_wins=False))
    with pytest.raises(TrainingStopped):
        train_chosen(lines_file, tmp_path / "resumed", tiny_recipe(big_wins=False), interrupt_at(12))
    # resumed, the run chooses nothing again, though this recipe would choose the other model
    resumed = train_chosen(lines_file, tmp_path / "resumed", tiny_recipe(big_wins=True), resume=True)
    assert resumed.steps == straight.steps
    a, b = (load_file(str(run / "model.safetensors")) for run in (tmp_path / "straight", tmp_path / "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run did not continue the chosen model"
    chosen = [
        json.loads((run / "train_config.json").read_text())["chosen"]
        for run in (tmp_path / "straight", tmp_path / "resumed")
    ]
    assert chosen[0] == chosen[1] and chosen[0].startswith("LSTM 1×16 (")


def test_the_command_line_prints_the_choice_and_typed_options_win(lines_file, tmp_path, monkeypatch):
    recipe = Recipe("tiny", tiny_recipe(big_wins=False).candidates)  # assumes nothing, so the tiny flags may be typed
    monkeypatch.setattr(recipes, "CHAR_LM", recipe)
    tiny = ["--embed-dim", "16", "--bptt", "16", "--batch-size", "8", "--precision", "fp32", "--max-time", "30s"]
    for typed, shape in [([], (16, 1)), (["--hidden-dim", "32"], (32, 2))]:
        loop.clock = FakeClock(slow_after=10**6)
        out = tmp_path / f"run{len(typed)}"
        done = invoke("train", "lm", lines_file, "--out", out, *tiny, *typed)
        assert done.exit_code == 0, done.output
        config = json.loads((out / "config.json").read_text())["model"]
        assert (config["hidden_dim"], config["layers"]) == shape
        chosen = json.loads((out / "train_config.json").read_text())["chosen"]
        if typed:  # the user chose: no recipe, nothing printed
            assert chosen == "" and "chosen for the budget" not in done.output
        else:
            assert f"chosen for the budget: {chosen}" in " ".join(done.stderr.split())


def test_without_a_budget_a_recipe_chooses_nothing(lines_file, tmp_path):
    config = TrainConfig(
        data=str(lines_file), out=str(tmp_path / "run"), **{**BUDGET, "max_time": None, "max_steps": 3}
    )
    seqtext.train_lm(LMConfig(**TINY_MODEL), config, recipe=tiny_recipe(big_wins=False))
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["chosen"] == ""
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["hidden_dim"] == TINY_MODEL["hidden_dim"]
