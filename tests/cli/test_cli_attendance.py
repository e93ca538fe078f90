"""`mentorship pending` and `mentorship mark`, as a mentor or an admin runs them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from core.models import AuditEntry, Booking, BookingStatus, Reprobation, Role, Warning
from tests.conftest import NOW
from tests.factories import HOUR, add_booking, add_mentee, add_mentor, add_user

DAY = timedelta(days=1)
PENDING_FIELDS = {"booking_id", "mentor", "mentor_id", "mentee_id", "mentee", "start_time", "end_time", "pending_hours"}
MARK_FIELDS = {"booking_id", "attended", "attendance_marked_by", "operation_id", "consequences"}
COUNTS = {
    "warnings_issued",
    "warnings_revoked",
    "reprobations_issued",
    "reprobations_lifted",
    "bookings_cancelled",
    "bookings_restored",
}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """The command line reads the clock in one place; here it is the tests' fixed `now`."""
    monkeypatch.setattr("app.cli.attendance.now", lambda: NOW)


@pytest.fixture
def db(sqlite_engine: sa.Engine) -> str:
    return sqlite_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def world(sqlite_factory: sessionmaker[Session]) -> dict[str, int]:
    """Maria (user `maria`) with Ana's two past pending sessions and two future ones; Otto (no user) with one of
    Ben's; a cancelled session; an admin; a disabled mentor user."""
    with sqlite_factory.begin() as s:
        maria, otto, nina = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other"), add_mentor(s, "Nina Gone")
        ana, ben = add_mentee(s, "Ana Ruiz"), add_mentee(s, "Ben Okafor")
        add_user(s, "maria", Role.MENTOR, mentor_id=maria, created_at=NOW)
        add_user(s, "root", Role.ADMIN, created_at=NOW)
        add_user(s, "nina", Role.MENTOR, mentor_id=nina, disabled=True, created_at=NOW)
        return {
            "maria": maria,
            "otto": otto,
            "first": add_booking(s, maria, ana, NOW - 10 * DAY),
            "second": add_booking(s, maria, ana, NOW - 2 * HOUR),
            "otto_old": add_booking(s, otto, ben, NOW - 3 * DAY),
            "future1": add_booking(s, maria, ana, NOW + DAY),
            "future2": add_booking(s, maria, ana, NOW + 5 * DAY),
            "cancelled": add_booking(s, maria, ben, NOW - DAY, status=BookingStatus.CANCELLED),
            "nina_past": add_booking(s, nina, ben, NOW - DAY),
        }


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def state(factory: sessionmaker[Session]) -> tuple[int, list[tuple[object, ...]], int, int]:
    """Everything a mark can change: audit rows, bookings, warnings, reprobations."""
    with factory() as s:
        return (
            s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0,
            [
                tuple(r)
                for r in s.execute(
                    sa.select(Booking.id, Booking.attended, Booking.attendance_marked_by, Booking.status).order_by(
                        Booking.id
                    )
                )
            ],
            s.scalar(sa.select(sa.func.count()).select_from(Warning).where(Warning.revoked_at.is_(None))) or 0,
            s.scalar(sa.select(sa.func.count()).select_from(Reprobation).where(Reprobation.lifted_at.is_(None))) or 0,
        )


def test_pending_json_lists_the_waiting_sessions_oldest_first(db, world):
    code, out, err = run("pending", "--json", "--db", db)
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [r["booking_id"] for r in rows] == [world["first"], world["otto_old"], world["nina_past"], world["second"]]
    assert all(set(r) == PENDING_FIELDS for r in rows)
    first = rows[0]
    assert (first["mentor"], first["mentor_id"], first["mentee"], first["pending_hours"]) == (
        "maria",
        world["maria"],
        "Ana Ruiz",
        239.0,
    )
    assert first["start_time"] == (NOW - 10 * DAY).isoformat()
    assert rows[1]["mentor"] == "Otto Other"  # a mentor without a user: their name


def test_pending_filters_by_mentor_user_and_by_age(db, world):
    _, out, _ = run("pending", "--mentor", "maria", "--json", "--db", db)
    assert [r["booking_id"] for r in json.loads(out)] == [world["first"], world["second"]]
    _, out, _ = run("pending", "--older-than", "2d", "--json", "--db", db)
    assert [r["booking_id"] for r in json.loads(out)] == [world["first"], world["otto_old"]]
    _, out, _ = run("pending", "--older-than", "1d12h", "--json", "--db", db)
    assert [r["booking_id"] for r in json.loads(out)] == [world["first"], world["otto_old"]]
    _, out, _ = run("pending", "--older-than", "90m", "--db", db)
    assert "3 pending sessions, oldest first:" in out and "Ana Ruiz" in out and "waiting 9d 23h" in out
    code, _, err = run("pending", "--older-than", "soon", "--db", db)
    assert code == 2 and "is not a duration" in err
    code, _, err = run("pending", "--mentor", "root", "--db", db)
    assert code == 1 and "is an admin, not a mentor" in err


