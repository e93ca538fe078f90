"""The attendance tallies (migration 0003) stay equal to a count of the bookings through every kind of write, on
every backend, whoever writes: the triggers run in the writer's transaction."""

from __future__ import annotations

import bisect
import importlib.util
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_no_show
from core.audit import Actor
from core.config import Policy
from core.db import alembic_config, init_db, make_engine, make_session_factory
from core.models import (
    ATTENDANCE_COUNTS,
    FOUR_WEEKS_FROM,
    HOURS_TO_MARK_EDGES,
    TIME_TO_MARK_BINS,
    ActorKind,
    Booking,
    BookingStatus,
    attendance_tallies,
    four_week_attendance_tallies,
    weekly_attendance_tallies,
)
from tests.databases import BACKENDS, fresh_server_database
from tests.factories import add_booking, add_mentee, add_mentor

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)  # a Wednesday
HOUR = timedelta(hours=1)
MIGRATION = Path(__file__).parents[2] / "core" / "migrations" / "versions" / "0003_attendance_tallies.py"


def expected_tallies(session: Session) -> dict[tuple[int, date], Counter[str]]:
    """The counts worked out from the bookings in Python, as migration 0003 defines them."""
    tallies: dict[tuple[int, date], Counter[str]] = {}
    for b in session.scalars(sa.select(Booking).where(Booking.status == BookingStatus.SCHEDULED)):
        start = b.start_time.astimezone(UTC)
        counts = tallies.setdefault((b.mentor_id, start.date() - timedelta(days=start.weekday())), Counter())
        counts["sessions"] += 1
        if b.attended is None:
            counts["pending"] += 1
            continue
        kind = "unattributed" if b.attendance_marked_by is None else b.attendance_marked_by.value.lower()
        counts[f"{kind}_{'attended' if b.attended else 'no_shows'}"] += 1
        if b.attendance_marked_by in (ActorKind.MENTOR, ActorKind.ADMIN) and b.attendance_marked_at is not None:
            hours = (b.attendance_marked_at - b.end_time).total_seconds() / 3600
            counts[TIME_TO_MARK_BINS[bisect.bisect_right(HOURS_TO_MARK_EDGES, hours)]] += 1
    return tallies


def tallies_in_database(session: Session, table: sa.Table = attendance_tallies) -> dict[Any, Counter[str]]:
    found = {}
    for row in session.execute(sa.select(table)).mappings():
        counts = Counter({name: row[name] for name in ATTENDANCE_COUNTS + TIME_TO_MARK_BINS if row[name]})
        assert all(value > 0 for value in counts.values()), f"a negative count: {dict(row)}"
        if counts:
            week = row["week"] if isinstance(row["week"], date) else date.fromisoformat(str(row["week"]))
            found[(row["mentor_id"], week) if "mentor_id" in row else week] = counts
    return found


