"""The CSV history: import into an empty database, export in the same format, refuse bad input whole."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.csvio import FILES, InvalidHistory, Problem, export_history, import_history
from core.db import make_session_factory
from core.errors import InvalidAction
from core.misfire import report_misfire
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Mentee, Mentor, Warning
from tests.databases import empty_tables, migrated_engine
from tests.factories import add_mentor

BOOKINGS_HEADER = (
    "id,mentor_id,mentee_id,start_time,end_time,status,attended,attendance_marked_by,attendance_marked_at,"
    "cancelled_at,cancelled_by,cancellation_reason,reprobation_id"
)
VALID = {
    "mentors.csv": "id,name,email,active\n10,Maria Mentor,maria@example.org,true\n20,Gus Gone,,false\n",
    "mentees.csv": 'id,name,email\n7,"Ruiz, Ana ""Anita""",ana@example.org\n8,Bea,\n',
    "bookings.csv": BOOKINGS_HEADER
    + "\n"
    + "1,10,7,2026-05-01T10:00:00Z,2026-05-01T11:00:00Z,scheduled,false,Mentor,2026-05-01T12:00:00Z,,,,\n"
    + "2,10,7,2026-05-10T10:00:00Z,2026-05-10T11:00:00Z,scheduled,false,System,2026-05-10T12:00:00.25Z,,,,\n"
    + "3,10,7,2026-06-10T10:00:00+02:00,2026-06-10T11:00:00+02:00,cancelled,,,,"
    + "2026-05-10T12:00:00Z,System,reprobation,1\n"
    + "4,20,8,2026-05-20T10:00:00Z,2026-05-20T11:00:00Z,scheduled,,,,,,,\n",
    "warnings.csv": "id,mentee_id,booking_id,issued_at,issued_by,revoked_at\n1,7,1,2026-05-01T12:00:00Z,Mentor,\n",
    "reprobations.csv": "id,mentee_id,booking_id,issued_at,issued_by,lifted_at\n1,7,2,2026-05-10T12:00:00Z,System,\n",
}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def read(directory: Path) -> dict[str, bytes]:
    return {spec.name: (directory / spec.name).read_bytes() for spec in FILES}


def count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model)) or 0


@contextmanager
def another_empty_database(engine: sa.Engine, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A second empty database on the same backend (a server's test database is emptied and reused)."""
    if engine.dialect.name == "sqlite":
        with migrated_engine("sqlite", tmp_path / "second") as second:
            yield make_session_factory(second)
        return
    empty_tables(engine)
    yield make_session_factory(engine)


def test_export_then_import_then_export_is_identical(factory, engine, now, tmp_path):
    with factory.begin() as s:
        imported = import_history(s, write(tmp_path / "given", VALID), now=now)
    assert imported.counts.bookings == 4
    with factory() as s:
        first = export_history(s, tmp_path / "first")
        # The ids are the files' own.
        assert sorted(s.scalars(sa.select(Mentor.id))) == [10, 20]
        three = s.get_one(Booking, 3)
        assert (three.status, three.reprobation_id, three.start_time) == (
            BookingStatus.CANCELLED,
            1,
            datetime(2026, 6, 10, 8, tzinfo=UTC),
        )
    assert first.counts == imported.counts
    exported = read(tmp_path / "first")
    assert exported["mentees.csv"].decode() == VALID["mentees.csv"]
    assert b"2026-06-10T08:00:00Z" in exported["bookings.csv"]
    assert b"2026-05-10T12:00:00.250000Z" in exported["bookings.csv"]

    with another_empty_database(engine, tmp_path) as second:
        with second.begin() as s:
            import_history(s, tmp_path / "first", now=now)
        with second() as s:
            export_history(s, tmp_path / "again")
        assert read(tmp_path / "again") == exported
        # New rows get fresh ids after the imported ones (PostgreSQL's sequences were moved on).
        with second.begin() as s:
            assert add_mentor(s, "Nina New") > 20


def test_imported_history_is_taken_as_it_was_and_can_be_audited(factory, now, tmp_path):
    with factory.begin() as s:
        result = import_history(s, write(tmp_path / "given", VALID), now=now)
    with factory() as s:
        entries = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "history.import")).all()
        report = report_misfire(s, now=now)
    assert {e.target_type for e in entries} == {"mentors", "mentees", "bookings", "warnings", "reprobations"}
    assert {(e.operation_id, e.actor_kind, e.actor_name) for e in entries} == {
        (result.operation_id, ActorKind.SYSTEM, "mentorship-cli")
    }
    # The policy was not re-run: the System reprobation and its cancellation are there to be reverted.
    assert [r.id for r in report.reprobations] == [1]
    assert [c.booking_id for c in report.cancelled_bookings] == [3]
    assert count(factory, Warning) == 1


