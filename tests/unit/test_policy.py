"""The absence policy as a pure function: a table of cases, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.config import Policy, policy_from_env
from core.errors import InvalidInput
from core.policy import CountedAbsence, decide

T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
DAY = timedelta(days=1)


def absences(*days: float) -> list[CountedAbsence]:
    """Absence i is booking i+1, on day `days[i]` after T0."""
    return [CountedAbsence(i + 1, T0 + d * DAY) for i, d in enumerate(days)]


@pytest.mark.parametrize(
    ("days", "warnings", "reprobation"),
    [
        pytest.param((), set(), None, id="no absences, nothing"),
        pytest.param((0,), {1}, None, id="first absence warns"),
        pytest.param((0, 10), {1}, 2, id="second in the window reprobates"),
        pytest.param((0, 59.9), {1}, 2, id="just inside the 60-day window"),
        pytest.param((0, 60), {1, 2}, None, id="exactly 60 days apart is outside the window"),
        pytest.param((0, 70, 75), {1, 2}, 3, id="window rolls: the old absence no longer counts"),
        pytest.param((0, 1, 2), {1}, 2, id="at most one reprobation"),
        pytest.param((10, 0), {2}, 1, id="order is by session time, not by input order"),
    ],
)
def test_decide_default_policy(days, warnings, reprobation):
    decision = decide(absences(*days), Policy())
    assert set(decision.warning_causes) == warnings
    assert decision.reprobation_cause == reprobation


def test_thresholds_and_window_are_configurable():
    lenient = Policy(window_days=30, warning_at=2, reprobation_at=3)
    decision = decide(absences(0, 5, 10), lenient)
    assert set(decision.warning_causes) == {2}
    assert decision.reprobation_cause == 3
    assert decide(absences(0, 31), lenient).warning_causes == frozenset()


def test_deciding_twice_gives_the_same_answer():
    facts = absences(0, 3, 90)
    assert decide(facts, Policy()) == decide(list(reversed(facts)), Policy())


def test_policy_from_environment():
    env = {
        "MENTORSHIP_POLICY_WINDOW_DAYS": "30",
        "MENTORSHIP_POLICY_WARNING_AT": "2",
        "MENTORSHIP_POLICY_REPROBATION_AT": "4",
    }
    assert policy_from_env(env) == Policy(30, 2, 4)
    assert policy_from_env({}) == Policy(60, 1, 2)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MENTORSHIP_POLICY_WINDOW_DAYS": "sixty"}, "MENTORSHIP_POLICY_WINDOW_DAYS='sixty' is not a whole number"),
        ({"MENTORSHIP_POLICY_REPROBATION_AT": "1"}, "reprobation_at \\(1\\) must be greater than warning_at"),
        ({"MENTORSHIP_POLICY_WINDOW_DAYS": "0"}, "window_days must be at least 1"),
    ],
)
def test_bad_policy_settings_say_what_is_wrong(env, message):
    with pytest.raises(InvalidInput, match=message):
        policy_from_env(env)
