"""The demo's incident, reported, reverted and carried through a CSV export, as issue 3's "Done when" says.

The demo is loaded once for this module (it takes seconds) into a template SQLite file; each test works on
a copy. It is loaded relative to the real clock, since the command line reads the clock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from core.audit import actor_for_user
from core.config import Policy
from core.csvio import export_history, import_history
from core.db import make_engine, make_session_factory
from core.demo import load_demo
from core.discipline import ConflictReason
from core.misfire import MisfireReport, report_misfire, revert_misfire
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation
from tests.databases import migrated_engine

REASON = "the hourly process-absences job marked pending sessions absent"


@pytest.fixture(scope="module")
def demo_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory, demo_now: datetime) -> Path:
    with migrated_engine("sqlite", tmp_path_factory.mktemp("demo")) as engine:
        with make_session_factory(engine).begin() as s:
            load_demo(s, now=demo_now)
        path = Path(str(engine.url.database))
    return path  # the engine is disposed: the file holds everything (no WAL left)


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    copy = tmp_path / "demo.db"
    shutil.copy(demo_template, copy)
    url = f"sqlite:///{copy}"
    engine = make_engine(url)
    yield url, make_session_factory(engine)
    engine.dispose()


def revert(factory: sessionmaker[Session], now: datetime, *, apply: bool):
    with factory.begin() as s:
        admin = actor_for_user(s, "admin")
        return revert_misfire(s, actor=admin, now=now, reason=REASON, policy=Policy(), apply=apply)


def comparable(report: MisfireReport) -> dict[str, object]:
    """The report without the actors' names, which the CSV format does not carry."""
    return {
        "absences": [(a.booking_id, a.marked_by, a.marked_at) for a in report.absences.system],
        "unattributed": [(a.booking_id, a.marked_at) for a in report.absences.unattributed],
        "warnings": [(w.id, w.booking_id, w.issued_by) for w in report.warnings],
        "reprobations": [(r.id, r.booking_id, r.issued_by) for r in report.reprobations],
        "cancelled": [(c.booking_id, c.reprobation_id, c.conflict) for c in report.cancelled_bookings],
        "mentees": [asdict(m) for m in report.mentees],
    }


def test_the_report_shows_two_reprobations_and_26_cancelled_bookings(demo, demo_now):
    url, factory = demo
    with factory() as s:
        report = report_misfire(s, now=demo_now)
    assert len(report.reprobations) == 2
    assert len(report.cancelled_bookings) == 26
    assert {r.issued_by for r in report.reprobations} == {ActorKind.SYSTEM}
    assert {c.conflict for c in report.cancelled_bookings} == {
        None,
        ConflictReason.SLOT_TAKEN,
        ConflictReason.IN_PAST,
    }
    result = CliRunner().invoke(cli, ["misfire", "report", "--json", "--db", url])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (len(document["reprobations"]), len(document["cancelled_bookings"])) == (2, 26)


def test_the_revert_undoes_the_incident_once_and_leaves_the_human_reprobation(demo, demo_now):
    _, factory = demo
    with factory() as s:
        report = report_misfire(s, now=demo_now)
        human = s.scalars(sa.select(Reprobation).where(Reprobation.issued_by == ActorKind.MENTOR)).one()
        human_cancelled = set(s.scalars(sa.select(Booking.id).where(Booking.reprobation_id == human.id)))
    dry = revert(factory, demo_now, apply=False)
    result = revert(factory, demo_now, apply=True)
    assert result.operation_id is not None
    assert asdict(dry) == {**asdict(result), "operation_id": None, "applied": False}

    assert sorted(result.reprobations_lifted) == sorted(r.id for r in report.reprobations)
    restorable = {b for m in report.mentees for b in m.restorable_booking_ids}
    assert restorable and set(result.bookings_restored) == restorable
    assert {c.reason for c in result.conflicts} == {ConflictReason.SLOT_TAKEN, ConflictReason.IN_PAST}
    assert len(result.bookings_restored) + len(result.conflicts) == 26
    assert len(result.absences_reset) == len(report.absences.system)

    with factory() as s:
        untouched = s.get_one(Reprobation, human.id)
        assert (untouched.lifted_at, untouched.issued_by) == (None, ActorKind.MENTOR)
        still = s.scalars(sa.select(Booking.status).where(Booking.id.in_(human_cancelled))).all()
        assert set(still) <= {BookingStatus.CANCELLED}
        entries = s.scalars(sa.select(AuditEntry).where(AuditEntry.operation_id == result.operation_id)).all()
        assert {(e.actor_kind, e.actor_name, e.reason) for e in entries} == {(ActorKind.ADMIN, "admin", REASON)}
        assert (
            s.scalar(
                sa.select(sa.func.count()).where(
                    Booking.attended.is_(False), Booking.attendance_marked_by == ActorKind.SYSTEM
                )
            )
            == 0
        )

    again = revert(factory, demo_now, apply=True)
    assert set(again.counts().values()) == {0}
    assert again.operation_id is None


def test_an_exported_demo_imported_into_an_empty_database_gives_the_same_report(demo, demo_now, tmp_path):
    _, factory = demo
    with factory() as s:
        export_history(s, tmp_path / "history")
        original = report_misfire(s, now=demo_now, include_unattributed=True)
    with migrated_engine("sqlite", tmp_path / "empty") as engine:
        imported = make_session_factory(engine)
        with imported.begin() as s:
            import_history(s, tmp_path / "history", now=demo_now)
        with imported() as s:
            again = report_misfire(s, now=demo_now, include_unattributed=True)
    assert len(again.reprobations) == 2
    assert len(again.cancelled_bookings) == 26
    assert comparable(again) == comparable(original)
