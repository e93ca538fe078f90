"""`mentorship misfire report|revert`, `mentorship import` and `mentorship export`, as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation, Role, Warning
from tests.factories import HOUR, add_booking, add_mentee, add_mentor, add_user

DAY = timedelta(days=1)
COMMAND = "mentorship:process-absences"


@pytest.fixture
def db(sqlite_engine: sa.Engine) -> str:
    return sqlite_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def world(sqlite_factory: sessionmaker[Session]) -> dict[str, int]:
    """The command's damage to Ana (a reprobation, two cancelled sessions) and Bea (a warning).

    The command line reads the clock, so the data is relative to the real now."""
    now = datetime.now(UTC)
    with sqlite_factory.begin() as s:
        maria, ana, bea = add_mentor(s, "Maria Mentor"), add_mentee(s, "Ana Ruiz"), add_mentee(s, "Bea Lopez")
        add_user(s, "admin", Role.ADMIN, created_at=now)
        add_user(s, "maria", Role.MENTOR, mentor_id=maria, created_at=now)
        w = {"ana": ana, "bea": bea}
        w["ana_absence"] = add_booking(s, maria, ana, now - 3 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        reprobation = Reprobation(mentee_id=ana, booking_id=w["ana_absence"], issued_at=now - 2 * DAY)
        reprobation.issued_by, reprobation.issued_by_name = ActorKind.SYSTEM, COMMAND
        s.add(reprobation)
        s.flush()
        w["reprobation"] = reprobation.id
        for key, start in (("restorable", now + 2 * DAY), ("slot_taken", now + 3 * DAY)):
            w[key] = add_booking(s, maria, ana, start, status=BookingStatus.CANCELLED)
            s.get_one(Booking, w[key]).reprobation_id = reprobation.id
        add_booking(s, maria, bea, now + 3 * DAY + HOUR / 2)  # Bea has taken that slot since
        w["bea_absence"] = add_booking(s, maria, bea, now - 4 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        s.add(Warning(mentee_id=bea, booking_id=w["bea_absence"], issued_at=now - DAY, issued_by=ActorKind.SYSTEM))
        return w


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def audit_count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0


def test_report_json_shows_the_chain(db, world):
    code, out, _ = run("misfire", "report", "--json", "--db", db)
    assert code == 0
    report = json.loads(out)
    assert [a["booking_id"] for a in report["absences"]["system"]] == [world["ana_absence"], world["bea_absence"]]
    assert report["absences"]["unattributed"] == []
    assert [r["id"] for r in report["reprobations"]] == [world["reprobation"]]
    assert len(report["warnings"]) == 1
    assert len(report["cancelled_bookings"]) == 2
    ana = next(m for m in report["mentees"] if m["mentee_id"] == world["ana"])
    assert ana["mentee"] == "Ana Ruiz"
    assert ana["restorable_booking_ids"] == [world["restorable"]]
    assert ana["conflicts"] == [{"booking_id": world["slot_taken"], "reason": "slot_taken"}]


def test_report_text_and_its_time_window(db, world):
    code, out, _ = run("misfire", "report", "--db", db)
    assert code == 0
    assert "2 stamped System" in out
    assert "reprobations: 1   cancelled bookings: 2 (1 restorable, 1 in conflict)" in out
    assert f"{world['slot_taken']} (slot_taken)" in out
    since = (datetime.now(UTC) - 3 * DAY).date().isoformat()
    _, out, _ = run("misfire", "report", "--since", since, "--json", "--db", db)
    assert [m["mentee"] for m in json.loads(out)["mentees"]] == ["Ana Ruiz"]
    code, _, err = run("misfire", "report", "--until", "last week", "--db", db)
    assert code == 1
    assert "--until 'last week' is not an ISO 8601 time" in err


def test_the_dry_run_prints_what_apply_does_and_writes_nothing(db, world, sqlite_factory):
    revert = ("misfire", "revert", "--as", "admin", "--reason", "the hourly job misfired", "--db", db)
    code, out, _ = run(*revert)
    assert code == 0
    assert out.startswith("Dry run, nothing was written.")
    assert f"reprobations lifted: 1 ({world['reprobation']})" in out
    assert f"cancelled bookings restored: 1 ({world['restorable']})" in out
    _, dry, _ = run(*revert, "--json")
    assert audit_count(sqlite_factory) == 0

    code, applied, _ = run(*revert, "--apply", "--json")
    assert code == 0
    dry_doc, applied_doc = json.loads(dry), json.loads(applied)
    assert dry_doc["operation_id"] is None
    assert applied_doc["operation_id"] is not None
    for key in ("absences_reset", "warnings_revoked", "reprobations_lifted", "bookings_restored", "conflicts"):
        assert applied_doc[key] == dry_doc[key], key
    assert applied_doc["counts"]["absences_reset"] == 2
    with sqlite_factory() as s:
        reasons = set(s.scalars(sa.select(AuditEntry.reason)))
        names = set(s.scalars(sa.select(AuditEntry.actor_name)))
    assert (reasons, names) == ({"the hourly job misfired"}, {"admin"})

    code, again, _ = run(*revert, "--apply", "--json")
    assert code == 0
    assert set(json.loads(again)["counts"].values()) == {0}
    _, text, _ = run(*revert, "--apply")
    assert text.startswith("Nothing to revert")


def test_the_mentee_option_limits_the_revert(db, world, sqlite_factory):
    code, out, _ = run(
        "misfire", "revert", "--as", "admin", "--reason", "Bea only", "--mentee", str(world["bea"]), "--apply",
        "--json", "--db", db,
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["absences_reset"] == [world["bea_absence"]]
    with sqlite_factory() as s:
        assert s.get_one(Booking, world["ana_absence"]).attended is False


@pytest.mark.parametrize(
    ("user", "reason", "message"),
    [
        ("maria", "misfire", "only an admin may revert"),
        ("admin", "  ", "a revert needs a reason"),
        ("nobody", "misfire", "no user named 'nobody'"),
    ],
)
def test_refusals_exit_non_zero_with_the_reason_and_write_nothing(db, world, sqlite_factory, user, reason, message):
    code, out, err = run("misfire", "revert", "--as", user, "--reason", reason, "--apply", "--db", db)
    assert code == 1
    assert message in err
    assert out == ""
    assert audit_count(sqlite_factory) == 0


def test_export_import_export_through_the_command_line(db, world, tmp_path: Path):
    assert run("export", str(tmp_path / "first"), "--db", db)[0] == 0
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run("init", "--db", empty)[0] == 0
    code, out, _ = run("import", str(tmp_path / "first"), "--dry-run", "--db", empty)
    assert (code, out.startswith("Dry run, nothing was written")) == (0, True)
    code, out, _ = run("import", str(tmp_path / "first"), "--db", empty)
    assert code == 0
    assert "Imported 1 mentors, 2 mentees, 5 bookings, 1 warnings, 1 reprobations" in out
    run("export", str(tmp_path / "second"), "--db", empty)
    for name in ("mentors.csv", "mentees.csv", "bookings.csv", "warnings.csv", "reprobations.csv"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    code, _, err = run("import", str(tmp_path / "first"), "--db", empty)
    assert code == 1
    assert "import only into an empty database" in err


def test_a_bad_history_is_refused_with_every_problem(tmp_path: Path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    run("init", "--db", empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mentors.csv").write_text("id,name,email,active\n1,Maria,,maybe\n")
    (bad / "mentees.csv").write_text("id,name\n1,Ana\n")
    code, _, err = run("import", str(bad), "--db", empty)
    assert code == 1
    assert "mentors.csv, row 2, column active: 'maybe' is not true or false" in err
    assert "mentees.csv, row 1, column email: missing column" in err
    assert "bookings.csv: missing file" in err
    assert "nothing was written" in err
