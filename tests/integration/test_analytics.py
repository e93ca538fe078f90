"""Analytics on a small hand-built history, on every backend: each figure's answer is worked out below.

now = Monday 2026-06-01 12:00 UTC. The scope is the four weeks 2026-05-04 .. 2026-05-31 (Mondays 05-04, 05-11,
05-18, 05-25); the previous period is 2026-04-06 .. 2026-05-03. Two mentors (Maria, Otto), three mentees.

Current period (h = hours from the session's end to the mark; every session lasts one hour):
    b1  Maria Ana  Mon 05-04 00:00  attended  Mentor  h=2     (first instant of the scope)
    b2  Maria Ana  Tue 05-05 10:00  no-show   Mentor  h=24
    b3  Maria Ben  Tue 05-12 10:00  attended  Admin   h=30
    b4  Maria Ben  Wed 05-13 10:00  no-show   System
    b5  Maria Cy   Tue 05-12 14:00  pending               (age 20 days: 7-30 days)
    b6  Maria Cy   Tue 05-19 10:00  cancelled             (left out; week 05-18 has no held session)
    b7  Maria Ana  Sun 05-31 11:00  pending               (ended exactly 1 day ago: 1-3 days)
    b13 Maria Ben  Wed 05-27 10:00  pending               (age 5 days: 3-7 days)
    b8  Otto  Ben  Wed 05-06 10:00  no-show   unattributed
    b9  Otto  Cy   Thu 05-07 10:00  no-show   Mentor  h=4
    b10 Otto  Cy   Thu 05-14 10:00  attended  Mentor  h=0.5
    b11 Otto  Ana  Sun 05-31 20:00  pending               (age 15 hours: <1 day)
    b12 Otto  Ben  Sun 05-31 23:30  13 hours long, not ended at now: left out
Previous period: p1 Maria Ana 04-10 no-show Mentor; p2 Maria Ben 04-20 attended Mentor; p3 Otto Cy 04-21
attended Mentor; p4 Maria Ana 04-06 00:00 attended Mentor (first instant); p5 Otto Ana 04-20 pending;
p0 Maria Ana 04-05 23:00 no-show Mentor (before the previous period: left out).
Discipline now: Ana 1 active warning; Ben 1 revoked warning and 1 lifted reprobation; Cy 1 active warning and
an active reprobation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.analytics import (
    Scope,
    compute_analytics,
    measure_time_to_mark,
    scope_for_actor,
    scope_for_days,
    summarize_no_shows,
    tabulate_mentees,
    tabulate_mentors,
    tally_backlog,
    tally_weeks,
)
from core.audit import Actor
from core.errors import InvalidInput, NotAllowed
from core.models import ActorKind, Booking, BookingStatus, Reprobation, Warning
from tests.factories import add_booking, add_mentee, add_mentor

HOUR = timedelta(hours=1)
MENTOR, ADMIN, SYSTEM = ActorKind.MENTOR, ActorKind.ADMIN, ActorKind.SYSTEM


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def world(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory.begin() as s:
        maria, otto = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other")
        ana, ben, cy = add_mentee(s, "Ana Ruiz"), add_mentee(s, "Ben Bauer"), add_mentee(s, "Cy Chen")

        def marked(mentor: int, mentee: int, start: datetime, attended: bool, by: ActorKind | None, h: float) -> int:
            booking_id = add_booking(s, mentor, mentee, start, attended=attended, marked_by=by)
            booking = s.get_one(Booking, booking_id)
            booking.attendance_marked_at = booking.end_time + timedelta(hours=h) if by is not None else None
            return booking_id

        ids = {"maria": maria, "otto": otto, "ana": ana, "ben": ben, "cy": cy}
        ids["b1"] = marked(maria, ana, at(5, 4, 0), True, MENTOR, 2)
        ids["b2"] = marked(maria, ana, at(5, 5), False, MENTOR, 24)
        ids["b3"] = marked(maria, ben, at(5, 12), True, ADMIN, 30)
        ids["b4"] = marked(maria, ben, at(5, 13), False, SYSTEM, 1)
        ids["b5"] = add_booking(s, maria, cy, at(5, 12, 14))
        ids["b6"] = add_booking(s, maria, cy, at(5, 19), status=BookingStatus.CANCELLED)
        ids["b7"] = add_booking(s, maria, ana, at(5, 31, 11))
        ids["b13"] = add_booking(s, maria, ben, at(5, 27))
        ids["b8"] = marked(otto, ben, at(5, 6), False, None, 0)
        ids["b9"] = marked(otto, cy, at(5, 7), False, MENTOR, 4)
        ids["b10"] = marked(otto, cy, at(5, 14), True, MENTOR, 0.5)
        ids["b11"] = add_booking(s, otto, ana, at(5, 31, 20))
        ids["b12"] = add_booking(s, otto, ben, at(5, 31, 23, 30), hours=13)
        marked(maria, ana, at(4, 10), False, MENTOR, 1)
        marked(maria, ben, at(4, 20), True, MENTOR, 1)
        marked(otto, cy, at(4, 21), True, MENTOR, 1)
        marked(maria, ana, at(4, 6, 0), True, MENTOR, 1)
        add_booking(s, otto, ana, at(4, 20))
        marked(maria, ana, at(4, 5, 23), False, MENTOR, 1)

        now = at(6, 1, 12)
        s.add(Warning(mentee_id=ana, booking_id=ids["b2"], issued_at=now, issued_by=MENTOR))
        s.add(Warning(mentee_id=ben, booking_id=ids["b4"], issued_at=now, issued_by=SYSTEM, revoked_at=now))
        s.add(Warning(mentee_id=cy, booking_id=ids["b9"], issued_at=now, issued_by=MENTOR))
        s.add(Reprobation(mentee_id=ben, booking_id=ids["b4"], issued_at=now, issued_by=SYSTEM, lifted_at=now))
        s.add(Reprobation(mentee_id=cy, booking_id=ids["b9"], issued_at=now, issued_by=MENTOR))
        return ids


MAY = scope_for_days(date(2026, 5, 4), date(2026, 5, 31))


def test_scope_covers_whole_days_and_its_previous_period_has_the_same_length():
    assert (MAY.since, MAY.until) == (at(5, 4, 0), at(6, 1, 0))
    assert (MAY.previous.since, MAY.previous.until) == (at(4, 6, 0), at(5, 4, 0))
    with pytest.raises(InvalidInput, match="empty"):
        scope_for_days(date(2026, 5, 4), date(2026, 5, 3))


def test_counted_rate_leaves_out_automated_marks_pending_and_cancelled_sessions(factory, world, now):
    with factory() as s:
        summary = summarize_no_shows(s, MAY, now=now)
    current = summary.current
    # Held: b1-b5, b7, b8-b11, b13 (b6 cancelled, b12 not ended). Marked by a person: b1, b2, b3, b9, b10.
    assert (current.sessions, current.sessions_marked_by_person, current.no_shows_marked_by_person) == (11, 5, 2)
    assert current.counted_no_show_rate == pytest.approx(2 / 5)
    # The legacy job's claim: b2, b9 and the automated b4 (System) and b8 (unattributed), over all 7 marks.
    assert (current.system_no_shows, current.unattributed_no_shows, current.sessions_marked) == (1, 1, 7)
    assert current.automated_no_show_rate == pytest.approx(4 / 7)
    assert current.pending == 4  # b5, b7, b11, b13


def test_previous_period_starts_at_its_first_instant_and_ends_before_the_scope(factory, world, now):
    with factory() as s:
        previous = summarize_no_shows(s, MAY, now=now).previous
    # p1 (no-show), p2, p3, p4 marked by a mentor; p5 pending; p0 falls before the period.
    assert (previous.sessions_marked_by_person, previous.no_shows_marked_by_person, previous.pending) == (4, 1, 1)
    assert previous.counted_no_show_rate == pytest.approx(1 / 4)
    assert (previous.since, previous.until) == (at(4, 6, 0), at(5, 4, 0))


def test_one_mentor_sees_only_their_sessions(factory, world, now):
    with factory() as s:
        summary = summarize_no_shows(s, Scope(MAY.since, MAY.until, world["maria"]), now=now)
    # Maria: b1, b2, b3 by a person (b2 a no-show); b4 by System; pending b5, b7, b13. Previous: p1, p2, p4.
    assert (summary.current.sessions, summary.current.sessions_marked_by_person) == (7, 3)
    assert summary.current.counted_no_show_rate == pytest.approx(1 / 3)
    assert summary.current.automated_no_show_rate == pytest.approx(2 / 4)
    assert summary.current.pending == 3
    assert summary.previous.counted_no_show_rate == pytest.approx(1 / 3)


def test_nothing_marked_gives_no_rate(factory, world, now):
    with factory() as s:
        summary = summarize_no_shows(s, scope_for_days(date(2026, 1, 5), date(2026, 1, 11)), now=now)
    assert summary.current.sessions == 0
    assert (summary.current.counted_no_show_rate, summary.current.automated_no_show_rate) == (None, None)


def test_per_mentor_table_with_estimated_medians(factory, world, now):
    with factory() as s:
        rows = tabulate_mentors(s, MAY, now=now)
    table = {r.mentor: r for r in rows}
    assert [r.mentor for r in rows] == ["Maria Mentor", "Otto Other"]
    maria, otto = table["Maria Mentor"], table["Otto Other"]
    assert (maria.sessions, maria.marked, maria.attended, maria.no_shows, maria.automated_marks, maria.pending) == (
        7,
        3,
        2,
        1,
        1,
        3,
    )
    assert maria.rate == pytest.approx(1 / 3)
    # Marks at 2, 24 and 30 hours: the middle one is the first of the two in the 24-36 hour bin, estimated at 27.
    assert maria.median_hours_to_mark == pytest.approx(27)
    assert (otto.sessions, otto.marked, otto.attended, otto.no_shows, otto.automated_marks, otto.pending) == (
        4,
        2,
        1,
        1,
        1,
        1,
    )
    assert otto.rate == pytest.approx(1 / 2)
    # Marks at 0.5 and 4 hours: the mean of the middles of their bins, 0.5-1 and 4-6 hours.
    assert otto.median_hours_to_mark == pytest.approx((0.75 + 5) / 2)


def test_per_mentor_table_sorts_by_any_column(factory, world, now):
    with factory() as s:
        by_rate = tabulate_mentors(s, MAY, now=now, sort_by="rate", descending=True)
        by_pending = tabulate_mentors(s, MAY, now=now, sort_by="pending")
        with pytest.raises(InvalidInput, match="cannot sort by 'nonsense'"):
            tabulate_mentors(s, MAY, now=now, sort_by="nonsense")
    assert [r.mentor for r in by_rate] == ["Otto Other", "Maria Mentor"]
    assert [r.mentor for r in by_pending] == ["Otto Other", "Maria Mentor"]


def test_per_mentee_table_with_discipline_now(factory, world, now):
    with factory() as s:
        rows = tabulate_mentees(s, MAY, now=now)
    got = {r.mentee: (r.sessions, r.marked, r.no_shows, r.pending, r.warnings, r.reprobated) for r in rows}
    assert got == {
        "Ana Ruiz": (4, 2, 1, 2, 1, False),  # b1, b2 (no-show), b7, b11
        "Ben Bauer": (4, 1, 0, 1, 0, False),  # b3, b4 (System), b8 (unattributed), b13; revoked and lifted
        "Cy Chen": (3, 2, 1, 1, 1, True),  # b5, b9 (no-show), b10
    }
    assert {r.mentee: r.rate for r in rows} == {"Ana Ruiz": 0.5, "Ben Bauer": 0.0, "Cy Chen": 0.5}


def test_per_mentee_table_sorts_empty_rates_last_both_ways(factory, world, now):
    maria = Scope(MAY.since, MAY.until, world["maria"])
    with factory() as s:
        ascending = tabulate_mentees(s, maria, now=now, sort_by="rate")
        descending = tabulate_mentees(s, maria, now=now, sort_by="rate", descending=True)
        top = tabulate_mentees(s, MAY, now=now, sort_by="sessions", descending=True, limit=2)
    # With Maria only: Ana 1/2, Ben 0/1, Cy nothing marked (b5 pending).
    assert [(r.mentee, r.rate) for r in ascending] == [("Ben Bauer", 0.0), ("Ana Ruiz", 0.5), ("Cy Chen", None)]
    assert [r.mentee for r in descending] == ["Ana Ruiz", "Ben Bauer", "Cy Chen"]
    assert [r.mentee for r in top] == ["Ana Ruiz", "Ben Bauer"]  # 4 sessions each, then by name


def test_weekly_series_starts_on_mondays_and_keeps_empty_weeks(factory, world, now):
    with factory() as s:
        weeks = tally_weeks(s, MAY, now=now)
    assert [w.week for w in weeks] == [date(2026, 5, 4), date(2026, 5, 11), date(2026, 5, 18), date(2026, 5, 25)]
    first, second, empty, last = weeks
    # b1, b2, b9 by a mentor (b2, b9 no-shows) and b8 unattributed.
    assert (first.sessions, first.sessions_marked_by_person, first.no_shows_marked_by_person) == (4, 3, 2)
    assert first.counted_no_show_rate == pytest.approx(2 / 3)
    assert first.automated_no_show_rate == pytest.approx(3 / 4)
    assert (first.marks_mentor, first.marks_admin, first.marks_system, first.marks_unattributed) == (3, 0, 0, 1)
    # b3 (Admin), b10 (Mentor), b4 (System), b5 pending.
    assert (second.marks_mentor, second.marks_admin, second.marks_system, second.marks_unattributed) == (1, 1, 1, 0)
    assert (second.counted_no_show_rate, second.pending) == (0.0, 1)
    assert (empty.sessions, empty.counted_no_show_rate) == (0, None)
    # b13 (Wednesday) and b7, b11 (Sunday: still the week of Monday 05-25), all pending.
    assert (last.sessions, last.pending, last.counted_no_show_rate) == (3, 3, None)


def test_backlog_by_age_and_by_mentor(factory, world, now):
    with factory() as s:
        backlog = tally_backlog(s, MAY, now=now)
        wider = tally_backlog(s, scope_for_days(date(2026, 3, 1), date(2026, 6, 1)), now=now)
    assert backlog.by_age == {"<1 day": 1, "1-3 days": 1, "3-7 days": 1, "7-30 days": 1, ">30 days": 0}
    assert backlog.total == 4
    assert [(r.mentor, r.pending, r.oldest_end_time) for r in backlog.by_mentor] == [
        ("Maria Mentor", 3, at(5, 12, 15)),
        ("Otto Other", 1, at(5, 31, 21)),
    ]
    assert backlog.by_mentor[0].by_age["1-3 days"] == 1  # b7 ended exactly one day ago
    # Since March: p5 (ended 42 days ago) joins Otto's; b12 has not ended.
    assert wider.by_age[">30 days"] == 1
    assert [(r.mentor, r.pending) for r in wider.by_mentor] == [("Maria Mentor", 3), ("Otto Other", 2)]


def test_time_to_mark_distribution_and_median(factory, world, now):
    with factory() as s:
        everyone = measure_time_to_mark(s, MAY, now=now)
        otto = measure_time_to_mark(s, Scope(MAY.since, MAY.until, world["otto"]), now=now)
    # Marks by a person: 0.5, 2, 4, 24, 30 hours (the System and unattributed marks are not timed).
    assert everyone.marks == 5
    assert everyone.by_bucket == {
        "<1 hour": 1,
        "1-24 hours": 2,
        "1-3 days": 2,  # 24 hours exactly is a day
        "3-7 days": 0,
        "7-30 days": 0,
        ">30 days": 0,
    }
    # The middle mark (4 hours) is alone in the 4-6 hour bin: estimated at its middle.
    assert everyone.median_hours == pytest.approx(5)
    assert otto.median_hours == pytest.approx((0.75 + 5) / 2)


def test_a_mentor_actor_is_held_to_their_own_sessions():
    maria = Actor(ActorKind.MENTOR, "maria", 7)
    assert scope_for_actor(maria, MAY).mentor_id == 7
    assert scope_for_actor(Actor(ActorKind.ADMIN, "root"), MAY).mentor_id is None
    with pytest.raises(NotAllowed):
        scope_for_actor(maria, Scope(MAY.since, MAY.until, 8))


def test_compute_analytics_gathers_every_figure(factory, world, now):
    with factory() as s:
        analytics = compute_analytics(s, MAY, now=now, mentee_sort="no_shows", mentee_descending=True)
    assert analytics.summary.current.pending == analytics.backlog.total == 4
    assert sum(r.sessions for r in analytics.by_mentor) == analytics.summary.current.sessions
    assert [r.mentee for r in analytics.by_mentee][-1] == "Ben Bauer"
    assert len(analytics.weekly) == 4


def test_the_mentees_with_most_no_shows_are_the_first_of_the_whole_order(factory, now):
    """The Analytics page's order (most no-shows first) is found from the no-shows alone when enough mentees have
    one; the rows are those of the whole table, ties broken by name alike."""
    with factory() as s:
        maria, otto = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other")
        start = at(5, 4)
        for i in range(24):
            mentee = add_mentee(s, f"Mentee {23 - i:02d}")
            # 0 to 3 counted no-shows each, by a mentor or an admin; System's, cancelled and pending ones beside.
            for j in range(i % 4):
                add_booking(
                    s,
                    maria,
                    mentee,
                    start + timedelta(days=j, hours=i),
                    attended=False,
                    marked_by=MENTOR if j % 2 == 0 else ADMIN,
                )
            automated = add_booking(
                s, otto, mentee, start + timedelta(days=5, hours=i), attended=False, marked_by=SYSTEM
            )
            add_booking(s, otto, mentee, start + timedelta(days=6, hours=i), attended=True, marked_by=MENTOR)
            add_booking(s, otto, mentee, start + timedelta(days=7, hours=i))
            add_booking(
                s,
                maria,
                mentee,
                start + timedelta(days=8, hours=i),
                attended=False,
                marked_by=MENTOR,
                status=BookingStatus.CANCELLED,
            )
            if i % 5 == 0:
                s.add(Warning(mentee_id=mentee, booking_id=automated, issued_at=now, issued_by=SYSTEM))
        s.commit()
    scope = Scope(at(5, 1, 0), at(6, 1, 0))
    with factory() as s:
        whole = tabulate_mentees(s, scope, now=now, sort_by="no_shows", descending=True)
        for limit in (1, 6, 12, 18):  # 18 mentees have a no-show: each limit takes the quick path
            assert (
                tabulate_mentees(s, scope, now=now, sort_by="no_shows", descending=True, limit=limit) == whole[:limit]
            )
        # More than have a no-show: the rest of the order is mentees without one, by name.
        assert tabulate_mentees(s, scope, now=now, sort_by="no_shows", descending=True, limit=20) == whole[:20]
    assert [r.no_shows for r in whole[:7]] == [3] * 6 + [2]
    assert [r.mentee for r in whole[:6]] == sorted(r.mentee for r in whole[:6])
