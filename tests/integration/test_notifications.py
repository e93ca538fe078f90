"""Notifications on a real database (every backend) and a real SMTP server on localhost (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_attended, mark_no_show, reset_attendance
from core.audit import Actor, Operation
from core.discipline import Consequences
from core.errors import InvalidAction, InvalidInput, NotAllowed
from core.misfire import revert_misfire
from core.models import (
    ActorKind,
    AuditEntry,
    Booking,
    BookingStatus,
    Mentee,
    Notification,
    NotificationStatus,
    Reprobation,
    Warning,
)
from core.notifications import (
    REVERT_CORRECTION,
    REVERT_PENDING_SESSIONS,
    SendReport,
    SmtpSettings,
    list_outbox,
    queue_consequence_notices,
    queue_reminders,
    retry_notification,
    send_queued,
)
from tests.factories import add_booking, add_mentee, add_mentor
from tests.smtp_server import Mailbox, free_port, smtp_server

DAY = timedelta(days=1)
ADMIN = Actor(ActorKind.ADMIN, "root-admin")
REMINDER_ACTOR = Actor(ActorKind.SYSTEM, "mentorship remind")


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def world(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Maria's two past pending sessions with Ana, and two upcoming ones (one with another mentor)."""
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        otto = add_mentor(s, "Otto Other")
        ana = add_mentee(s, "Ana Ruiz")
        return {
            "maria": maria,
            "otto": otto,
            "ana": ana,
            "past1": add_booking(s, maria, ana, now - 10 * DAY),  # Fri 22 May 2026
            "past2": add_booking(s, maria, ana, now - 3 * DAY),  # Fri 29 May 2026
            "future1": add_booking(s, maria, ana, now + 2 * DAY),  # Wed 3 Jun 2026
            "future2": add_booking(s, otto, ana, now + 4 * DAY),  # Fri 5 Jun 2026
        }


def maria(world: dict[str, int]) -> Actor:
    return Actor(ActorKind.MENTOR, "maria", world["maria"])


def send(factory: sessionmaker[Session], port: int, now: datetime, sleeps: list[float] | None = None) -> SendReport:
    settings = SmtpSettings("127.0.0.1", port, sender="Attendance Desk <desk@example.org>", timeout=5)
    waits = sleeps if sleeps is not None else []
    return send_queued(factory, settings, clock=lambda: now, sleep=waits.append)


def outbox(factory: sessionmaker[Session]) -> list[Notification]:
    with factory() as s:
        return list(s.scalars(sa.select(Notification).order_by(Notification.id)))


def test_a_no_shows_messages_arrive_with_the_cause_and_the_cancelled_sessions(factory, world, now, policy, mailbox):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    with factory.begin() as s:
        mark_no_show(s, world["past2"], actor=maria(world), now=now, policy=policy)

    report = send(factory, mailbox.port, now)

    assert len(report.sent) == 2
    warning, reprobation = mailbox.received
    assert [warning.rcpt_tos, reprobation.rcpt_tos] == [["ana@example.org"], ["ana@example.org"]]
    assert warning.mail_from == "desk@example.org"
    assert warning.subject == "A warning for a missed session"
    assert "Fri 22 May 2026, 12:00-13:00 UTC with Maria Mentor (marked by your mentor)" in warning.body
    # One message for the reprobation and the two sessions it cancelled, each with its time and mentor.
    assert reprobation.subject == "You have been reprobated and 2 sessions cancelled"
    assert "Fri 29 May 2026, 12:00-13:00 UTC with Maria Mentor" in reprobation.body
    assert "Wed 3 Jun 2026, 12:00-13:00 UTC with Maria Mentor" in reprobation.body
    assert "Fri 5 Jun 2026, 12:00-13:00 UTC with Otto Other" in reprobation.body
    assert {m.status for m in outbox(factory)} == {NotificationStatus.SENT}


