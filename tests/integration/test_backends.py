"""What the three databases must agree on: the schema, times, enums and the append-only audit log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from core.db import alembic_config, init_db, make_engine, schema_is_current
from core.models import ActorKind, AuditEntry, Base, Booking, BookingStatus, Mentor
from tests.databases import BACKENDS, fresh_server_database
from tests.factories import add_booking, add_mentee, add_mentor

TABLES = set(Base.metadata.tables)  # every table the models declare


@contextmanager
def empty_database(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on a new database of `backend` with no schema at all."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_server_database(backend) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_migrations_build_the_schema_and_can_be_undone(backend, tmp_path):
    with empty_database(backend, tmp_path) as engine:
        assert not schema_is_current(engine)
        init_db(engine)
        assert schema_is_current(engine)
        assert tables(engine) == TABLES
        command.downgrade(alembic_config(engine), "base")
        assert tables(engine) == set()
        init_db(engine)
        assert schema_is_current(engine)


def test_init_twice_changes_nothing(engine: sa.Engine, factory: sessionmaker[Session]):
    with factory.begin() as s:
        mentor = add_mentor(s, "Maria Mentor")
    init_db(engine)
    assert schema_is_current(engine)
    assert tables(engine) == TABLES
    with factory() as s:
        assert s.get_one(Mentor, mentor).name == "Maria Mentor"


def test_times_come_back_timezone_aware_in_utc_to_the_microsecond(factory, now):
    madrid_summer = timezone(timedelta(hours=2))
    start = datetime(2026, 5, 31, 16, 30, 15, 123456, tzinfo=madrid_summer)
    with factory.begin() as s:
        booking = add_booking(s, add_mentor(s), add_mentee(s), start)
    with factory() as s:
        stored = s.get_one(Booking, booking)
        assert stored.start_time == start
        assert stored.start_time.tzinfo is UTC
        assert (stored.start_time.hour, stored.start_time.microsecond) == (14, 123456)
        # Compared in SQL, in UTC, whatever zone the value was given in.
        assert s.scalar(sa.select(Booking.id).where(Booking.start_time == start.astimezone(UTC))) == booking
        assert s.scalar(sa.select(Booking.id).where(Booking.end_time <= start + timedelta(hours=1))) == booking
        assert s.scalar(sa.select(Booking.id).where(Booking.end_time <= start)) is None


def test_a_naive_time_is_refused(factory, now):
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), factory.begin() as s:
        add_booking(s, add_mentor(s), add_mentee(s), datetime(2026, 5, 31, 16, 30))


def test_enums_are_stored_by_their_value(factory, now):
    with factory.begin() as s:
        booking = add_booking(
            s,
            add_mentor(s),
            add_mentee(s),
            now - timedelta(days=1),
            attended=False,
            marked_by=ActorKind.MENTOR,
            status=BookingStatus.CANCELLED,
        )
    with factory() as s:
        row = s.execute(
            sa.text("SELECT status, attendance_marked_by FROM bookings WHERE id = :id"), {"id": booking}
        ).one()
    assert tuple(row) == ("cancelled", "Mentor")


def test_the_database_refuses_a_value_outside_an_enum(factory, now):
    with factory.begin() as s:
        booking = add_booking(s, add_mentor(s), add_mentee(s), now - timedelta(days=1))
    with pytest.raises(sa.exc.DBAPIError, match="ck_bookings_marked_by_kind"), factory.begin() as s:
        s.execute(sa.text("UPDATE bookings SET attendance_marked_by = 'Cron' WHERE id = :id"), {"id": booking})


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor_name = 'someone else'", "DELETE FROM audit_log"],
    ids=["update", "delete"],
)
def test_the_audit_log_refuses_changes_even_in_plain_sql(factory, now, statement):
    with factory.begin() as s:
        s.add(
            AuditEntry(
                operation_id="op-1",
                at=now,
                actor_kind=ActorKind.MENTOR,
                actor_name="maria",
                action="attendance.mark",
                target_type="booking",
                target_id=1,
                before=None,
                after={"attended": False},
            )
        )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), factory.begin() as s:
        s.execute(sa.text(statement))
    with factory() as s:
        entry = s.scalars(sa.select(AuditEntry)).one()
        assert (entry.actor_name, entry.after) == ("maria", {"attended": False})