def test_a_no_show_gives_the_policys_consequences_and_reset_withdraws_them(db, world, sqlite_factory):
    code, out, _ = run("mark", str(world["first"]), "no-show", "--as", "maria", "--json", "--db", db)
    assert code == 0
    first = json.loads(out)
    assert set(first) == MARK_FIELDS and set(first["consequences"]) == COUNTS
    assert (first["attended"], first["attendance_marked_by"]) == (False, "Mentor")
    assert first["consequences"]["warnings_issued"] == 1

    code, out, _ = run("mark", str(world["second"]), "no-show", "--as", "maria", "--db", db)
    assert code == 0
    assert "marked no-show by maria (Mentor)" in out
    assert "1 reprobation issued" in out and "2 future sessions cancelled" in out
    with sqlite_factory() as s:
        assert {s.get_one(Booking, world[k]).status for k in ("future1", "future2")} == {BookingStatus.CANCELLED}

    code, out, _ = run("mark", str(world["second"]), "reset", "--as", "maria", "--json", "--db", db)
    assert code == 0
    reset = json.loads(out)
    assert (reset["attended"], reset["attendance_marked_by"]) == (None, None)
    assert reset["consequences"]["reprobations_lifted"] == 1
    assert reset["consequences"]["bookings_restored"] == 2
    with sqlite_factory() as s:
        assert {s.get_one(Booking, world[k]).status for k in ("future1", "future2")} == {BookingStatus.SCHEDULED}
        assert s.get_one(Booking, world["second"]).attendance_marked_by is None


def test_an_admin_marks_for_a_mentor_with_a_reason(db, world):
    code, out, _ = run(
        "mark", str(world["otto_old"]), "attended", "--as", "root", "--reason", "Otto phoned", "--json", "--db", db
    )
    assert code == 0
    assert json.loads(out)["attendance_marked_by"] == "Admin"


@pytest.mark.parametrize(
    ("booking", "action", "user", "extra", "message"),
    [
        ("future1", "no-show", "maria", (), "has not ended yet"),
        ("cancelled", "attended", "maria", (), "was cancelled"),
        ("otto_old", "no-show", "maria", (), "is not one of your sessions"),
        ("nina_past", "no-show", "nina", (), "user 'nina' is disabled"),
        ("first", "no-show", "ghost", (), "no user named 'ghost'"),
        ("first", "no-show", "root", (), "an admin acting for a mentor must give a reason"),
        ("first", "reset", "maria", (), "is pending; there is no mark to reset"),
        (None, "attended", "maria", (), "booking 999999 does not exist"),
    ],
)
def test_a_refused_mark_exits_non_zero_with_one_line_and_writes_nothing(
    db, world, sqlite_factory, booking, action, user, extra, message
):
    before = state(sqlite_factory)
    booking_id = str(world[booking]) if booking else "999999"
    for preview in ((), ("--preview",)):
        code, out, err = run("mark", booking_id, action, "--as", user, *extra, *preview, "--db", db)
        assert code == 1
        assert out == ""
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert state(sqlite_factory) == before


def test_marking_a_marked_session_again_is_refused_until_it_is_reset(db, world, sqlite_factory):
    assert run("mark", str(world["first"]), "attended", "--as", "maria", "--db", db)[0] == 0
    before = state(sqlite_factory)
    code, _, err = run("mark", str(world["first"]), "no-show", "--as", "maria", "--db", db)
    assert code == 1 and "is already marked attended (marked by Mentor maria); reset it first" in err
    assert state(sqlite_factory) == before


def test_a_preview_shows_the_consequence_and_writes_nothing(db, world, sqlite_factory):
    run("mark", str(world["first"]), "no-show", "--as", "maria", "--db", db)
    before = state(sqlite_factory)
    code, out, _ = run("mark", str(world["second"]), "no-show", "--as", "maria", "--preview", "--db", db)
    assert code == 0
    assert "nothing written" in out and "Ana Ruiz will be reprobated and 2 future sessions cancelled" in out
    code, out, _ = run("mark", str(world["second"]), "no-show", "--as", "maria", "--preview", "--json", "--db", db)
    preview = json.loads(out)
    assert set(preview) == MARK_FIELDS and preview["operation_id"] is None
    assert preview["consequences"]["reprobations_issued"] == 1 and preview["consequences"]["bookings_cancelled"] == 2
    for action in ("attended", "reset"):
        target = world["second"] if action == "attended" else world["first"]
        code, out, _ = run("mark", str(target), action, "--as", "maria", "--preview", "--json", "--db", db)
        assert code == 0 and json.loads(out)["operation_id"] is None
    code, out, _ = run("mark", str(world["first"]), "reset", "--as", "maria", "--preview", "--json", "--db", db)
    assert json.loads(out)["consequences"]["warnings_revoked"] == 1
    assert state(sqlite_factory) == before


def test_a_database_failure_mid_action_is_one_line_and_writes_nothing(db, world, sqlite_factory, monkeypatch):
    """A lost connection or a deadlock after the mark was written: the user reads why, not a traceback."""
    import core.attendance

    def connection_lost(*args, **kwargs):
        raise sa.exc.OperationalError("UPDATE bookings ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(core.attendance, "write_plan", connection_lost)
    before = state(sqlite_factory)
    code, out, err = run("mark", str(world["first"]), "no-show", "--as", "maria", "--db", db)
    assert code == 1 and out == ""
    assert err == (
        "error: the database did not complete the action (server closed the connection); nothing was saved, try again\n"
    )
    assert state(sqlite_factory) == before