def test_a_reset_tells_the_mentee_the_reprobation_is_lifted_and_a_second_run_sends_nothing(
    factory, world, now, policy, mailbox
):
    for booking in ("past1", "past2"):
        with factory.begin() as s:
            mark_no_show(s, world[booking], actor=maria(world), now=now, policy=policy)
    send(factory, mailbox.port, now)
    with factory.begin() as s:
        reset_attendance(s, world["past2"], actor=maria(world), now=now + timedelta(minutes=5), policy=policy)

    report = send(factory, mailbox.port, now + timedelta(minutes=6))

    assert len(report.sent) == 1
    lifted = mailbox.received[-1]
    assert lifted.rcpt_tos == ["ana@example.org"]
    assert lifted.subject == "Your reprobation has been lifted"
    assert "Wed 3 Jun 2026, 12:00-13:00 UTC with Maria Mentor" in lifted.body
    assert "Fri 5 Jun 2026, 12:00-13:00 UTC with Otto Other" in lifted.body

    again = send(factory, mailbox.port, now + timedelta(minutes=7))
    assert again.deliveries == ()
    assert len(mailbox.received) == 3


def test_nothing_is_queued_when_the_action_is_refused_or_rolled_back(factory, world, now, policy):
    with pytest.raises(InvalidAction), factory.begin() as s:
        mark_no_show(s, world["future1"], actor=maria(world), now=now, policy=policy)
    with pytest.raises(RuntimeError), factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
        raise RuntimeError("the request died after the mark")
    with factory.begin() as s:
        mark_attended(s, world["past1"], actor=maria(world), now=now, policy=policy)
    assert outbox(factory) == []


def test_two_changes_to_one_mentee_in_one_action_make_one_message_that_says_both(factory, world, now, policy):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    with factory() as s:
        warning_id = s.scalars(sa.select(Warning.id)).one()
    with factory.begin() as s:
        op = Operation(ADMIN, now, "two steps of one action")
        queue_consequence_notices(s, op, world["ana"], Consequences(warnings_revoked=[warning_id]))
        queue_consequence_notices(s, op, world["ana"], Consequences(warnings_issued=[warning_id]))

    messages = [m for m in outbox(factory) if m.operation_id == op.id]
    assert len(messages) == 1
    assert "is withdrawn" in messages[0].body and "You have received a warning" in messages[0].body


def _incident(s: Session, now: datetime) -> dict[str, int]:
    """What the legacy command left: Ben absent twice (System), warned, reprobated, three sessions cancelled
    (one has started since); Cleo warned for a mentor's mark, then absent (System) and reprobated for it."""
    maria = add_mentor(s, "Maria Mentor")
    ben = add_mentee(s, "Ben Stone")
    cleo = add_mentee(s, "Cleo Park")
    system = {"marked_by": ActorKind.SYSTEM, "marked_by_name": "mentorship:process-absences"}
    b1 = add_booking(s, maria, ben, now - 20 * DAY, attended=False, **system)  # Tue 12 May
    b2 = add_booking(s, maria, ben, now - 15 * DAY, attended=False, **system)  # Sun 17 May
    c1 = add_booking(s, maria, cleo, now - 30 * DAY, attended=False, marked_by=ActorKind.MENTOR)  # Sat 2 May
    c2 = add_booking(s, maria, cleo, now - 12 * DAY + 3 * timedelta(hours=1), attended=False, **system)  # Wed 20 May
    at = now - 11 * DAY
    legacy = {"issued_at": at, "issued_by": ActorKind.SYSTEM, "issued_by_name": "mentorship:process-absences"}
    s.add_all(
        [
            Warning(mentee_id=ben, booking_id=b1, **legacy),
            Warning(mentee_id=cleo, booking_id=c1, issued_at=now - 29 * DAY, issued_by=ActorKind.MENTOR),
        ]
    )
    ben_reprobation = Reprobation(mentee_id=ben, booking_id=b2, **legacy)
    cleo_reprobation = Reprobation(mentee_id=cleo, booking_id=c2, **legacy)
    s.add_all([ben_reprobation, cleo_reprobation])
    s.flush()
    cancelled = {"status": BookingStatus.CANCELLED}
    ids = {
        "maria": maria,
        "ben": ben,
        "cleo": cleo,
        "ben_started": add_booking(s, maria, ben, now - 2 * DAY, **cancelled),  # Sat 30 May
        "ben_future1": add_booking(s, maria, ben, now + 3 * DAY, **cancelled),  # Thu 4 Jun
        "ben_future2": add_booking(s, maria, ben, now + 6 * DAY, **cancelled),  # Sun 7 Jun
        "cleo_future": add_booking(s, maria, cleo, now + 8 * DAY, **cancelled),  # Tue 9 Jun
    }
    for key, reprobation in (
        ("ben_started", ben_reprobation),
        ("ben_future1", ben_reprobation),
        ("ben_future2", ben_reprobation),
        ("cleo_future", cleo_reprobation),
    ):
        booking = s.get_one(Booking, ids[key])
        booking.reprobation_id, booking.cancelled_at, booking.cancelled_by = reprobation.id, at, ActorKind.SYSTEM
    s.flush()
    return ids