def test_a_dry_run_checks_everything_and_writes_nothing(factory, now, tmp_path):
    with factory.begin() as s:
        result = import_history(s, write(tmp_path / "given", VALID), now=now, dry_run=True)
    assert (result.dry_run, result.operation_id, result.counts.mentors, result.counts.reprobations) == (
        True,
        None,
        2,
        1,
    )
    assert count(factory, Booking) == count(factory, AuditEntry) == 0


def test_a_database_with_history_is_refused(factory, now, tmp_path):
    with factory.begin() as s:
        add_mentor(s)
    with pytest.raises(InvalidAction, match="only into an empty database"), factory.begin() as s:
        import_history(s, write(tmp_path / "given", VALID), now=now)
    assert count(factory, Mentee) == 0


def replace_in(name: str, old: str, new: str) -> dict[str, str]:
    assert old in VALID[name]
    return {**VALID, name: VALID[name].replace(old, new, 1)}


BAD = {
    "missing file": ({k: v for k, v in VALID.items() if k != "warnings.csv"}, ("warnings.csv", None, None)),
    "missing column": (replace_in("mentees.csv", "id,name,email", "id,name"), ("mentees.csv", 1, "email")),
    "unparseable time": (
        replace_in("bookings.csv", "2026-05-01T10:00:00Z", "yesterday"),
        ("bookings.csv", 2, "start_time"),
    ),
    "time without offset": (
        replace_in("warnings.csv", "2026-05-01T12:00:00Z", "2026-05-01T12:00:00"),
        ("warnings.csv", 2, "issued_at"),
    ),
    "unknown attended": (
        replace_in("bookings.csv", "scheduled,false,System", "scheduled,maybe,System"),
        ("bookings.csv", 3, "attended"),
    ),
    "unknown attribution": (replace_in("reprobations.csv", "System", "Cron"), ("reprobations.csv", 2, "issued_by")),
    "unknown status": (replace_in("bookings.csv", ",cancelled,", ",gone,"), ("bookings.csv", 4, "status")),
    "duplicate id": (replace_in("mentees.csv", "8,Bea,\n", "8,Bea,\n7,Ana Again,\n"), ("mentees.csv", 4, "id")),
    "missing row": (replace_in("warnings.csv", "1,7,1,", "1,7,99,"), ("warnings.csv", 2, "booking_id")),
    "end before start": (
        replace_in("bookings.csv", "2026-05-20T11:00:00Z", "2026-05-20T09:00:00Z"),
        ("bookings.csv", 5, "end_time"),
    ),
    "empty required": (replace_in("mentees.csv", "8,Bea,", "8,,"), ("mentees.csv", 3, "name")),
    "broken quoting": (replace_in("mentees.csv", "8,Bea,", '8,"Bea,'), ("mentees.csv", 3, None)),
    "short row": (replace_in("warnings.csv", "Mentor,\n", "Mentor\n"), ("warnings.csv", 2, None)),
}


# Reading and checking the files does not depend on the backend: SQLite is enough.
@pytest.mark.parametrize("case", BAD)
def test_each_kind_of_bad_input_is_refused_where_it_is(sqlite_factory, now, tmp_path, case):
    factory = sqlite_factory
    files, (file, row, column) = BAD[case]
    with pytest.raises(InvalidHistory) as refused, factory.begin() as s:
        import_history(s, write(tmp_path / "bad", files), now=now)
    problems = refused.value.problems
    assert [(p.file, p.row, p.column) for p in problems] == [(file, row, column)]
    assert str(problems[0]) in str(refused.value)
    assert count(factory, Mentor) == count(factory, AuditEntry) == 0


def test_every_problem_is_listed_at_once(sqlite_factory, now, tmp_path):
    factory = sqlite_factory
    files = {
        **VALID,
        "mentors.csv": "id,name,email,active\n10,Maria Mentor,maria@example.org,yes\n",
        "bookings.csv": VALID["bookings.csv"].replace("2026-05-01T11:00:00Z", "2026-05-01T09:00:00Z"),
        "reprobations.csv": "id,mentee_id,booking_id,issued_at,lifted_at\n",
    }
    with pytest.raises(InvalidHistory) as refused, factory.begin() as s:
        import_history(s, write(tmp_path / "bad", files), now=now)
    assert refused.value.problems == (
        Problem("mentors.csv", 2, "active", "'yes' is not true or false"),
        Problem("bookings.csv", 2, "end_time", "ends before (or when) it starts"),
        Problem("bookings.csv", 5, "mentor_id", "mentors.csv has no row with id 20"),
        Problem("reprobations.csv", 1, "issued_by", "missing column"),
    )
    message = str(refused.value)
    assert "nothing was written (4 problems)" in message
    assert "bookings.csv, row 2, column end_time: ends before (or when) it starts" in message
    assert count(factory, Mentor) == 0
