"""The learning-rate schedule planned in the steps a run takes (seqtext.training.schedule), with fake time."""

import itertools
import math

import pytest

from seqtext.errors import CheckpointError
from seqtext.training.schedule import Schedule, learning_rate

BASE = 3e-3


def old_rate(step: int, total: int) -> float:
    """The schedule before budgets were planned: warm-up min(100, total // 20), cosine over step / total."""
    warmup = max(1, min(100, total // 20))
    return learning_rate(BASE, step, warmup, min(1.0, max(step / total, 0.0)))


def run(schedule: Schedule, seconds_per_step, steps: int, eval_every: int = 0, eval_seconds: float = 0.0):
    """Feed `schedule` the clock of `steps` steps; the rate of each step and the plans made."""
    seconds = spent_validating = 0.0
    rates, plans = [], []
    for step in range(steps):
        rates.append(schedule.rate(BASE, step))
        seconds += seconds_per_step(step)
        if eval_every and (step + 1) % eval_every == 0:
            seconds, spent_validating = seconds + eval_seconds, spent_validating + eval_seconds
        plan = schedule.observe(step + 1, seconds, spent_validating)
        if plan:
            plans.append(plan)
    return rates, plans


def test_without_a_budget_the_step_limit_plans_it_exactly_as_before():
    for total in (7, 126, 5000):
        schedule = Schedule.planned(total, None, eval_every=10)
        rates, plans = run(schedule, lambda step: 1.0, total)
        assert rates == [old_rate(step, total) for step in range(total)] and plans == []


def test_a_budget_plans_the_steps_it_buys_on_this_machine():
    """The laptop case of issue 21: 5 minutes at 2.4 s a step buy about 125 steps, not 100 of warm-up."""
    schedule = Schedule.planned(10**9, 300.0, eval_every=1000)  # no epoch limit
    rates, plans = run(schedule, lambda step: 4.0 if step == 0 else 2.4, 125)
    first = plans[0]
    assert first["step"] == 5 and first["total_steps"] == 5 + math.floor((300 - 4 - 4 * 2.4) / 2.4)
    assert schedule.warmup == 6 and len(plans) == 1  # steady speed: no new plan after the first
    assert rates[10] > 0.95 * BASE and rates[-1] == pytest.approx(0.1 * BASE, rel=0.01)  # decayed by the end
    assert max(b - a for a, b in itertools.pairwise(rates[6:])) <= 0  # decays, never jumps up


def test_evaluations_count_against_the_budget():
    plain = Schedule.planned(10**9, 300.0, eval_every=20)
    run(plain, lambda step: 1.0, 100)
    validating = Schedule.planned(10**9, 300.0, eval_every=20)
    run(validating, lambda step: 1.0, 100, eval_every=20, eval_seconds=10.0)
    assert validating.total_steps == pytest.approx(300 / 1.5, rel=0.05)  # a step costs 1 s and 10 s / 20 steps
    assert plain.total_steps == pytest.approx(300, abs=3)


def test_a_slower_machine_halfway_gets_a_new_plan_and_the_rate_stays_continuous():
    schedule = Schedule.planned(10**9, 400.0, eval_every=1000)
    rates, plans = run(schedule, lambda step: 1.0 if step < 200 else 2.0, 300)
    assert plans[0]["total_steps"] == pytest.approx(400, abs=2) and plans[-1]["total_steps"] == pytest.approx(
        300, abs=3
    )
    jumps = [abs(b - a) for a, b in itertools.pairwise(rates)][schedule.warmup :]
    assert max(jumps) < 0.02 * BASE  # a new plan bends the decay; it never jumps
    assert rates[-1] == pytest.approx(0.1 * BASE, rel=0.02)


def test_the_epoch_limit_caps_the_plan_and_an_ample_budget_changes_nothing():
    """The classifier's 8 epochs with --max-time 15m: when the budget buys more, the epochs plan it, bit for bit."""
    schedule = Schedule.planned(400, 900.0, eval_every=50)
    rates, plans = run(schedule, lambda step: 0.5, 400)
    assert plans == [] and rates == [old_rate(step, 400) for step in range(400)]
    short = Schedule.planned(400, 100.0, eval_every=50)
    run(short, lambda step: 0.5, 150)
    assert short.total_steps == pytest.approx(200, abs=2)


def test_the_plans_are_saved_and_restored(tmp_path):
    schedule = Schedule.planned(10**9, 400.0, eval_every=1000)
    run(schedule, lambda step: 1.0 if step < 100 else 1.5, 150)
    restored = Schedule.planned(10**9, 400.0, eval_every=1000)
    restored.restore(schedule.state(), 150, tmp_path / "trainer_state.json")
    assert restored == schedule
    more = [run(s, lambda step: 1.25, 50) for s in (schedule, restored)]
    assert more[0] == more[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"warmup": 0}, 'field "schedule.warmup" is 0'),
        ({"warmup": "6"}, "field \"schedule.warmup\" is '6'"),
        ({"step_limit": 99}, 'field "schedule.step_limit" is 99, but this run allows 1000000000'),
        ({"segments": []}, 'field "schedule.segments" is not a list of plans'),
        ({"segments": [[0, 0.0]]}, "not [step, progress, total]"),
        ({"segments": [[0, 0.0, 400], [0, 0.1, 300]]}, "steps out of order"),
        ({"segments": [[0, 0.0, 400], [500, 0.1, 900]]}, "steps out of order"),  # after the run's step
        ({"segments": [[0, 1.5, 400]]}, "a plan out of range"),
        ({"segments": [[0, math.nan, 400]]}, "not [step, progress, total]"),
        ({"measured": [5]}, 'field "schedule.measured" is [5], not [step, seconds]'),
        ({"next_plan": -1.0}, 'field "schedule.next_plan" is -1.0'),
        ({"plans": {}}, 'field "schedule.plans" is not a list of objects'),
    ],
)
def test_a_damaged_saved_plan_is_refused_naming_the_field(change, message, tmp_path):
    schedule = Schedule.planned(10**9, 400.0, eval_every=1000)
    run(schedule, lambda step: 1.0, 150)
    state = {**schedule.state(), **change}
    with pytest.raises(CheckpointError, match=r"trainer_state\.json") as refused:
        Schedule.planned(10**9, 400.0, eval_every=1000).restore(state, 150, tmp_path / "trainer_state.json")
    assert message in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(CheckpointError, match='field "schedule" is not an object'):
        schedule.restore([1], 150, tmp_path / "trainer_state.json")