def test_a_revert_sends_one_correction_per_mentee_and_the_pending_sessions_to_their_mentor(
    factory, now, policy, mailbox
):
    with factory.begin() as s:
        ids = _incident(s, now)
    with factory.begin() as s:
        result = revert_misfire(s, actor=ADMIN, now=now, reason="the legacy job decided", policy=policy, apply=True)

    kinds = {(m.kind, m.mentee_id, m.mentor_id) for m in outbox(factory) if m.operation_id == result.operation_id}
    assert kinds == {
        (REVERT_CORRECTION, ids["ben"], None),
        (REVERT_CORRECTION, ids["cleo"], None),
        (REVERT_PENDING_SESSIONS, None, ids["maria"]),
    }
    send(factory, mailbox.port, now)

    (ben,) = mailbox.to("ben@example.org")
    assert ben.subject == "Correction: earlier notices about your sessions were sent in error"
    assert "were sent in error" in ben.body
    assert "Tue 12 May 2026, 12:00-13:00 UTC with Maria Mentor" in ben.body  # an absence withdrawn
    assert "Sun 17 May 2026, 12:00-13:00 UTC with Maria Mentor" in ben.body
    assert "Your reprobation has been lifted." in ben.body
    restored = ben.body.split("restored and take place as planned:")[1].split("\n\n")[0]
    assert "Thu 4 Jun 2026" in restored and "Sun 7 Jun 2026" in restored
    assert "Sat 30 May 2026, 12:00-13:00 UTC with Maria Mentor (its time has already passed)" in ben.body
    assert "What still stands" not in ben.body

    (cleo,) = mailbox.to("cleo@example.org")
    assert "Wed 20 May 2026, 15:00-16:00 UTC with Maria Mentor" in cleo.body
    assert "Tue 9 Jun 2026" in cleo.body
    # Her mentor's mark stands, and the notice says so.
    assert "a warning for your absence from your session on Sat 2 May 2026" in cleo.body

    (mentor,) = mailbox.to("maria@example.org")
    assert mentor.subject == "3 sessions back to pending: your decision is needed"
    for line in (
        "Tue 12 May 2026, 12:00-13:00 UTC with Ben Stone",
        "Sun 17 May 2026, 12:00-13:00 UTC with Ben Stone",
        "Wed 20 May 2026, 15:00-16:00 UTC with Cleo Park",
    ):
        assert line in mentor.body
    assert len(mailbox.received) == 3

    with factory.begin() as s:
        again = revert_misfire(s, actor=ADMIN, now=now, reason="again", policy=policy, apply=True)
    assert again.is_empty
    assert send(factory, mailbox.port, now).deliveries == ()


