"""`mentorship stats`: its JSON agrees with an independent computation over `mentorship export`'s bookings.csv."""

from __future__ import annotations

import json
import random
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import common
from app.cli.main import cli
from core.models import HOURS_TO_MARK_EDGES, ActorKind, Booking, BookingStatus, Reprobation, Role, Warning
from tests.factories import add_booking, add_mentee, add_mentor, add_user

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SINCE, UNTIL = "2026-03-04", "2026-06-01"  # the default: 90 days up to today
PERSON = ("Mentor", "Admin")


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "now", lambda: NOW)


@pytest.fixture
def db(sqlite_engine: sa.Engine) -> str:
    return sqlite_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def history(sqlite_factory: sessionmaker[Session]) -> dict[str, int]:
    """Three mentors, eight mentees and 240 sessions over ten months, of every kind: cancelled, future, pending,
    attended or no-show marked by a mentor or an admin at various delays, System and unattributed absences."""
    rnd = random.Random(20260601)
    with sqlite_factory.begin() as s:
        mentors = [add_mentor(s, name) for name in ("Maria Mentor", "Otto Other", "Pia Park")]
        mentees = [add_mentee(s, f"Mentee{i} Lastname") for i in range(8)]
        add_user(s, "maria", Role.MENTOR, mentor_id=mentors[0], created_at=NOW)
        add_user(s, "admin", Role.ADMIN, created_at=NOW)
        for _ in range(240):
            start = NOW - timedelta(minutes=rnd.randrange(-3 * 24 * 60, 300 * 24 * 60))
            booking_id = add_booking(s, rnd.choice(mentors), rnd.choice(mentees), start)
            booking = s.get_one(Booking, booking_id)
            kind = rnd.random()
            if kind < 0.05:
                booking.status = BookingStatus.CANCELLED
            elif booking.end_time > NOW or kind < 0.2:
                continue  # pending, or not over yet
            elif kind < 0.3:
                booking.attended, booking.attendance_marked_by = False, ActorKind.SYSTEM
                booking.attendance_marked_at = booking.end_time + timedelta(hours=1)
            elif kind < 0.35:
                booking.attended = False  # no attribution, no time: the legacy job's suspected marks
            else:
                booking.attended = rnd.random() < 0.8
                booking.attendance_marked_by = ActorKind.MENTOR if rnd.random() < 0.85 else ActorKind.ADMIN
                booking.attendance_marked_at = booking.end_time + timedelta(minutes=rnd.randrange(1, 60 * 24 * 40))
        s.flush()
        for mentee in mentees[:5]:
            cause = s.scalars(sa.select(Booking.id).where(Booking.mentee_id == mentee).limit(1)).one()
            revoked = NOW if mentee == mentees[0] else None
            s.add(Warning(mentee_id=mentee, booking_id=cause, issued_at=NOW, revoked_at=revoked))
            if mentee in mentees[1:3]:
                lifted = NOW if mentee == mentees[2] else None
                s.add(Reprobation(mentee_id=mentee, booking_id=cause, issued_at=NOW, lifted_at=lifted))
        return {"maria": mentors[0]}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def stats_json(db: str, *args: str) -> dict[str, Any]:
    code, out, err = run("stats", "--json", "--db", db, *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def expected_from_export(directory: Path, first: date, last: date, mentor_id: int | None) -> dict[str, Any]:
    """The figures, computed from the exported files with pandas, row by row, as the docs define them."""
    df = pd.read_csv(directory / "bookings.csv", dtype=str, keep_default_na=False)
    for column in ("start_time", "end_time", "attendance_marked_at"):
        df[column] = pd.to_datetime(df[column].replace("", None), utc=True)
    since = pd.Timestamp(first.isoformat(), tz="UTC")
    until = pd.Timestamp((last + timedelta(days=1)).isoformat(), tz="UTC")
    held = df[
        (df.start_time >= since)
        & (df.start_time < until)
        & (df.status == "scheduled")
        & (df.end_time <= pd.Timestamp(NOW))
        & ((df.mentor_id == str(mentor_id)) if mentor_id is not None else True)
    ].copy()
    held["marked"] = held.attended != ""
    held["by_person"] = held.attendance_marked_by.isin(PERSON)
    held["counted"] = held.by_person & (held.attended == "false")
    held["no_show"] = held.attended == "false"
    held["hours"] = (held.attendance_marked_at - held.end_time).dt.total_seconds() / 3600
    timed = held[held.by_person & held.attendance_marked_at.notna()]

    warnings = pd.read_csv(directory / "warnings.csv", dtype=str, keep_default_na=False)
    reprobations = pd.read_csv(directory / "reprobations.csv", dtype=str, keep_default_na=False)
    active_warnings = warnings[warnings.revoked_at == ""].groupby("mentee_id").size()
    reprobated = set(reprobations[reprobations.lifted_at == ""].mentee_id)

    age = pd.Timestamp(NOW) - held[~held.marked].end_time
    day = pd.Timedelta(days=1)
    held["week"] = (held.start_time.dt.normalize() - pd.to_timedelta(held.start_time.dt.day_of_week, unit="D")).dt.date
    return {
        "sessions": len(held),
        "sessions_marked_by_person": int((held.marked & held.by_person).sum()),
        "no_shows_marked_by_person": int(held.counted.sum()),
        "counted_no_show_rate": rate(int(held.counted.sum()), int((held.marked & held.by_person).sum())),
        "automated_no_show_rate": rate(int(held.no_show.sum()), int(held.marked.sum())),
        "pending": int((~held.marked).sum()),
        "backlog": {
            "<1 day": int((age < day).sum()),
            "1-3 days": int(((age >= day) & (age < 3 * day)).sum()),
            "3-7 days": int(((age >= 3 * day) & (age < 7 * day)).sum()),
            "7-30 days": int(((age >= 7 * day) & (age < 30 * day)).sum()),
            ">30 days": int((age >= 30 * day).sum()),
        },
        "median_hours": estimated_median(timed.hours),
        "by_mentor": {
            int(mentor): {
                "sessions": len(g),
                "marked": int((g.marked & g.by_person).sum()),
                "attended": int((g.by_person & (g.attended == "true")).sum()),
                "no_shows": int(g.counted.sum()),
                "automated_marks": int((g.marked & ~g.by_person).sum()),
                "pending": int((~g.marked).sum()),
                "median_hours_to_mark": estimated_median(timed[timed.mentor_id == mentor].hours),
            }
            for mentor, g in held.groupby("mentor_id")
        },
        "by_mentee": {
            int(mentee): {
                "sessions": len(g),
                "marked": int((g.marked & g.by_person).sum()),
                "no_shows": int(g.counted.sum()),
                "pending": int((~g.marked).sum()),
                "warnings": int(active_warnings.get(mentee, 0)),
                "reprobated": mentee in reprobated,
            }
            for mentee, g in held.groupby("mentee_id")
        },
        "weekly": {
            week.isoformat(): {
                "sessions": len(g),
                "counted_no_show_rate": rate(int(g.counted.sum()), int((g.marked & g.by_person).sum())),
                "marks_mentor": int((g.attendance_marked_by == "Mentor").sum()),
                "marks_admin": int((g.attendance_marked_by == "Admin").sum()),
                "marks_system": int((g.attendance_marked_by == "System").sum()),
                "marks_unattributed": int((g.marked & (g.attendance_marked_by == "")).sum()),
            }
            for week, g in held.groupby("week")
        },
    }


def estimated_median(hours: pd.Series) -> float | None:
    """The median the product promises: each mark moved to its place in its bin, the c marks of a bin [low, high)
    spread evenly (the j-th at low + (high - low) * (j - 1/2) / c, the last bin's at its low edge)."""
    if hours.empty:
        return None
    edges = [0.0, *HOURS_TO_MARK_EDGES]
    bins = pd.cut(hours, [-float("inf"), *HOURS_TO_MARK_EDGES, float("inf")], right=False, labels=False)
    placed = []
    for i, count in bins.value_counts().items():
        if i == len(HOURS_TO_MARK_EDGES):
            placed += [HOURS_TO_MARK_EDGES[-1]] * count
        else:
            low, high = edges[i], HOURS_TO_MARK_EDGES[i]
            placed += [low + (high - low) * (j - 0.5) / count for j in range(1, count + 1)]
    return statistics.median(placed)


def assert_agrees(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("sessions", "sessions_marked_by_person", "no_shows_marked_by_person", "pending", "backlog"):
        assert got[key] == want[key], key
    assert got["counted_no_show_rate"] == pytest.approx(want["counted_no_show_rate"])
    assert got["automated_no_show_rate"] == pytest.approx(want["automated_no_show_rate"])
    assert got["time_to_mark"]["median_hours"] == pytest.approx(want["median_hours"], abs=1e-6)
    by_mentor = {
        row["mentor_id"]: {k: row[k] for k in next(iter(want["by_mentor"].values()))} for row in got["by_mentor"]
    }
    assert by_mentor.keys() == want["by_mentor"].keys()
    for mentor, row in want["by_mentor"].items():
        assert by_mentor[mentor] == {
            **row,
            "median_hours_to_mark": pytest.approx(row["median_hours_to_mark"], abs=1e-6),
        }
    by_mentee = {
        row["mentee_id"]: {k: row[k] for k in next(iter(want["by_mentee"].values()))} for row in got["by_mentee"]
    }
    assert by_mentee == want["by_mentee"]
    weekly = {row["week"]: row for row in got["weekly"] if row["sessions"]}
    assert weekly.keys() == want["weekly"].keys()
    for week, row in want["weekly"].items():
        assert {k: weekly[week][k] for k in row} == {
            **row,
            "counted_no_show_rate": pytest.approx(row["counted_no_show_rate"]),
        }


def test_stats_json_agrees_with_the_exported_bookings(db, history, tmp_path):
    code, _, err = run("export", str(tmp_path / "export"), "--db", db)
    assert code == 0, err
    got = stats_json(db)  # the default range: the last 90 days up to today
    assert (got["since"], got["until"]) == (SINCE, UNTIL)
    want = expected_from_export(tmp_path / "export", date.fromisoformat(SINCE), date.fromisoformat(UNTIL), None)
    assert want["sessions"] > 50 and want["pending"] > 5  # the data exercises every figure
    assert_agrees(got, want)
    # The previous period: the 90 days before.
    previous = expected_from_export(tmp_path / "export", date(2025, 12, 4), date(2026, 3, 3), None)
    assert got["previous"]["since"] == "2025-12-04"
    assert got["previous"]["counted_no_show_rate"] == pytest.approx(previous["counted_no_show_rate"])
    assert got["previous"]["sessions_marked_by_person"] == previous["sessions_marked_by_person"]
    # The automated marks inflate the rate, as they did on the real system.
    assert got["automated_no_show_rate"] > got["counted_no_show_rate"]


def test_stats_json_for_one_mentor_and_a_chosen_range_agrees_with_the_export(db, history, tmp_path):
    run("export", str(tmp_path / "export"), "--db", db)
    got = stats_json(db, "--mentor", "maria", "--since", "2025-09-01", "--until", "2026-05-31")
    want = expected_from_export(tmp_path / "export", date(2025, 9, 1), date(2026, 5, 31), history["maria"])
    assert [row["mentor"] for row in got["by_mentor"]] == ["Maria Mentor"]
    assert got["mentor"] == "maria"
    assert_agrees(got, want)


def test_stats_prints_the_rates_as_text(db, history, tmp_path):
    got = stats_json(db)
    code, out, _ = run("stats", "--db", db)
    assert code == 0
    assert f"Counted no-show rate  {got['counted_no_show_rate']:>6.1%}" in out
    assert f"Automated rate        {got['automated_no_show_rate']:>6.1%}" in out
    assert "Maria Mentor" in out and "By mentee" in out and "2026-05-25" in out


def test_stats_refuses_an_unknown_mentor_and_a_bad_date(db, history):
    code, _, err = run("stats", "--db", db, "--mentor", "nobody")
    assert (code, err.strip()) == (1, "error: no user named 'nobody'")
    code, _, err = run("stats", "--db", db, "--mentor", "admin")
    assert code == 1 and "not a mentor" in err
    code, _, err = run("stats", "--db", db, "--since", "June")
    assert code == 2 and "not a date" in err
    code, _, err = run("stats", "--db", db, "--since", "2026-06-02", "--until", "2026-06-01")
    assert code == 1 and "empty" in err
