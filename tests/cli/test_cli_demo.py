"""`mentorship init && mentorship demo && mentorship pending --json` on the embedded default database, then a
mentor's no-show on the demo and its reset; and `demo --reset`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from app.cli.main import cli
from core.audit import Actor, Operation, record
from core.db import make_engine, make_session_factory
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Mentor, Role, User
from tests.conftest import NOW
from tests.factories import add_booking, add_mentee, add_mentor, add_user


@pytest.fixture(autouse=True)
def in_a_fresh_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No --db: the embedded default `data/mentorship.db`, under this test's own directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MENTORSHIP_DB_URL", raising=False)
    for module in ("app.cli.demo", "app.cli.attendance"):
        monkeypatch.setattr(f"{module}.now", lambda: NOW)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def default_db() -> sa.Engine:
    return make_engine("sqlite:///data/mentorship.db")


def test_init_demo_pending_then_a_no_show_and_its_reset_on_the_default_database(in_a_fresh_directory):
    assert run("init")[0] == 0
    code, out, err = run("demo")
    assert (code, err) == (0, "")
    assert (in_a_fresh_directory / "data" / "mentorship.db").exists()
    assert "2 reprobations, 26 sessions cancelled" in out
    assert "FOR DEMOS ONLY" in out
    assert "username admin" in out and "password demo-admin-pass" in out
    assert "username mentor" in out and "password demo-mentor-pass" in out

    code, out, _ = run("pending", "--json")
    assert code == 0
    pending = json.loads(out)
    assert pending and all(
        set(row)
        == {"booking_id", "mentor", "mentor_id", "mentee_id", "mentee", "start_time", "end_time", "pending_hours"}
        for row in pending
    )
    hours = [row["pending_hours"] for row in pending]
    assert hours == sorted(hours, reverse=True)  # oldest first

    # A second `demo` leaves the data alone, says so, and succeeds (make run calls it every time).
    code, out, _ = run("demo")
    assert code == 0 and "already holds data" in out
    engine = default_db()
    with make_session_factory(engine)() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Mentor)) == 12

    # The demo mentor's no-show that reprobates: exactly what its preview said; the reset takes it all back.
    _, out, _ = run("pending", "--mentor", "mentor", "--json")
    previews = {}
    for row in json.loads(out):
        _, preview, _ = run("mark", str(row["booking_id"]), "no-show", "--as", "mentor", "--preview", "--json")
        previews[row["booking_id"]] = json.loads(preview)["consequences"]
    booking_id = next(b for b, c in previews.items() if c["reprobations_issued"] == 1)
    assert any(c["warnings_issued"] == 1 and c["reprobations_issued"] == 0 for c in previews.values())
    with make_session_factory(engine)() as s:
        before = s.execute(sa.select(Booking.id, Booking.status).order_by(Booking.id)).all()
    code, out, _ = run("mark", str(booking_id), "no-show", "--as", "mentor", "--json")
    assert code == 0
    marked = json.loads(out)
    assert marked["consequences"] == previews[booking_id]
    assert marked["consequences"]["bookings_cancelled"] >= 1
    assert (marked["attended"], marked["attendance_marked_by"]) == (False, "Mentor")

    code, out, _ = run("mark", str(booking_id), "reset", "--as", "mentor", "--json")
    reset = json.loads(out)["consequences"]
    assert code == 0
    assert reset["reprobations_lifted"] == 1
    assert reset["bookings_restored"] == marked["consequences"]["bookings_cancelled"]
    with make_session_factory(engine)() as s:
        assert s.execute(sa.select(Booking.id, Booking.status).order_by(Booking.id)).all() == before
        names = set(
            s.scalars(sa.select(AuditEntry.actor_name).where(AuditEntry.operation_id == marked["operation_id"]))
        )
    assert names == {"mentor"}
    engine.dispose()


def test_demo_reset_empties_a_database_that_holds_data_then_loads_the_demo(in_a_fresh_directory):
    assert run("init")[0] == 0
    engine = default_db()
    with make_session_factory(engine).begin() as s:
        mentor, mentee = add_mentor(s, "Old Mentor"), add_mentee(s)
        add_booking(s, mentor, mentee, NOW, status=BookingStatus.CANCELLED)
        add_user(s, "admin", Role.ADMIN, created_at=NOW)
        record(s, Operation(Actor(ActorKind.ADMIN, "admin"), NOW, id="old-op"), "test.entry", "booking", 1, None, None)
    engine.dispose()

    code, out, _ = run("demo", "--seed", "3")
    assert code == 0 and "already holds data" in out

    code, out, err = run("demo", "--reset", "--seed", "3")
    assert (code, err) == (0, "")
    assert "database emptied" in out and "demo loaded (seed 3)" in out
    with make_session_factory(engine)() as s:
        assert "Old Mentor" not in set(s.scalars(sa.select(Mentor.name)))
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(AuditEntry.operation_id == "old-op")) == 0
        )
        assert set(s.scalars(sa.select(User.username))) == {"admin", "mentor"}
    engine.dispose()
