"""A mentor's lists: pending (oldest first), recently marked, upcoming, and the summary on top."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.errors import NotFound
from core.models import ActorKind, Booking, BookingStatus, Role
from core.queries import get_booking, mentor_summary, pending_bookings, recently_marked, upcoming_bookings
from tests.factories import add_booking, add_mentee, add_mentor, add_user

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def mark(session: Session, booking_id: int, attended: bool, kind: ActorKind, name: str, at: datetime) -> None:
    booking = session.get_one(Booking, booking_id)
    booking.attended, booking.attendance_marked_by = attended, kind
    booking.attendance_marked_by_name, booking.attendance_marked_at = name, at


@pytest.fixture
def world(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """`now` is Monday 12:00 UTC. Maria (user `maria`) and Otto (no user) with sessions in every state."""
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        otto = add_mentor(s, "Otto Other")
        add_user(s, "maria", Role.MENTOR, mentor_id=maria, created_at=now)
        ana, ben = add_mentee(s, "Ana Ruiz"), add_mentee(s, "Ben Okafor")
        ids = {
            "maria": maria,
            "otto": otto,
            "reverted": add_booking(s, maria, ana, now - 8 * DAY),
            "old": add_booking(s, maria, ana, now - 5 * DAY),
            "otto_two_days": add_booking(s, otto, ana, now - 2 * DAY - HOUR),  # ended exactly 2 days ago
            "recent": add_booking(s, maria, ben, now - 3 * HOUR),
            "ended_now": add_booking(s, maria, ana, now - HOUR),
            "in_progress": add_booking(s, maria, ben, now - HOUR / 2),
            "cancelled": add_booking(s, maria, ben, now - 4 * DAY, status=BookingStatus.CANCELLED),
            "attended_last_week": add_booking(s, maria, ana, now - 6 * DAY),
            "admin_no_show": add_booking(s, maria, ben, now - 10 * HOUR),
            "system_no_show": add_booking(s, maria, ben, now - 7 * DAY),
            "soon": add_booking(s, maria, ben, now + 2 * HOUR),
            "later": add_booking(s, maria, ana, now + DAY),
            "cancelled_future": add_booking(s, maria, ana, now + 3 * HOUR, status=BookingStatus.CANCELLED),
            "otto_future": add_booking(s, otto, ben, now + HOUR),
        }
        s.get_one(Booking, ids["reverted"]).attendance_reverted_at = now - DAY
        mark(s, ids["attended_last_week"], True, ActorKind.MENTOR, "maria", now - 6 * DAY + 2 * HOUR)
        mark(s, ids["admin_no_show"], False, ActorKind.ADMIN, "root", now - HOUR)
        mark(s, ids["system_no_show"], False, ActorKind.SYSTEM, "mentorship:process-absences", now - 2 * HOUR)
        return ids


def ids_of(rows) -> list[int]:
    return [row.booking_id for row in rows]


def test_pending_sessions_are_the_ended_unmarked_scheduled_ones_oldest_first(factory, world, now):
    with factory() as s:
        rows = pending_bookings(s, now=now)
    assert ids_of(rows) == [world[k] for k in ("reverted", "old", "otto_two_days", "recent", "ended_now")]
    by_id = {row.booking_id: row for row in rows}
    old = by_id[world["old"]]
    assert (old.mentor, old.mentor_name, old.mentee, old.pending_hours) == ("maria", "Maria Mentor", "Ana Ruiz", 119.0)
    assert by_id[world["otto_two_days"]].mentor == "Otto Other"  # no username: the mentor's name
    assert by_id[world["ended_now"]].pending_hours == 0.0
    assert [row.reverted for row in rows] == [True, False, False, False, False]


def test_pending_sessions_filter_by_mentor_and_by_age(factory, world, now):
    with factory() as s:
        mine = pending_bookings(s, now=now, mentor_id=world["maria"])
        two_days = pending_bookings(s, now=now, older_than=2 * DAY)
        first = pending_bookings(s, now=now, limit=1)
    assert ids_of(mine) == [world[k] for k in ("reverted", "old", "recent", "ended_now")]
    assert ids_of(two_days) == [world[k] for k in ("reverted", "old", "otto_two_days")]
    assert ids_of(first) == [world["reverted"]]


def test_recently_marked_shows_the_latest_marks_first_whoever_made_them(factory, world, now):
    with factory() as s:
        rows = recently_marked(s, mentor_id=world["maria"], now=now)
        top = recently_marked(s, mentor_id=world["maria"], now=now, limit=1)
    assert ids_of(rows) == [world[k] for k in ("admin_no_show", "system_no_show", "attended_last_week")]
    assert [(r.attended, r.attendance_marked_by, r.attendance_marked_by_name) for r in rows] == [
        (False, ActorKind.ADMIN, "root"),
        (False, ActorKind.SYSTEM, "mentorship:process-absences"),
        (True, ActorKind.MENTOR, "maria"),
    ]
    assert all(row.pending_hours is None for row in rows)
    assert ids_of(top) == [world["admin_no_show"]]


def test_upcoming_sessions_are_the_scheduled_ones_not_started_soonest_first(factory, world, now):
    with factory() as s:
        rows = upcoming_bookings(s, mentor_id=world["maria"], now=now)
        first = upcoming_bookings(s, mentor_id=world["maria"], now=now, limit=1)
    assert ids_of(rows) == [world["soon"], world["later"]]
    assert ids_of(first) == [world["soon"]]


def test_the_summary_counts_what_waits_and_what_a_person_marked_since_monday(factory, world, now):
    with factory() as s:
        summary = mentor_summary(s, mentor_id=world["maria"], now=now)
        otto = mentor_summary(s, mentor_id=world["otto"], now=now)
    assert summary.pending_count == 4
    assert summary.oldest_pending_age == 8 * DAY - HOUR
    assert summary.oldest_pending_hours == 191.0
    # The admin's mark this Monday counts; last week's mark and the System stamp do not.
    assert summary.marked_this_week == 1
    assert (otto.pending_count, otto.oldest_pending_age, otto.marked_this_week) == (1, 2 * DAY, 0)


def test_a_mentor_with_nothing_waiting_has_an_empty_summary(factory, now):
    with factory.begin() as s:
        mentor = add_mentor(s, "Nina New")
    with factory() as s:
        summary = mentor_summary(s, mentor_id=mentor, now=now)
        assert pending_bookings(s, now=now, mentor_id=mentor) == []
    assert (summary.pending_count, summary.oldest_pending_age, summary.oldest_pending_hours) == (0, None, None)


def test_one_booking_reads_like_a_row_of_the_lists(factory, world, now):
    with factory() as s:
        row = get_booking(s, world["in_progress"], now=now)
        with pytest.raises(NotFound, match="booking 999999 does not exist"):
            get_booking(s, 999_999, now=now)
    assert (row.mentor, row.mentee, row.attended, row.pending_hours) == ("maria", "Ben Okafor", None, None)


def test_the_mentor_lists_follow_the_bookings_indexes(sqlite_engine, sqlite_factory, now):
    """On a million bookings these must stay index searches: read SQLite's plan of the SQL they really send."""
    sent: list[tuple[str, tuple[object, ...]]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany):
        sent.append((statement, parameters))

    expected = {
        "ix_bookings_mentor_pending": lambda s: pending_bookings(s, now=now, mentor_id=1),
        "ix_bookings_mentor_slot": lambda s: upcoming_bookings(s, mentor_id=1, now=now),
    }
    with sqlite_factory() as s:
        for index, query in expected.items():
            sent.clear()
            sa.event.listen(sqlite_engine, "before_cursor_execute", capture)
            try:
                query(s)
            finally:
                sa.event.remove(sqlite_engine, "before_cursor_execute", capture)
            statement, parameters = sent[-1]
            plan = " | ".join(
                row[-1] for row in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert f"SEARCH bookings USING INDEX {index}" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