def assert_tallies_match(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        expected = expected_tallies(s)
        assert tallies_in_database(s) == expected
        weekly: dict[date, Counter[str]] = {}
        for (_, week), counts in expected.items():
            weekly.setdefault(week, Counter()).update(counts)
        assert tallies_in_database(s, weekly_attendance_tallies) == weekly
        four_weekly: dict[tuple[int, date], Counter[str]] = {}
        for (mentor, week), counts in expected.items():
            span = week - timedelta(days=(week - FOUR_WEEKS_FROM).days % 28)
            four_weekly.setdefault((mentor, span), Counter()).update(counts)
        assert tallies_in_database(s, four_week_attendance_tallies) == four_weekly


def history(s: Session) -> dict[str, Any]:
    """Two mentors, three mentees, sessions over four weeks with marks of every kind and every time to mark."""
    maria, otto = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other")
    ana, ben, cy = add_mentee(s, "Ana Ruiz"), add_mentee(s, "Ben Bo"), add_mentee(s, "Cy Cole")
    ids: dict[str, Any] = {"maria": maria, "otto": otto, "ana": ana, "ben": ben, "cy": cy}
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a Monday
    kinds = [ActorKind.MENTOR, ActorKind.ADMIN, ActorKind.SYSTEM, None]
    past = []
    for i in range(24):
        begins = start + timedelta(days=i, hours=i % 5)
        attended = None if i % 6 == 5 else i % 3 != 0
        booking = add_booking(
            s,
            (maria, otto)[i % 2],
            (ana, ben, cy)[i % 3],
            begins,
            attended=attended,
            marked_by=kinds[i % 4] if attended is not None else None,
        )
        if attended is not None:
            # Marks from before the end to weeks after it, on the bin edges too (24 h is the 24-36 h bin's).
            delay = [-0.5, 0, 0.25, 1, 11.5, 24, 36, 100, 720, 900][i % 10]
            s.get_one(Booking, booking).attendance_marked_at = begins + HOUR + timedelta(hours=delay)
        past.append(booking)
    ids["past"] = past
    ids["future"] = [add_booking(s, maria, ana, NOW + timedelta(days=d)) for d in (2, 9, 16)]
    ids["cancelled"] = add_booking(s, otto, ben, start + timedelta(days=3), status=BookingStatus.CANCELLED)
    s.commit()
    return ids


def test_the_tallies_follow_every_kind_of_booking_write(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        ids = history(s)
    assert_tallies_match(factory)

    with factory() as s:
        # A mark, a reset, a change of attribution, of mentor, of week, of end; a cancellation and a restore.
        first, second, third, fourth, fifth, sixth = (s.get_one(Booking, ids["past"][i]) for i in (5, 6, 7, 8, 9, 13))
        first.attended, first.attendance_marked_by, first.attendance_marked_at = True, ActorKind.MENTOR, NOW
        second.attended, second.attendance_marked_by, second.attendance_marked_at = None, None, None
        third.attendance_marked_by = None
        fourth.mentor_id = ids["maria"] if fourth.mentor_id == ids["otto"] else ids["otto"]
        fifth.start_time, fifth.end_time = fifth.start_time - timedelta(days=7), fifth.end_time - timedelta(days=7)
        sixth.end_time = sixth.end_time + 30 * HOUR  # an Admin's mark an hour after the end: now before it
        s.get_one(Booking, ids["past"][12]).status = BookingStatus.CANCELLED
        s.get_one(Booking, ids["cancelled"]).status = BookingStatus.SCHEDULED
        s.commit()
    assert_tallies_match(factory)

    with factory() as s:
        # Set-based writes, as the revert makes them, and deletes.
        s.execute(
            sa.update(Booking)
            .where(Booking.attendance_marked_by == ActorKind.SYSTEM)
            .values(attended=None, attendance_marked_by=None, attendance_marked_at=None)
        )
        s.execute(sa.delete(Booking).where(Booking.id.in_(ids["past"][:2])))
        s.commit()
    assert_tallies_match(factory)

    with factory() as s:
        # A rolled-back write leaves the tallies as they were.
        s.execute(sa.update(Booking).values(status=BookingStatus.CANCELLED))
        s.rollback()
    assert_tallies_match(factory)

    with factory() as s:
        # The product's own path: a no-show that reprobates Ana and cancels her future sessions.
        pending = [b for b in ids["past"][2:] if s.get_one(Booking, b).attended is None]
        for booking in pending[:2]:
            s.get_one(Booking, booking).mentee_id = ids["ana"]
            s.commit()
            mentor = s.get_one(Booking, booking).mentor_id
            mark_no_show(s, booking, actor=Actor(ActorKind.MENTOR, "m", mentor), now=NOW, policy=Policy())
            s.commit()
        assert s.scalar(sa.select(sa.func.count()).where(Booking.id.in_(ids["future"]), Booking.status == "cancelled"))
    assert_tallies_match(factory)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, its own (the upgrade below starts from an older schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_server_database(request.param) as url:
        yield url


def test_the_upgrade_counts_the_bookings_already_there(database_url: str) -> None:
    engine = make_engine(database_url)
    command.upgrade(alembic_config(engine), "0002")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO mentors (id, name, active) VALUES (1, 'Maria', true), (2, 'Otto', true)"
        )
        connection.exec_driver_sql("INSERT INTO mentees (id, name) VALUES (1, 'Ana')")
    factory = make_session_factory(engine)
    with factory() as s:
        for i in range(30):
            begins = datetime(2026, 4, 1, 8, tzinfo=UTC) + timedelta(days=i * 2, hours=i)
            booking = add_booking(
                s,
                1 + i % 2,
                1,
                begins,
                attended=(None, True, False)[i % 3],
                marked_by=(ActorKind.MENTOR, ActorKind.SYSTEM)[i % 2] if i % 3 else None,
                status=BookingStatus.CANCELLED if i % 7 == 0 else BookingStatus.SCHEDULED,
            )
            if i % 3:
                s.get_one(Booking, booking).attendance_marked_at = begins + timedelta(hours=i * 3)
        s.commit()
    init_db(engine)
    assert_tallies_match(factory)
    with factory() as s:
        assert sum(c["sessions"] for c in tallies_in_database(s).values()) == 25
    engine.dispose()


def test_the_migration_counts_what_the_analytics_read() -> None:
    spec = importlib.util.spec_from_file_location("migration_0003", MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.EDGES == HOURS_TO_MARK_EDGES
    assert migration._count_names() == list(ATTENDANCE_COUNTS + TIME_TO_MARK_BINS)