def test_a_revert_that_must_reprobate_anew_from_a_mentors_marks_says_so(factory, now, policy, mailbox):
    """Imported history, taken as it was: Dana missed two sessions by her mentor's marks (nobody applied the
    policy), then the legacy command marked her absent and reprobated her for that."""
    with factory.begin() as s:
        maria, dana = add_mentor(s, "Maria Mentor"), add_mentee(s, "Dana Cole")
        add_booking(s, maria, dana, now - 30 * DAY, attended=False, marked_by=ActorKind.MENTOR)  # Sat 2 May
        add_booking(s, maria, dana, now - 20 * DAY, attended=False, marked_by=ActorKind.MENTOR)  # Tue 12 May
        automated = add_booking(s, maria, dana, now - 10 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        legacy = Reprobation(mentee_id=dana, booking_id=automated, issued_at=now - 9 * DAY)
        legacy.issued_by = ActorKind.SYSTEM
        s.add(legacy)
        s.flush()
        upcoming = s.get_one(Booking, add_booking(s, maria, dana, now + 3 * DAY))  # Thu 4 Jun
        upcoming.status, upcoming.reprobation_id = BookingStatus.CANCELLED, legacy.id
    with factory.begin() as s:
        revert_misfire(s, actor=ADMIN, now=now, reason="the legacy job decided", policy=policy, apply=True)

    send(factory, mailbox.port, now)

    (correction,) = mailbox.to("dana@example.org")
    assert "it now rests on your absence from your session on Tue 12 May 2026" in correction.body
    assert "Your sessions below are cancelled:\n  - Thu 4 Jun 2026" in correction.body
    assert "has been lifted" not in correction.body and "take place as planned" not in correction.body
    assert "a warning for your absence from your session on Sat 2 May 2026" in correction.body


def test_a_refused_connection_leaves_the_messages_queued_with_the_error(factory, world, now, policy):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    closed = free_port()
    sleeps: list[float] = []

    report = send(factory, closed, now, sleeps)

    assert report.sent == () and len(report.left_queued) == 1
    (message,) = outbox(factory)
    assert message.status is NotificationStatus.QUEUED
    assert message.attempts == 1
    assert message.last_error is not None and f"could not connect to 127.0.0.1:{closed}" in message.last_error
    assert message.sending_started_at is None
    assert sleeps == [1.0, 2.0]  # three tries, backing off


def test_a_message_claimed_by_a_run_that_died_is_not_resent_blindly(factory, world, now, policy, mailbox):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
        mark_no_show(
            s, world["past2"], actor=Actor(ActorKind.ADMIN, "root-admin"), now=now, policy=policy, reason="mentor asked"
        )
    first, second = outbox(factory)
    with factory.begin() as s:
        # The first was handed to SMTP an hour ago and the sender died before recording the outcome; the
        # second was claimed a minute ago by a run that may still be at work.
        s.get_one(Notification, first.id).sending_started_at = now - timedelta(hours=1)
        s.get_one(Notification, second.id).sending_started_at = now - timedelta(minutes=1)

    report = send(factory, mailbox.port, now)

    assert mailbox.received == []
    assert report.in_flight == 1
    by_id = {m.id: m for m in outbox(factory)}
    assert by_id[first.id].status is NotificationStatus.FAILED
    assert (by_id[first.id].last_error or "").startswith("delivery unknown")
    assert by_id[second.id].status is NotificationStatus.QUEUED

    # An admin who has checked retries it: it is sent once.
    with factory.begin() as s:
        retry_notification(s, first.id, actor=ADMIN, now=now)
    send(factory, mailbox.port, now)
    send(factory, mailbox.port, now)
    assert [r.subject for r in mailbox.received] == ["A warning for a missed session"]


def test_a_message_without_an_address_fails_with_the_reason(factory, world, now, policy, mailbox):
    with factory.begin() as s:
        s.get_one(Mentee, world["ana"]).email = None
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)

    report = send(factory, mailbox.port, now)

    assert mailbox.received == [] and len(report.failed) == 1
    (message,) = outbox(factory)
    assert message.status is NotificationStatus.FAILED
    assert message.last_error == "no email address on record for the recipient"


def test_the_servers_answers_decide_between_retry_and_failure(factory, world, now, policy, mailbox):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    # Busy twice, then accepted: sent on the third try.
    mailbox.defer_data = ["451 4.3.0 try again later", "451 4.3.0 try again later"]
    sleeps: list[float] = []
    assert len(send(factory, mailbox.port, now, sleeps).sent) == 1
    assert sleeps == [1.0, 2.0]
    assert outbox(factory)[0].attempts == 3

    # Busy every time: left queued with the reason. A refused recipient: failed, not retried.
    with factory.begin() as s:
        mark_no_show(s, world["past2"], actor=maria(world), now=now, policy=policy)
    mailbox.defer_data = ["451 4.3.0 try again later"] * 3
    busy = send(factory, mailbox.port, now)
    assert len(busy.left_queued) == 1 and "451" in (busy.left_queued[0].error or "")
    mailbox.refuse_rcpt = {"ana@example.org": "550 5.1.1 no such mailbox"}
    refused = send(factory, mailbox.port, now)
    assert len(refused.failed) == 1
    message = outbox(factory)[1]
    assert message.status is NotificationStatus.FAILED and "550" in (message.last_error or "")
    assert message.attempts == 4


