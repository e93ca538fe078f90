"""Every analytics figure agrees with a count of the bookings in Python, over many ranges and moments.

The figures read the tallies for whole weeks and the bookings for the edges of a range, the sessions that have
not ended and the weeks a range only touches; this checks all of those paths against the plain definition:
held sessions are scheduled, start in [since, until) and have ended by now.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.analytics import (
    TIME_TO_MARK_BUCKETS,
    Scope,
    estimate_median_hours,
    measure_time_to_mark,
    summarize_no_shows,
    tabulate_mentors,
    tally_weeks,
)
from core.models import HOURS_TO_MARK_EDGES, TIME_TO_MARK_BINS, ActorKind, Booking, BookingStatus
from tests.factories import add_booking, add_mentee, add_mentor

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
KINDS = [ActorKind.MENTOR, ActorKind.ADMIN, ActorKind.SYSTEM, None]


@pytest.fixture
def history(factory: sessionmaker[Session]) -> list[int]:
    """Three mentors, ten weeks of sessions from half an hour to two days long, marked and not, cancelled and
    not; marks from before a session's end to weeks after it."""
    rng = random.Random(11)
    with factory() as s:
        mentors = [add_mentor(s, f"Mentor {i}") for i in range(3)]
        mentees = [add_mentee(s, f"Mentee {i}") for i in range(6)]
        for _ in range(260):
            begins = START + timedelta(hours=rng.randrange(0, 70 * 24), minutes=rng.choice([0, 30]))
            hours = rng.choice([0.5, 1, 1, 1, 3, 13, 47])
            attended = rng.choice([None, True, False, False])
            booking = add_booking(
                s,
                rng.choice(mentors),
                rng.choice(mentees),
                begins,
                hours=hours,
                attended=attended,
                marked_by=rng.choice(KINDS) if attended is not None else None,
                status=BookingStatus.CANCELLED if rng.random() < 0.1 else BookingStatus.SCHEDULED,
            )
            if attended is not None:
                delay = rng.choice([-2, 0, 0.2, 1, 5, 24, 30, 100, 800])
                s.get_one(Booking, booking).attendance_marked_at = begins + timedelta(hours=hours + delay)
        s.commit()
    return mentors


def held(bookings: list[Booking], scope: Scope, now: datetime) -> list[Booking]:
    return [
        b
        for b in bookings
        if b.status is BookingStatus.SCHEDULED
        and scope.since <= b.start_time < scope.until
        and b.end_time <= now
        and (scope.mentor_id is None or b.mentor_id == scope.mentor_id)
    ]


def kind(b: Booking) -> str:
    return "unattributed" if b.attendance_marked_by is None else b.attendance_marked_by.value


def time_bin(b: Booking) -> int | None:
    if b.attended is None or b.attendance_marked_by not in (ActorKind.MENTOR, ActorKind.ADMIN):
        return None
    hours = (b.attendance_marked_at - b.end_time).total_seconds() / 3600
    return bisect.bisect_right(HOURS_TO_MARK_EDGES, hours)


def figures(sessions: list[Booking]) -> dict[str, Any]:
    person = [b for b in sessions if b.attended is not None and kind(b) in ("Mentor", "Admin")]
    bins = Counter(time_bin(b) for b in person)
    return {
        "sessions": len(sessions),
        "pending": sum(b.attended is None for b in sessions),
        "marks": Counter(kind(b) for b in sessions if b.attended is not None),
        "by_person": len(person),
        "no_shows_by_person": sum(b.attended is False for b in person),
        "automated_no_shows": Counter(kind(b) for b in sessions if b.attended is False and b not in person),
        "median": estimate_median_hours([bins[i] for i in range(len(TIME_TO_MARK_BINS))]),
        "bins": bins,
    }


def week_of(moment: datetime) -> date:
    return moment.date() - timedelta(days=moment.weekday())


def scopes(mentors: list[int]) -> list[tuple[Scope, datetime]]:
    """Ranges of one day to the whole history, starting and ending on any day, at moments inside the history
    (sessions not ended yet) and after it, of every mentor or one."""
    rng = random.Random(5)
    cases = []
    for i in range(36):
        first = START.date() + timedelta(days=rng.randrange(-3, 66))
        days = rng.choice([1, 2, 4, 6, 7, 8, 13, 15, 29, 45, 80])
        since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        now = since + timedelta(days=rng.choice([0.5, 3, 12, 40, 100]), hours=rng.randrange(24))
        cases.append((Scope(since, since + timedelta(days=days), None if i % 3 else rng.choice(mentors)), now))
    return cases


def test_every_figure_agrees_with_the_bookings_over_any_range(
    factory: sessionmaker[Session], history: list[int]
) -> None:
    with factory() as s:
        bookings = list(s.scalars(sa.select(Booking)))
        for scope, now in scopes(history):
            context = f"{scope.since:%a %Y-%m-%d} to {scope.until:%a %Y-%m-%d}, now {now:%a %m-%d %H:%M}"
            want = figures(held(bookings, scope, now))

            summary = summarize_no_shows(s, scope, now=now)
            previous = figures(held(bookings, scope.previous, now))
            for got, expected in ((summary.current, want), (summary.previous, previous)):
                assert (got.sessions, got.pending) == (expected["sessions"], expected["pending"]), context
                assert got.sessions_marked_by_person == expected["by_person"], context
                assert got.no_shows_marked_by_person == expected["no_shows_by_person"], context
                assert got.system_no_shows == expected["automated_no_shows"]["System"], context
                assert got.unattributed_no_shows == expected["automated_no_shows"]["unattributed"], context

            weeks = {w.week: w for w in tally_weeks(s, scope, now=now)}
            by_week: dict[date, list[Booking]] = {}
            for b in held(bookings, scope, now):
                by_week.setdefault(week_of(b.start_time), []).append(b)
            assert {w for w, row in weeks.items() if row.sessions} == set(by_week), context
            for week, sessions in by_week.items():
                expected = figures(sessions)
                row = weeks[week]
                assert (row.sessions, row.pending) == (expected["sessions"], expected["pending"]), context
                got_marks = (row.marks_mentor, row.marks_admin, row.marks_system, row.marks_unattributed)
                assert got_marks == tuple(expected["marks"][k] for k in ("Mentor", "Admin", "System", "unattributed"))

            mentors = {r.mentor_id: r for r in tabulate_mentors(s, scope, now=now)}
            by_mentor: dict[int, list[Booking]] = {}
            for b in held(bookings, scope, now):
                by_mentor.setdefault(b.mentor_id, []).append(b)
            assert set(mentors) == set(by_mentor), context
            for mentor, sessions in by_mentor.items():
                expected = figures(sessions)
                row = mentors[mentor]
                assert (row.sessions, row.pending, row.marked, row.no_shows) == (
                    expected["sessions"],
                    expected["pending"],
                    expected["by_person"],
                    expected["no_shows_by_person"],
                ), context
                assert row.median_hours_to_mark == pytest.approx(expected["median"]), context

            timing = measure_time_to_mark(s, scope, now=now)
            assert timing.marks == want["by_person"], context
            assert timing.median_hours == pytest.approx(want["median"]), context
            assert sum(timing.by_bucket.values()) == want["by_person"], context
            assert [label for label, _, _ in TIME_TO_MARK_BUCKETS] == list(timing.by_bucket)
