"""The median hours to mark, estimated from marks counted by bin (core.analytics.estimate_median_hours)."""

from __future__ import annotations

import bisect
import random
import statistics

import pytest

from core.analytics import estimate_median_hours
from core.models import HOURS_TO_MARK_EDGES, TIME_TO_MARK_BINS


def binned(*hours: float) -> list[int]:
    bins = [0] * len(TIME_TO_MARK_BINS)
    for h in hours:
        bins[bisect.bisect_right(HOURS_TO_MARK_EDGES, h)] += 1
    return bins


def test_no_marks_have_no_median() -> None:
    assert estimate_median_hours(binned()) is None


def test_a_lone_mark_stands_in_the_middle_of_its_bin() -> None:
    assert estimate_median_hours(binned(4.2)) == pytest.approx(5)  # the 4-6 hour bin
    assert estimate_median_hours(binned(-3)) == pytest.approx(0.125)  # before the end: the first bin, 0-0.25 h


def test_the_marks_of_a_bin_are_spread_evenly_across_it() -> None:
    # Two marks in the 12-18 hour bin stand at 13.5 and 16.5 hours.
    assert estimate_median_hours(binned(12, 12.1)) == pytest.approx(15)
    # Three: 13, 15, 17.
    assert estimate_median_hours(binned(12, 12.1, 17.9)) == pytest.approx(15)


def test_marks_a_month_late_or_more_stand_at_30_days() -> None:
    assert estimate_median_hours(binned(1000, 2000, 5)) == pytest.approx(720)


@pytest.mark.parametrize("seed", range(20))
def test_the_estimate_lies_within_the_bins_of_the_middle_marks(seed: int) -> None:
    rng = random.Random(seed)
    hours = sorted(rng.lognormvariate(2.5, 1.5) for _ in range(rng.randint(1, 60)))
    low_mark, high_mark = hours[(len(hours) - 1) // 2], hours[len(hours) // 2]
    edges = [0.0, *HOURS_TO_MARK_EDGES, float("inf")]
    low = edges[bisect.bisect_right(HOURS_TO_MARK_EDGES, low_mark)]
    high = edges[bisect.bisect_right(HOURS_TO_MARK_EDGES, high_mark) + 1]
    estimate = estimate_median_hours(binned(*hours))
    assert estimate is not None
    assert low <= estimate <= min(high, HOURS_TO_MARK_EDGES[-1]), (statistics.median(hours), estimate)