def test_reminders_list_long_pending_sessions_once_a_day_and_change_no_attendance(factory, world, now, mailbox):
    with factory.begin() as s:
        recent = add_booking(s, world["maria"], world["ana"], now - timedelta(hours=5))
        idle = add_mentor(s, "Ivan Idle", active=False)
        add_booking(s, idle, world["ana"], now - 9 * DAY)

    with factory.begin() as s:
        first = queue_reminders(s, older_than=timedelta(hours=48), actor=REMINDER_ACTOR, now=now)
    with factory.begin() as s:
        same_day = queue_reminders(
            s, older_than=timedelta(hours=48), actor=REMINDER_ACTOR, now=now + timedelta(hours=8)
        )
    with factory.begin() as s:
        next_day = queue_reminders(s, older_than=timedelta(hours=48), actor=REMINDER_ACTOR, now=now + DAY)

    assert [(r.mentor_id, r.pending_sessions) for r in first.queued] == [(world["maria"], 2)]
    assert same_day.queued == () and same_day.already_reminded == (world["maria"],)
    assert len(next_day.queued) == 1
    send(factory, mailbox.port, now)
    reminder = mailbox.received[0]
    assert reminder.rcpt_tos == ["maria@example.org"]
    assert reminder.subject == "2 sessions waiting for your decision"
    assert "more than 48 hours ago" in reminder.body
    assert "Fri 22 May 2026, 12:00-13:00 UTC with Ana Ruiz (waiting 9 days)" in reminder.body
    assert "Fri 29 May 2026, 12:00-13:00 UTC with Ana Ruiz (waiting 2 days)" in reminder.body
    with factory() as s:
        assert s.get_one(Booking, recent).attended is None
        assert s.scalar(sa.select(sa.func.count()).where(Booking.attended.is_not(None))) == 0
        keys = sorted(k for k in s.scalars(sa.select(Notification.dedup_key)) if k)
    assert keys == [f"reminder:{world['maria']}:2026-06-01", f"reminder:{world['maria']}:2026-06-02"]
    with pytest.raises(InvalidInput), factory.begin() as s:
        queue_reminders(s, older_than=timedelta(0), actor=REMINDER_ACTOR, now=now)


def test_only_an_admin_retries_only_a_failed_message_and_the_retry_is_audited(factory, world, now, policy):
    with factory.begin() as s:
        s.get_one(Mentee, world["ana"]).email = None
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    send(factory, free_port(), now)  # fails it: no address, and no server needed for that
    (message,) = outbox(factory)
    assert message.status is NotificationStatus.FAILED

    with pytest.raises(NotAllowed), factory.begin() as s:
        retry_notification(s, message.id, actor=maria(world), now=now)
    with factory.begin() as s:
        result = retry_notification(s, message.id, actor=ADMIN, now=now)
    with pytest.raises(InvalidAction, match="only a failed message"), factory.begin() as s:
        retry_notification(s, message.id, actor=ADMIN, now=now)

    assert outbox(factory)[0].status is NotificationStatus.QUEUED
    with factory() as s:
        entry = s.scalars(sa.select(AuditEntry).where(AuditEntry.operation_id == result.operation_id)).one()
    assert (entry.action, entry.actor_name, entry.target_id) == ("notification.retry", "root-admin", message.id)
    assert entry.before is not None and entry.before["status"] == "failed"


def test_the_outbox_names_the_action_that_caused_each_message(factory, world, now, policy):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=maria(world), now=now, policy=policy)
    with factory.begin() as s:
        queue_reminders(s, older_than=timedelta(hours=48), actor=REMINDER_ACTOR, now=now)

    with factory() as s:
        reminder, warning = list_outbox(s)

    assert (warning.kind, warning.action, warning.actor_kind, warning.actor_name) == (
        "warning_issued",
        "attendance.mark",
        ActorKind.MENTOR,
        "maria",
    )
    assert (reminder.kind, reminder.action, reminder.actor_name) == (
        "reminder",
        "notification.queue",
        "mentorship remind",
    )
    assert warning.recipient == "Ana Ruiz <ana@example.org>"
