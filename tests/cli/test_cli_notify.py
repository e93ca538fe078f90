"""`mentorship notify` and `mentorship remind`, as a user (or cron) runs them, against a real SMTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from core.attendance import mark_no_show
from core.audit import Actor
from core.config import Policy
from core.misfire import report_misfire
from core.models import ActorKind, Booking, Mentee, Mentor, Notification, NotificationStatus
from tests.factories import add_booking, add_mentee, add_mentor
from tests.smtp_server import Mailbox, free_port, smtp_server

DAY = timedelta(days=1)


@pytest.fixture
def db(sqlite_engine: sa.Engine) -> str:
    return sqlite_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def warned(sqlite_factory: sessionmaker[Session]) -> dict[str, int]:
    """Ana warned for missing Maria's session 3 days ago (one message queued); another session pending 5 days.

    The command line reads the clock, so the data is relative to the real now."""
    now = datetime.now(UTC)
    with sqlite_factory.begin() as s:
        maria, ana = add_mentor(s, "Maria Mentor"), add_mentee(s, "Ana Ruiz")
        missed = add_booking(s, maria, ana, now - 3 * DAY)
        pending = add_booking(s, maria, ana, now - 5 * DAY)
    with sqlite_factory.begin() as s:
        mark_no_show(s, missed, actor=Actor(ActorKind.MENTOR, "maria", maria), now=now, policy=Policy())
    return {"maria": maria, "ana": ana, "missed": missed, "pending": pending}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def statuses(factory: sessionmaker[Session]) -> list[NotificationStatus]:
    with factory() as s:
        return list(s.scalars(sa.select(Notification.status).order_by(Notification.id)))


def test_dry_run_prints_the_message_and_sends_nothing(db, sqlite_factory, warned):
    code, out, _ = run("notify", "--dry-run", "--db", db)

    assert code == 0
    assert "1 message would be sent (dry run: nothing sent, nothing changed)" in out
    assert "To: Ana Ruiz <ana@example.org>" in out
    assert "Subject: A warning for a missed session" in out
    assert "with Maria Mentor (marked by your mentor)" in out
    assert statuses(sqlite_factory) == [NotificationStatus.QUEUED]

    code, _, err = run("notify", "--db", db)
    assert code == 1 and "--smtp HOST:PORT is needed" in err


def test_notify_sends_each_message_once(db, sqlite_factory, warned, mailbox):
    code, out, _ = run("notify", "--smtp", f"127.0.0.1:{mailbox.port}", "--from", "desk@example.org", "--db", db)

    assert code == 0, out
    assert "sent 1, failed 0, left queued 0, delivery unknown 0" in out
    (message,) = mailbox.received
    assert (message.mail_from, message.rcpt_tos) == ("desk@example.org", ["ana@example.org"])
    assert statuses(sqlite_factory) == [NotificationStatus.SENT]

    code, out, _ = run("notify", "--smtp", f"127.0.0.1:{mailbox.port}", "--db", db, "--json")
    assert code == 0
    assert json.loads(out) == {
        "sent": 0,
        "failed": 0,
        "queued": 0,
        "delivery_unknown": 0,
        "in_flight": 0,
        "error": None,
        "messages": [],
    }
    assert len(mailbox.received) == 1


def test_a_refused_connection_exits_1_and_keeps_the_message_queued_with_the_error(db, sqlite_factory, warned):
    closed = free_port()

    code, out, err = run("notify", "--smtp", f"127.0.0.1:{closed}", "--backoff", "0", "--db", db)

    assert code == 1
    assert f"could not connect to 127.0.0.1:{closed}" in err
    assert "left queued 1" in out
    with sqlite_factory() as s:
        message = s.scalars(sa.select(Notification)).one()
    assert message.status is NotificationStatus.QUEUED
    assert message.attempts == 1 and f"127.0.0.1:{closed}" in (message.last_error or "")


def test_the_password_comes_only_from_the_environment_and_never_in_clear_over_the_network(db, warned, mailbox):
    code, _, err = run("notify", "--smtp", f"127.0.0.1:{mailbox.port}", "--user", "desk", "--db", db, env={})
    assert code == 1 and "set MENTORSHIP_SMTP_PASSWORD" in err

    code, _, err = run(
        "notify",
        "--smtp",
        "mail.example.org:587",
        "--user",
        "desk",
        "--db",
        db,
        env={"MENTORSHIP_SMTP_PASSWORD": "s3cret-for-test"},
    )
    assert code == 1 and "--user needs --starttls" in err
    assert mailbox.received == []


def test_remind_queues_one_reminder_per_mentor_per_day(db, sqlite_factory, warned, mailbox):
    code, out, _ = run("remind", "--older-than", "48h", "--db", db)
    assert code == 0
    assert "queued 1 reminder:" in out and "Maria Mentor (1 pending session)" in out

    code, out, _ = run("remind", "--older-than", "48h", "--db", db, "--json")
    assert code == 0
    assert json.loads(out)["queued"] == [] and json.loads(out)["already_reminded"] == [warned["maria"]]

    run("notify", "--smtp", f"127.0.0.1:{mailbox.port}", "--db", db)
    (reminder,) = mailbox.to("maria@example.org")
    assert reminder.subject == "1 session waiting for your decision"
    with sqlite_factory() as s:
        assert s.get_one(Booking, warned["pending"]).attended is None

    code, _, err = run("remind", "--older-than", "two days", "--db", db)
    assert code != 0 and "not a duration" in err


def test_after_the_demos_revert_notify_corrects_the_two_reprobated_mentees_and_tells_their_mentors(
    db, sqlite_factory, mailbox
):
    smtp = f"127.0.0.1:{mailbox.port}"
    assert run("demo", "--db", db)[0] == 0
    with sqlite_factory() as s:
        damage = report_misfire(s, now=datetime.now(UTC))
        reprobated = [m.mentee_id for m in damage.mentees if m.reprobation_ids]
        mentor_ids = {a.mentor_id for a in damage.absences.system if a.mentee_id in reprobated}
        mentee_emails = list(s.scalars(sa.select(Mentee.email).where(Mentee.id.in_(reprobated))))
        mentor_emails = list(s.scalars(sa.select(Mentor.email).where(Mentor.id.in_(mentor_ids))))
    assert len(reprobated) == 2 and len(mentee_emails) == 2 and mentor_emails

    code, out, err = run(
        "misfire", "revert", "--as", "admin", "--reason", "the legacy job decided", "--apply", "--db", db
    )
    assert code == 0, err
    code, out, _ = run("notify", "--smtp", smtp, "--db", db)

    assert code == 0, out
    for email in mentee_emails:
        (correction,) = mailbox.to(email or "")
        assert correction.subject == "Correction: earlier notices about your sessions were sent in error"
        assert "Your reprobation has been lifted." in correction.body
    for email in mentor_emails:
        notices = [r for r in mailbox.to(email or "") if "back to pending" in r.subject]
        assert len(notices) == 1
    received = len(mailbox.received)

    code, out, _ = run("notify", "--smtp", smtp, "--db", db)
    assert (code, out.strip()) == (0, "nothing to send")
    assert len(mailbox.received) == received
