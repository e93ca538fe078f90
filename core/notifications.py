"""Notifications: tell people what happened, correct what was wrong, remind mentors instead of deciding for them.

Queueing. A message is a row of the outbox (`notifications`), written in the transaction of the action that
causes it, so it exists exactly when the action does:
- `queue_consequence_notices` (called by `core.discipline.write_plan`): one notice per mentee per action, saying
  every warning issued or withdrawn, the reprobation issued or lifted, and the sessions cancelled or restored.
  It is rendered and inserted just before the transaction commits (a `before_commit` listener, in a few
  set-based statements for all the mentees of the action), so a revert that replaces it costs nothing.
- `queue_revert_corrections` (called by `core.misfire.revert_misfire`): one correction notice per affected mentee
  that says plainly the earlier notices were sent in error (it replaces the per-action notices of the revert),
  and one notice per mentor listing the sessions now waiting for their decision.
- `queue_reminders`: at most one reminder per mentor per day listing their long-pending sessions. It never
  changes attendance.

Sending. `send_queued` hands queued messages to an SMTP server, one at a time, with a bounded number of tries and
an exponential backoff per message. Delivery is **at most once** as far as this program can tell:
1. before a message is handed to SMTP, its `sending_started_at` is set and committed (the claim; a conditional
   UPDATE, so two concurrent runs never both send one message);
2. after the server accepts it (the reply to the end of DATA), it is marked `sent` and committed;
3. an error from the server or the network releases the claim (the message stays queued with `last_error`) or,
   for a permanent refusal (5xx), marks it `failed`.
A message found claimed but not sent by a later run (the sender crashed or was killed between 1 and 2) may or
may not have been delivered. It is not resent automatically: once its claim is older than the sending lease it
is marked `failed` with "delivery unknown", for an admin to check and retry (`retry_notification`). The one
duplicate this cannot prevent is SMTP's own: a connection lost after the server took the message but before its
reply reached us is reported as an error, the message stays queued and is sent again (each message carries a
stable Message-ID, by which mail systems can spot such a duplicate).

`attempts` counts the tries to deliver a message: each hand-over to the server, and each run that could not
reach the server at all.

Message texts live in `core.notification_templates`. All times in messages are UTC.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import cached_property
from string import Template
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from core import notification_templates as t
from core.audit import Actor, Operation, record
from core.errors import InvalidAction, InvalidInput, NotAllowed, NotFound
from core.models import (
    ActorKind,
    AuditEntry,
    Booking,
    BookingStatus,
    Mentee,
    Mentor,
    Notification,
    NotificationStatus,
    Reprobation,
    Warning,
)

if TYPE_CHECKING:
    # core.discipline calls into this module, so it is imported only for typing.
    from core.discipline import Consequences

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# Kinds of message (the `kind` column).
WARNING_ISSUED = "warning_issued"
WARNING_REVOKED = "warning_revoked"
REPROBATION_ISSUED = "reprobation_issued"
REPROBATION_CHANGED = "reprobation_changed"
REPROBATION_LIFTED = "reprobation_lifted"
REVERT_CORRECTION = "revert_correction"
REVERT_PENDING_SESSIONS = "revert_pending_sessions"
REMINDER = "reminder"
KINDS = (
    WARNING_ISSUED,
    WARNING_REVOKED,
    REPROBATION_ISSUED,
    REPROBATION_CHANGED,
    REPROBATION_LIFTED,
    REVERT_CORRECTION,
    REVERT_PENDING_SESSIONS,
    REMINDER,
)

ACTION_KEY_PREFIX = "action:"
REMINDER_ACTOR_NAME = "mentorship remind"
# A claim older than this, on a message still not sent, is a sender that stopped mid-way, not one at work.
SENDING_LEASE = timedelta(minutes=15)
DEFAULT_SENDER = "Attendance Desk <attendance-desk@localhost>"
DELIVERY_UNKNOWN = (
    "delivery unknown: a notify run handed this message to the mail server (or was about to) and stopped "
    "before recording the outcome, so it may have been delivered; check with the recipient, then retry it"
)
NO_ADDRESS = "no email address on record for the recipient"
# Longest list of sessions in one message; the rest are counted.
MAX_LISTED = 50
# Ids per statement: well under SQLite's bound-parameter limit.
CHUNK = 5000
# session.info key: what this transaction's actions changed so far, by (operation id, mentee id).
_CHANGES_KEY = "notifications.changes"


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


# --- text -----------------------------------------------------------------------------------------------------


def _one_line(text: str | None) -> str:
    """A name fit for a subject, a header or a line of a list: whitespace (newlines included) collapsed."""
    return " ".join((text or "").split()) or "(no name)"


def _when(start: datetime, end: datetime) -> str:
    """ "Wed 3 Jun 2026, 14:00-15:00 UTC"."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)

    # One strftime per moment (the day of the month, without its leading zero, put in the format): a large
    # revert names tens of thousands of sessions.
    def day_and_time(d: datetime) -> str:
        return d.strftime(f"%a {d.day} %b %Y %H:%M")

    if start.date() == end.date():
        return start.strftime(f"%a {start.day} %b %Y, %H:%M-{end.hour:02}:{end.minute:02} UTC")
    return f"{day_and_time(start)} UTC to {day_and_time(end)} UTC"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _duration(span: timedelta) -> str:
    """A span as a person says it: "48 hours", "3 days", "90 minutes"."""
    minutes = int(span.total_seconds() // 60)
    if minutes % (24 * 60) == 0 and minutes > 48 * 60:
        return _count(minutes // (24 * 60), "day")
    if minutes % 60 == 0:
        return _count(minutes // 60, "hour")
    return _count(minutes, "minute")


def _waited(span: timedelta) -> str:
    hours = int(span.total_seconds() // 3600)
    return _count(hours // 24, "day") if hours >= 48 else _count(hours, "hour")


def _listing(lines: Sequence[str]) -> str:
    shown = list(lines[:MAX_LISTED])
    if len(lines) > MAX_LISTED:
        shown.append(t.LINES["more"].substitute(count=len(lines) - MAX_LISTED))
    return "\n".join(shown)


def _body(name: str, sections: Iterable[str], closing: Template) -> str:
    parts = [t.GREETING.substitute(name=_one_line(name)), *sections, closing.substitute(), t.SIGNATURE]
    return "\n\n".join(parts) + "\n"


# --- what the messages talk about -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """A booking as a message names it."""

    booking_id: int
    mentee_id: int
    mentor_id: int
    start: datetime
    end: datetime
    mentor: str
    mentee: str
    mentor_active: bool
    marked_by: ActorKind | None
    # `when` and the lines below are made once per booking: a large revert names one booking in several
    # messages (its mentee's correction and its mentor's pending list), and formatting times dominates.
    when: str

    @property
    def marked_by_text(self) -> str:
        return t.MARKED_BY[self.marked_by.value if self.marked_by else ""]

    @cached_property
    def with_mentor(self) -> str:
        return t.LINES["session_with_mentor"].substitute(when=self.when, mentor=_one_line(self.mentor))

    @cached_property
    def with_mentee(self) -> str:
        return t.LINES["session_with_mentee"].substitute(when=self.when, mentee=_one_line(self.mentee))


def _rows(session: Session, statement: sa.Select[*Ts]) -> Sequence[sa.Row[*Ts]]:
    """The rows of a plain column read, run on the session's connection after a flush (so that it sees what
    this transaction wrote): the ORM's handling of each row would add about half again to the tens of
    thousands of rows a large revert reads."""
    session.flush()
    return session.connection().execute(statement).all()


def _slots(session: Session, booking_ids: Iterable[int]) -> dict[int, _Slot]:
    ids = sorted(set(booking_ids))
    slots: dict[int, _Slot] = {}
    for chunk in _chunks(ids):
        rows = _rows(
            session,
            sa.select(
                Booking.id,
                Booking.mentee_id,
                Booking.mentor_id,
                Booking.start_time,
                Booking.end_time,
                Mentor.name,
                Mentee.name,
                Mentor.active,
                Booking.attendance_marked_by,
            )
            .join(Mentor, Mentor.id == Booking.mentor_id)
            .join(Mentee, Mentee.id == Booking.mentee_id)
            .where(Booking.id.in_(chunk)),
        )
        slots.update((row[0], _Slot(*row, when=_when(row[3], row[4]))) for row in rows)
    return slots


def _by_time(slots: Iterable[_Slot]) -> list[_Slot]:
    return sorted(slots, key=lambda s: (s.start, s.booking_id))


def _new_message(
    *,
    op_id: str | None,
    now: datetime,
    kind: str,
    name: str,
    email: str | None,
    mentee_id: int | None = None,
    mentor_id: int | None = None,
    subject: str,
    body: str,
    dedup_key: str | None,
) -> dict[str, Any]:
    return {
        "operation_id": op_id,
        "created_at": now,
        "kind": kind,
        "recipient_name": _one_line(name),
        "recipient_email": (email or "").strip() or None,
        "mentee_id": mentee_id,
        "mentor_id": mentor_id,
        "subject": _one_line(subject),
        "body": body,
        "dedup_key": dedup_key,
        "status": NotificationStatus.QUEUED,
        "attempts": 0,
    }


def _insert_messages(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert messages made by `_new_message`, in one executemany. A Core insert of the table: the ORM's bulk
    path would add per-row bookkeeping that these plain rows do not need (a large revert queues tens of
    thousands)."""
    if rows:
        session.execute(sa.insert(cast(sa.Table, Notification.__table__)), rows)


# --- one notice per mentee per action ---------------------------------------------------------------------------


@dataclass
class _Changes:
    """What one operation changed for one mentee, accumulated over the `write_plan` calls of the operation.

    Tuples, not lists: a large revert holds one of these per mentee until it replaces them, and the empty tuple
    is shared, so most of them cost one object rather than eight (fewer objects for the garbage collector to
    walk again and again).
    """

    now: datetime
    warnings_issued: tuple[int, ...] = ()
    warnings_revoked: tuple[int, ...] = ()
    reprobations_issued: tuple[int, ...] = ()
    reprobations_lifted: tuple[int, ...] = ()
    bookings_cancelled: tuple[int, ...] = ()
    bookings_restored: tuple[int, ...] = ()
    conflicts: tuple[tuple[int, str], ...] = ()  # (booking id, ConflictReason value); a later one prevails

    def add(self, done: Consequences) -> None:
        self.warnings_issued += tuple(done.warnings_issued)
        self.warnings_revoked += tuple(done.warnings_revoked)
        self.reprobations_issued += tuple(done.reprobations_issued)
        self.reprobations_lifted += tuple(done.reprobations_lifted)
        self.bookings_cancelled += tuple(done.bookings_cancelled)
        self.bookings_restored += tuple(done.bookings_restored)
        self.conflicts += tuple((c.booking_id, str(c.reason)) for c in done.conflicts)


def _tells_something(done: Consequences) -> bool:
    return bool(
        done.warnings_issued
        or done.warnings_revoked
        or done.reprobations_issued
        or done.reprobations_lifted
        or done.bookings_cancelled
        or done.bookings_restored
    )


def _pending(session: Session) -> dict[tuple[str, int], _Changes]:
    pending: dict[tuple[str, int], _Changes] = session.info.setdefault(_CHANGES_KEY, {})
    return pending


def queue_consequence_notices(session: Session, op: Operation, mentee_id: int, done: Consequences) -> None:
    """Queue the notice `mentee_id` gets for what `op` changed, in the caller's transaction.

    Guarantees: one message per mentee per operation, saying everything the operation changed for them (dedup
    key "action:<operation>:<mentee>"), written just before the transaction commits (so the `write_plan` calls
    of one action add up, and a revert can replace them with its correction notice); nothing when the
    transaction rolls back, or when nothing a mentee would notice changed.
    """
    if not _tells_something(done):
        return
    pending = _pending(session)
    changes = pending.get((op.id, mentee_id))
    if changes is None:
        changes = pending[op.id, mentee_id] = _Changes(op.now)
    changes.add(done)


@event.listens_for(Session, "before_commit")
def _write_action_notices(session: Session) -> None:
    """Render and insert the transaction's pending notices, in a few set-based statements."""
    pending = session.info.pop(_CHANGES_KEY, None)
    if not pending:
        return
    warning_ids = sorted({w for c in pending.values() for w in (*c.warnings_issued, *c.warnings_revoked)})
    reprobation_ids = sorted({r for c in pending.values() for r in c.reprobations_issued})
    warning_cause: dict[int, int] = {}
    for chunk in _chunks(warning_ids):
        warning_cause.update(
            session.execute(sa.select(Warning.id, Warning.booking_id).where(Warning.id.in_(chunk))).all()
        )
    reprobation_cause: dict[int, int] = {}
    for chunk in _chunks(reprobation_ids):
        reprobation_cause.update(
            session.execute(sa.select(Reprobation.id, Reprobation.booking_id).where(Reprobation.id.in_(chunk))).all()
        )
    slots = _slots(
        session,
        [
            *warning_cause.values(),
            *reprobation_cause.values(),
            *(b for c in pending.values() for b in (*c.bookings_cancelled, *c.bookings_restored)),
            *(b for c in pending.values() for b, _ in c.conflicts),
        ],
    )
    people = {m: (name, email) for m, name, email in _people(session, Mentee, sorted({m for _, m in pending}))}
    rows = []
    for (op_id, mentee_id), changes in pending.items():
        name, email = people[mentee_id]
        kind, subject, body = _render_action_notice(name, changes, warning_cause, reprobation_cause, slots)
        rows.append(
            _new_message(
                op_id=op_id,
                now=changes.now,
                kind=kind,
                name=name,
                email=email,
                mentee_id=mentee_id,
                subject=subject,
                body=body,
                dedup_key=f"{ACTION_KEY_PREFIX}{op_id}:{mentee_id}",
            )
        )
    _insert_messages(session, rows)


@event.listens_for(Session, "after_transaction_end")
def _forget_action_notices(session: Session, transaction: SessionTransaction) -> None:
    # Whatever ends a transaction without its commit (rollback, close) means it never happened: nobody is told.
    if transaction.parent is None:
        session.info.pop(_CHANGES_KEY, None)


def _render_action_notice(
    name: str,
    c: _Changes,
    warning_cause: dict[int, int],
    reprobation_cause: dict[int, int],
    slots: dict[int, _Slot],
) -> tuple[str, str, str]:
    """The kind, subject and body of one mentee's notice of what one action changed."""
    issued = [reprobation_cause[r] for r in c.reprobations_issued]  # their causes
    # A reprobation lifted and another issued in one action (its cause changed): what was restored and cancelled
    # again did not change for the mentee.
    cancelled = [b for b in c.bookings_cancelled if b not in c.bookings_restored]
    restored = [b for b in c.bookings_restored if b not in c.bookings_cancelled]
    conflicts = dict(c.conflicts)
    not_restored = [] if issued else [b for b in conflicts if b not in c.bookings_restored]

    def cause(booking_id: int) -> dict[str, str]:
        slot = slots[booking_id]
        return {"when": slot.when, "mentor": _one_line(slot.mentor), "marked_by": slot.marked_by_text}

    sections: list[str] = []
    if issued:
        if c.reprobations_lifted:
            sections.append(t.SECTIONS["reprobation_changed"].substitute(cause(issued[-1])))
        else:
            sections.append(t.SECTIONS["reprobation_issued"].substitute(cause(issued[-1])))
        if cancelled:
            lines = [s.with_mentor for s in _by_time(slots[b] for b in cancelled)]
            sections.append(t.SECTIONS["sessions_cancelled"].substitute(list=_listing(lines)))
    elif c.reprobations_lifted:
        sections.append(t.SECTIONS["reprobation_lifted"].substitute())
    if restored:
        lines = [s.with_mentor for s in _by_time(slots[b] for b in restored)]
        sections.append(t.SECTIONS["sessions_restored"].substitute(list=_listing(lines)))
    if not_restored:
        sections.append(_not_restored_section([(slots[b], conflicts[b]) for b in not_restored]))
    for wid in c.warnings_issued:
        sections.append(t.SECTIONS["warning_issued"].substitute(cause(warning_cause[wid])))
    for wid in c.warnings_revoked:
        sections.append(t.SECTIONS["warning_revoked"].substitute(cause(warning_cause[wid])))

    if issued and c.reprobations_lifted:
        kind, subject = REPROBATION_CHANGED, t.SUBJECTS["reprobation_changed"].substitute()
    elif issued and cancelled:
        kind = REPROBATION_ISSUED
        subject = t.SUBJECTS["reprobation_issued"].substitute(sessions=_count(len(cancelled), "session"))
    elif issued:
        kind, subject = REPROBATION_ISSUED, t.SUBJECTS["reprobation_issued_nothing_cancelled"].substitute()
    elif c.reprobations_lifted or restored:
        kind, subject = REPROBATION_LIFTED, t.SUBJECTS["reprobation_lifted"].substitute()
    elif c.warnings_issued:
        kind, subject = WARNING_ISSUED, t.SUBJECTS["warning_issued"].substitute()
    else:
        kind, subject = WARNING_REVOKED, t.SUBJECTS["warning_revoked"].substitute()
    return kind, subject, _body(name, sections, t.CLOSING_MENTEE)


def _not_restored_section(items: Sequence[tuple[_Slot, str]]) -> str:
    lines = [
        t.LINES["session_not_restored"].substitute(
            when=slot.when, mentor=_one_line(slot.mentor), why=t.NOT_RESTORED_BECAUSE.get(reason, reason)
        )
        for slot, reason in sorted(items, key=lambda item: (item[0].start, item[0].booking_id))
    ]
    return t.SECTIONS["sessions_not_restored"].substitute(list=_listing(lines))


# --- a revert's corrections -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevertNotices:
    """What a revert queued: a correction per affected mentee, a pending-sessions notice per mentor."""

    mentee_notices: int
    mentor_notices: int
    action_notices_replaced: int


def queue_revert_corrections(session: Session, op: Operation, reset_booking_ids: Iterable[int]) -> RevertNotices:
    """Queue a revert's messages in its transaction; call it after the revert's writes, with the automated
    absences it sent back to pending.

    Each affected mentee (an absence reset, a warning withdrawn, a reprobation lifted or a session restored by
    `op`) gets one correction notice: it says plainly that the earlier notices were sent in error, lists what was
    corrected (absences withdrawn, warnings withdrawn, the reprobation lifted, the sessions restored and those that
    could not be), and what still stands. It replaces the per-action notices `write_plan` queued for `op`, so a
    mentee gets one clear message per revert. Each mentor of a reset absence gets one notice listing the sessions
    now waiting for their decision. Keys "revert:<operation>:mentee:<id>" / "...:mentor:<id>" keep it to one each.
    """
    reset_ids = sorted(set(reset_booking_ids))
    # The revert's per-action notices (not written yet: see `queue_consequence_notices`) are replaced.
    pending = _pending(session)
    replaced = [key for key in pending if key[0] == op.id]
    for key in replaced:
        del pending[key]

    targets: dict[str, list[int]] = defaultdict(list)
    for action, target_id in _rows(
        session,
        sa.select(AuditEntry.action, AuditEntry.target_id)
        .where(
            AuditEntry.operation_id == op.id,
            AuditEntry.action.in_(
                ("warning.revoke", "reprobation.lift", "booking.restore", "reprobation.issue", "booking.cancel")
            ),
        )
        .order_by(AuditEntry.id),
    ):
        targets[action].append(target_id)

    revoked: list[tuple[int, int]] = []  # (mentee id, cause booking id)
    for chunk in _chunks(targets["warning.revoke"]):
        revoked += _rows(session, sa.select(Warning.mentee_id, Warning.booking_id).where(Warning.id.in_(chunk)))
    lifted_mentees: set[int] = set()
    not_restored_ids: list[int] = []
    for chunk in _chunks(targets["reprobation.lift"]):
        lifted_mentees.update(session.scalars(sa.select(Reprobation.mentee_id).where(Reprobation.id.in_(chunk))))
        not_restored_ids += session.scalars(
            sa.select(Booking.id).where(Booking.reprobation_id.in_(chunk), Booking.status == BookingStatus.CANCELLED)
        )
    # Re-applying the policy may also reprobate anew from a person's marks (a lifted reprobation whose cause was
    # automated, on a mentee with enough counted absences): what it cancels again was not restored after all.
    reprobated_anew: dict[int, int] = {}  # mentee id -> cause booking id
    for chunk in _chunks(targets["reprobation.issue"]):
        reprobated_anew.update(
            session.execute(
                sa.select(Reprobation.mentee_id, Reprobation.booking_id).where(Reprobation.id.in_(chunk))
            ).all()
        )
    recancelled = set(targets["booking.cancel"])
    slots = _slots(
        session,
        [
            *reset_ids,
            *(b for _, b in revoked),
            *targets["booking.restore"],
            *not_restored_ids,
            *reprobated_anew.values(),
            *recancelled,
        ],
    )
    resets = [slots[b] for b in reset_ids if b in slots]
    restored = [slots[b] for b in targets["booking.restore"] if b not in recancelled]
    # Cancelled by the new reprobation: both those it cancels again and any it cancels for the first time.
    newly_cancelled = [slots[b] for b in targets["booking.cancel"]]
    not_restored = [slots[b] for b in not_restored_ids]

    mentee_ids = sorted(
        {s.mentee_id for s in resets}
        | {m for m, _ in revoked}
        | lifted_mentees
        | {s.mentee_id for s in restored}
        | set(reprobated_anew)
    )
    standing = _still_standing(session, mentee_ids)
    # Each list grouped by mentee once: scanning every list for every mentee is quadratic in a large revert.
    of_mentee: dict[str, defaultdict[int, list[_Slot]]] = {
        key: defaultdict(list) for key in ("resets", "warned", "cancelled", "restored", "not_restored")
    }
    for slot in resets:
        of_mentee["resets"][slot.mentee_id].append(slot)
    for mentee_of_warning, cause_booking in revoked:
        of_mentee["warned"][mentee_of_warning].append(slots[cause_booking])
    for slot in newly_cancelled:
        of_mentee["cancelled"][slot.mentee_id].append(slot)
    for slot in restored:
        of_mentee["restored"][slot.mentee_id].append(slot)
    for slot in not_restored:
        of_mentee["not_restored"][slot.mentee_id].append(slot)
    rows: list[dict[str, Any]] = []
    # The same for every mentee: made once.
    intro, lifted = t.SECTIONS["correction_intro"].substitute(), t.SECTIONS["reprobation_lifted"].substitute()
    subject = t.SUBJECTS["revert_correction"].substitute()
    for mentee_id, name, email in _people(session, Mentee, mentee_ids):
        sections = [intro]
        mine = _by_time(of_mentee["resets"].get(mentee_id, ()))
        if mine:
            sections.append(t.SECTIONS["correction_absences"].substitute(list=_listing([s.with_mentor for s in mine])))
        warned = _by_time(of_mentee["warned"].get(mentee_id, ()))
        if warned:
            sections.append(
                t.SECTIONS["correction_warnings"].substitute(list=_listing([s.with_mentor for s in warned]))
            )
        if mentee_id in reprobated_anew:
            cause = slots[reprobated_anew[mentee_id]]
            sections.append(
                t.SECTIONS["reprobation_changed"].substitute(
                    when=cause.when, mentor=_one_line(cause.mentor), marked_by=cause.marked_by_text
                )
            )
            cancelled = _by_time(of_mentee["cancelled"].get(mentee_id, ()))
            if cancelled:
                lines = _listing([s.with_mentor for s in cancelled])
                sections.append(t.SECTIONS["sessions_cancelled"].substitute(list=lines))
        elif mentee_id in lifted_mentees:
            sections.append(lifted)
        back = _by_time(of_mentee["restored"].get(mentee_id, ()))
        if back:
            sections.append(t.SECTIONS["sessions_restored"].substitute(list=_listing([s.with_mentor for s in back])))
        lost = [(s, _conflict_reason(s, op.now)) for s in of_mentee["not_restored"].get(mentee_id, ())]
        if lost:
            sections.append(_not_restored_section(lost))
        if standing.get(mentee_id):
            sections.append(t.SECTIONS["correction_still_standing"].substitute(list="\n".join(standing[mentee_id])))
        rows.append(
            _new_message(
                op_id=op.id,
                now=op.now,
                kind=REVERT_CORRECTION,
                name=name,
                email=email,
                mentee_id=mentee_id,
                subject=subject,
                body=_body(name, sections, t.CLOSING_MENTEE),
                dedup_key=f"revert:{op.id}:mentee:{mentee_id}",
            )
        )
    mentee_count = len(rows)

    by_mentor: dict[int, list[_Slot]] = defaultdict(list)
    for s in resets:
        by_mentor[s.mentor_id].append(s)
    for mentor_id, name, email in _people(session, Mentor, sorted(by_mentor)):
        sessions = _by_time(by_mentor[mentor_id])
        count = _count(len(sessions), "session")
        section = t.SECTIONS["pending_after_revert"].substitute(list=_listing([s.with_mentee for s in sessions]))
        rows.append(
            _new_message(
                op_id=op.id,
                now=op.now,
                kind=REVERT_PENDING_SESSIONS,
                name=name,
                email=email,
                mentor_id=mentor_id,
                subject=t.SUBJECTS["revert_pending_sessions"].substitute(sessions=count),
                body=_body(name, [section], t.CLOSING_MENTOR),
                dedup_key=f"revert:{op.id}:mentor:{mentor_id}",
            )
        )
    _insert_messages(session, rows)
    return RevertNotices(mentee_count, len(rows) - mentee_count, len(replaced))


def _conflict_reason(slot: _Slot, now: datetime) -> str:
    # The rules of core.discipline.restorable_bookings, read after the restore: what is still cancelled by a
    # lifted reprobation is in the past, at an inactive mentor, or in a slot that is taken.
    if slot.start <= now:
        return "in_past"
    if not slot.mentor_active:
        return "mentor_inactive"
    return "slot_taken"


def _people(
    session: Session, model: type[Mentee] | type[Mentor], ids: Sequence[int]
) -> list[tuple[int, str, str | None]]:
    people: list[tuple[int, str, str | None]] = []
    for chunk in _chunks(ids):
        people += _rows(
            session, sa.select(model.id, model.name, model.email).where(model.id.in_(chunk)).order_by(model.id)
        )
    return people


def _still_standing(session: Session, mentee_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each mentee's active warnings and reprobation, as lines of a list."""
    causes: list[tuple[int, int, str]] = []
    for chunk in _chunks(mentee_ids):
        causes += [
            (m, b, "still_reprobation")
            for m, b in _rows(
                session,
                sa.select(Reprobation.mentee_id, Reprobation.booking_id).where(
                    Reprobation.mentee_id.in_(chunk), Reprobation.lifted_at.is_(None)
                ),
            )
        ]
        causes += [
            (m, b, "still_warning")
            for m, b in _rows(
                session,
                sa.select(Warning.mentee_id, Warning.booking_id).where(
                    Warning.mentee_id.in_(chunk), Warning.revoked_at.is_(None)
                ),
            )
        ]
    slots = _slots(session, [b for _, b, _ in causes])
    standing: dict[int, list[str]] = defaultdict(list)
    for mentee_id, booking_id, line in sorted(causes, key=lambda c: (c[0], c[2], slots[c[1]].start)):
        slot = slots[booking_id]
        standing[mentee_id].append(t.LINES[line].substitute(when=slot.when, mentor=_one_line(slot.mentor)))
    return standing


# --- reminders ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedReminder:
    notification_id: int
    mentor_id: int
    mentor: str
    pending_sessions: int


@dataclass(frozen=True)
class ReminderResult:
    """Reminders queued now, and the mentors skipped because they already have today's."""

    operation_id: str
    queued: tuple[QueuedReminder, ...]
    already_reminded: tuple[int, ...]  # mentor ids


def reminder_key(mentor_id: int, now: datetime) -> str:
    return f"reminder:{mentor_id}:{now.astimezone(UTC).date().isoformat()}"


def queue_reminders(session: Session, *, older_than: timedelta, actor: Actor, now: datetime) -> ReminderResult:
    """Queue, for each active mentor with sessions pending since more than `older_than`, one reminder listing them.

    At most one reminder per mentor per UTC day (dedup key "reminder:<mentor>:<YYYY-MM-DD>"), also when two runs
    race. Never changes attendance. Each reminder queued is recorded in the audit log under one operation.
    """
    if older_than <= timedelta(0):
        raise InvalidInput(f"older-than must be a positive duration, got {older_than}")
    op = Operation(actor, now)
    cutoff = now - older_than
    pending = [
        Booking.status == BookingStatus.SCHEDULED,
        Booking.attended.is_(None),
        Booking.end_time <= cutoff,
        Mentor.active.is_(True),
    ]
    counts = dict(
        session.execute(
            sa.select(Booking.mentor_id, sa.func.count())
            .join(Mentor, Mentor.id == Booking.mentor_id)
            .where(*pending)
            .group_by(Booking.mentor_id)
        ).all()
    )
    keys = {mentor_id: reminder_key(mentor_id, now) for mentor_id in counts}
    existing: set[str] = set()
    for key_chunk in _chunks(sorted(keys.values())):
        existing.update(
            k
            for k in session.scalars(sa.select(Notification.dedup_key).where(Notification.dedup_key.in_(key_chunk)))
            if k
        )
    todo = sorted(m for m, k in keys.items() if k not in existing)
    already = sorted(m for m, k in keys.items() if k in existing)

    # Up to MAX_LISTED sessions per mentor, oldest first, chosen by the database.
    rank = sa.func.row_number().over(partition_by=Booking.mentor_id, order_by=(Booking.end_time, Booking.id))
    listed: dict[int, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for chunk in _chunks(todo):
        ranked = (
            sa.select(Booking.mentor_id, Booking.start_time, Booking.end_time, Mentee.name, rank.label("rank"))
            .join(Mentor, Mentor.id == Booking.mentor_id)
            .join(Mentee, Mentee.id == Booking.mentee_id)
            .where(*pending, Booking.mentor_id.in_(chunk))
            .subquery()
        )
        for mentor_id, start, end, mentee in session.execute(
            sa.select(ranked.c.mentor_id, ranked.c.start_time, ranked.c.end_time, ranked.c.name)
            .where(ranked.c.rank <= MAX_LISTED)
            .order_by(ranked.c.mentor_id, ranked.c.rank)
        ):
            listed[mentor_id].append((start, end, mentee))

    queued: list[QueuedReminder] = []
    threshold = _duration(older_than)
    for mentor_id, name, email in _people(session, Mentor, todo):
        total = counts[mentor_id]
        lines = [
            t.LINES["session_waiting"].substitute(
                when=_when(start, end), mentee=_one_line(mentee), waited=_waited(now - end)
            )
            for start, end, mentee in listed[mentor_id]
        ]
        if total > len(lines):
            lines.append(t.LINES["more"].substitute(count=total - len(lines)))
        sessions = _count(total, "session")
        message = Notification(
            **_new_message(
                op_id=op.id,
                now=now,
                kind=REMINDER,
                name=name,
                email=email,
                mentor_id=mentor_id,
                subject=t.SUBJECTS["reminder"].substitute(sessions=sessions),
                body=_body(
                    name,
                    [t.SECTIONS["reminder"].substitute(threshold=threshold, list="\n".join(lines))],
                    t.CLOSING_MENTOR,
                ),
                dedup_key=keys[mentor_id],
            )
        )
        try:
            # A savepoint: another run that queued this mentor's reminder meanwhile makes this insert fail
            # alone, and the mentor counts as already reminded.
            with session.begin_nested():
                session.add(message)
                session.flush()
        except sa.exc.IntegrityError:
            already.append(mentor_id)
            continue
        record(
            session,
            op,
            "notification.queue",
            "notification",
            message.id,
            None,
            {"kind": REMINDER, "mentor_id": mentor_id, "pending_sessions": total, "dedup_key": keys[mentor_id]},
        )
        queued.append(QueuedReminder(message.id, mentor_id, _one_line(name), total))
    session.flush()
    return ReminderResult(op.id, tuple(queued), tuple(sorted(already)))


def take_history_as_delivered(session: Session, *, until: datetime) -> int:
    """Mark the messages queued up to `until` as sent when they were queued; returns how many.

    Only for a history loaded after the fact (the demo replays weeks of mentors' marks through the handlers):
    its people heard at the time, and a first `notify` must not send them weeks-old news.
    """
    _write_action_notices(session)  # this transaction's notices too
    return _rowcount(
        session.execute(
            sa.update(Notification)
            .where(Notification.status == NotificationStatus.QUEUED, Notification.created_at <= until)
            .values(status=NotificationStatus.SENT, sent_at=Notification.created_at)
            .execution_options(synchronize_session=False)
        )
    )


# --- the outbox, for the admin ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """One message with what caused it: the first audit entry of its operation (the user action)."""

    id: int
    created_at: datetime
    status: NotificationStatus
    kind: str
    recipient_name: str
    recipient_email: str | None
    subject: str
    body: str
    attempts: int
    last_error: str | None
    sending_started_at: datetime | None
    sent_at: datetime | None
    operation_id: str | None
    action: str | None
    actor_kind: ActorKind | None
    actor_name: str | None
    reason: str | None

    @property
    def recipient(self) -> str:
        return formataddr((self.recipient_name, self.recipient_email)) if self.recipient_email else self.recipient_name


def list_outbox(
    session: Session, *, status: NotificationStatus | None = None, kind: str | None = None, limit: int = 500
) -> tuple[OutboxEntry, ...]:
    """The newest messages first (at most `limit`), with the action that caused each. Writes nothing."""
    query = sa.select(Notification).order_by(Notification.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Notification.status == status)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    messages = list(session.scalars(query))
    op_ids = sorted({m.operation_id for m in messages if m.operation_id})
    causes: dict[str, tuple[str | None, ActorKind | None, str | None, str | None]] = {}
    for chunk in _chunks(op_ids):
        first = (
            sa.select(sa.func.min(AuditEntry.id))
            .where(AuditEntry.operation_id.in_(chunk))
            .group_by(AuditEntry.operation_id)
        )
        for op_id, first_action, first_kind, first_name, first_reason in session.execute(
            sa.select(
                AuditEntry.operation_id,
                AuditEntry.action,
                AuditEntry.actor_kind,
                AuditEntry.actor_name,
                AuditEntry.reason,
            ).where(AuditEntry.id.in_(first))
        ):
            causes[op_id] = (first_action, first_kind, first_name, first_reason)
    entries = []
    for m in messages:
        action, actor_kind, actor_name, reason = causes.get(m.operation_id or "", (None, None, None, None))
        entries.append(
            OutboxEntry(
                m.id,
                m.created_at,
                m.status,
                m.kind,
                m.recipient_name,
                m.recipient_email,
                m.subject,
                m.body,
                m.attempts,
                m.last_error,
                m.sending_started_at,
                m.sent_at,
                m.operation_id,
                action,
                actor_kind,
                actor_name,
                reason,
            )
        )
    return tuple(entries)


def count_outbox(session: Session) -> dict[NotificationStatus, int]:
    """How many messages are queued, sent and failed."""
    query = sa.select(Notification.status, sa.func.count()).group_by(Notification.status)
    counts = dict(session.execute(query).all())
    return {s: counts.get(s, 0) for s in NotificationStatus}


@dataclass(frozen=True)
class RetryResult:
    notification_id: int
    operation_id: str
    status: NotificationStatus


def retry_notification(session: Session, notification_id: int, *, actor: Actor, now: datetime) -> RetryResult:
    """Put a failed message back in the queue (an admin's decision, audited); the next `notify` sends it.

    Only a failed message can be retried, so a double click or a second admin queues it once. For a "delivery
    unknown" message, retrying is the admin's statement that a second copy is acceptable.
    """
    if actor.kind is not ActorKind.ADMIN:
        raise NotAllowed(f"only an admin may retry a message, not {actor.kind.value} {actor.name!r}")
    message = session.scalar(
        sa.select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if message is None:
        raise NotFound(f"notification {notification_id} does not exist")
    if message.status is not NotificationStatus.FAILED:
        raise InvalidAction(
            f"notification {notification_id} is {message.status.value}, not failed: only a failed message can be "
            "retried"
        )
    op = Operation(actor, now)
    before = {
        "status": message.status.value,
        "last_error": message.last_error,
        "sending_started_at": message.sending_started_at.isoformat() if message.sending_started_at else None,
    }
    message.status = NotificationStatus.QUEUED
    message.sending_started_at = None
    record(
        session,
        op,
        "notification.retry",
        "notification",
        message.id,
        before,
        {"status": NotificationStatus.QUEUED.value, "last_error": message.last_error, "sending_started_at": None},
    )
    session.flush()
    return RetryResult(message.id, op.id, message.status)


# --- sending --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to hand messages over. The password comes from the environment, never from a flag."""

    host: str
    port: int
    sender: str = DEFAULT_SENDER
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.host or not 0 < self.port < 65536:
            raise InvalidInput(f"SMTP server {self.host}:{self.port} is not a host and a port between 1 and 65535")
        if self.user and self.password is None:
            raise InvalidInput(f"SMTP user {self.user!r} needs a password: set MENTORSHIP_SMTP_PASSWORD")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Delivery:
    """What became of one message in a run: sent, failed, queued (to try again), or delivery_unknown."""

    notification_id: int
    recipient: str
    subject: str
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class SendReport:
    deliveries: tuple[Delivery, ...]
    in_flight: int = 0  # claimed by a run that may still be at work: left alone
    error: str | None = None  # why the run stopped early, if it did

    def _with(self, outcome: str) -> tuple[Delivery, ...]:
        return tuple(d for d in self.deliveries if d.outcome == outcome)

    @property
    def sent(self) -> tuple[Delivery, ...]:
        return self._with("sent")

    @property
    def failed(self) -> tuple[Delivery, ...]:
        return self._with("failed")

    @property
    def left_queued(self) -> tuple[Delivery, ...]:
        return self._with("queued")

    @property
    def delivery_unknown(self) -> tuple[Delivery, ...]:
        return self._with("delivery_unknown")


@dataclass(frozen=True)
class OutgoingMessage:
    """A queued message as `notify --dry-run` shows it."""

    notification_id: int
    kind: str
    recipient: str
    has_address: bool
    subject: str
    body: str


def _recipient(name: str, email: str | None) -> str:
    return formataddr((name, email)) if email else f"{name} (no email address)"


def queued_messages(session: Session) -> tuple[OutgoingMessage, ...]:
    """The messages the next `send_queued` would try, oldest first. Writes nothing."""
    return tuple(
        OutgoingMessage(
            m.id, m.kind, _recipient(m.recipient_name, m.recipient_email), bool(m.recipient_email), m.subject, m.body
        )
        for m in session.scalars(
            sa.select(Notification)
            .where(Notification.status == NotificationStatus.QUEUED, Notification.sending_started_at.is_(None))
            .order_by(Notification.id)
        )
    )


class _Failure(Exception):
    """A delivery error, classified: `permanent` fails the message, `stop` ends the run (not the message's fault)."""

    def __init__(self, text: str, *, permanent: bool = False, stop: bool = False) -> None:
        super().__init__(text)
        self.text, self.permanent, self.stop = text, permanent, stop


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _classify(error: Exception, settings: SmtpSettings) -> _Failure:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        text = "; ".join(f"{rcpt} refused: {code} {_text(msg)}" for rcpt, (code, msg) in error.recipients.items())
        return _Failure(text, permanent=all(500 <= c < 600 for c in codes))
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return _Failure(f"{settings.address} refused the login of {settings.user!r}: {error.smtp_code}", stop=True)
    if isinstance(error, smtplib.SMTPSenderRefused):
        return _Failure(f"{settings.address} refused the sender {settings.sender!r}: {error.smtp_code}", stop=True)
    if isinstance(error, smtplib.SMTPResponseException):
        text = f"{settings.address} answered {error.smtp_code} {_text(error.smtp_error)}"
        return _Failure(text, permanent=500 <= error.smtp_code < 600)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return _Failure(f"{settings.address}: {error}", stop=True)
    return _Failure(f"{settings.address}: {error.__class__.__name__}: {error}")


class _Link:
    """One SMTP connection, opened on first use and again after an error."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> None:
        if self.smtp is not None:
            return
        s = self.settings
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password or "")
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp

    def send(self, message: EmailMessage) -> None:
        self.open()
        assert self.smtp is not None
        self.smtp.send_message(message)

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _email(message: Notification, sender: str, now: datetime) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = formataddr((message.recipient_name, message.recipient_email or ""))
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now.astimezone(UTC))
    domain = sender.rpartition("@")[2].strip(" >") or "attendance-desk.invalid"
    # Stable across tries, so a duplicate made by SMTP itself can be recognised by the receiving side.
    email["Message-ID"] = f"<notification-{message.id}.{message.created_at:%Y%m%d%H%M%S}@{domain}>"
    email.set_content(message.body)
    return email


def _rowcount(result: sa.Result[Any]) -> int:
    return cast(sa.CursorResult[Any], result).rowcount


def send_queued(
    factory: sessionmaker[Session],
    settings: SmtpSettings,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None] = time.sleep,
    max_tries: int = 3,
    backoff_seconds: float = 1.0,
    lease: timedelta = SENDING_LEASE,
) -> SendReport:
    """Send every queued message through SMTP; at most once each, as the module's docstring explains.

    This function commits by itself (it is given the session factory, not a session): recording a claim before
    the hand-over and the outcome after it, each in its own transaction, is what makes a crash safe.
    `clock` gives the time of each step; `sleep` waits between tries (`backoff_seconds`, doubled each time).
    Messages without an email address are failed with that reason. When the server cannot be reached, every
    queued message stays queued with the error and one more attempt recorded.
    """
    deliveries: list[Delivery] = []
    with factory.begin() as s:
        now = clock()
        stale = list(
            s.scalars(
                sa.select(Notification).where(
                    Notification.status == NotificationStatus.QUEUED,
                    Notification.sending_started_at.is_not(None),
                    Notification.sending_started_at <= now - lease,
                )
            )
        )
        for m in stale:
            m.status, m.last_error = NotificationStatus.FAILED, DELIVERY_UNKNOWN
            deliveries.append(
                Delivery(
                    m.id,
                    _recipient(m.recipient_name, m.recipient_email),
                    m.subject,
                    "delivery_unknown",
                    DELIVERY_UNKNOWN,
                )
            )
        in_flight = (
            s.scalar(
                sa.select(sa.func.count()).where(
                    Notification.status == NotificationStatus.QUEUED, Notification.sending_started_at.is_not(None)
                )
            )
            or 0
        )
        waiting = list(
            s.scalars(
                sa.select(Notification)
                .where(Notification.status == NotificationStatus.QUEUED, Notification.sending_started_at.is_(None))
                .order_by(Notification.id)
            )
        )
        todo: list[int] = []
        for m in waiting:
            if m.recipient_email:
                todo.append(m.id)
                continue
            m.status, m.last_error = NotificationStatus.FAILED, NO_ADDRESS
            deliveries.append(Delivery(m.id, _recipient(m.recipient_name, None), m.subject, "failed", NO_ADDRESS))

    if not todo:
        return SendReport(tuple(deliveries), in_flight)
    link = _Link(settings)
    try:
        stopped = _connect(link, settings, sleep=sleep, max_tries=max_tries, backoff_seconds=backoff_seconds)
        if stopped is not None:
            deliveries += _leave_queued(factory, todo, stopped)
            return SendReport(tuple(deliveries), in_flight, stopped)
        for position, notification_id in enumerate(todo):
            delivery, stopped = _deliver(
                factory,
                link,
                notification_id,
                settings,
                clock=clock,
                sleep=sleep,
                max_tries=max_tries,
                backoff_seconds=backoff_seconds,
            )
            if delivery is not None:
                deliveries.append(delivery)
            if stopped is not None:
                deliveries += _leave_queued(factory, todo[position + 1 :], stopped)
                break
    finally:
        link.close()
    return SendReport(tuple(deliveries), in_flight, stopped)


def _connect(
    link: _Link, settings: SmtpSettings, *, sleep: Callable[[float], None], max_tries: int, backoff_seconds: float
) -> str | None:
    """Open the connection with bounded tries; the reason it could not be opened, or None."""
    reason = ""
    for attempt in range(1, max_tries + 1):
        try:
            link.open()
            return None
        except (smtplib.SMTPException, OSError) as error:
            failure = _classify(error, settings)
            reason = failure.text
            if failure.stop:
                break
        if attempt < max_tries:
            sleep(backoff_seconds * 2 ** (attempt - 1))
    return f"could not connect to {settings.address} ({reason})"


def _leave_queued(factory: sessionmaker[Session], ids: Sequence[int], reason: str) -> list[Delivery]:
    """Record a run-level error on messages that stay queued (one more attempt each)."""
    with factory.begin() as s:
        for chunk in _chunks(ids):
            s.execute(
                sa.update(Notification)
                .where(
                    Notification.id.in_(chunk),
                    Notification.status == NotificationStatus.QUEUED,
                    Notification.sending_started_at.is_(None),
                )
                .values(attempts=Notification.attempts + 1, last_error=reason)
                .execution_options(synchronize_session=False)
            )
        deliveries: list[Delivery] = []
        for chunk in _chunks(ids):
            rows = s.execute(
                sa.select(
                    Notification.id, Notification.recipient_name, Notification.recipient_email, Notification.subject
                )
                .where(Notification.id.in_(chunk))
                .order_by(Notification.id)
            )
            deliveries += [Delivery(i, _recipient(n, e), subj, "queued", reason) for i, n, e, subj in rows]
        return deliveries


def _deliver(
    factory: sessionmaker[Session],
    link: _Link,
    notification_id: int,
    settings: SmtpSettings,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    max_tries: int,
    backoff_seconds: float,
) -> tuple[Delivery | None, str | None]:
    """Try one message up to `max_tries` times: what became of it (None when another run took it first), and
    why the run must stop, if it must (the message is then left queued, its claim released)."""
    last_error = ""
    for attempt in range(1, max_tries + 1):
        with factory.begin() as s:
            claimed = _rowcount(
                s.execute(
                    sa.update(Notification)
                    .where(
                        Notification.id == notification_id,
                        Notification.status == NotificationStatus.QUEUED,
                        Notification.sending_started_at.is_(None),
                    )
                    .values(sending_started_at=clock(), attempts=Notification.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
            )
            if not claimed:
                return None, None
            m = s.get_one(Notification, notification_id)
            recipient, subject = _recipient(m.recipient_name, m.recipient_email), m.subject
            try:
                email = _email(m, settings.sender, clock())
            except (ValueError, TypeError) as error:
                m.status, m.sending_started_at = NotificationStatus.FAILED, None
                m.last_error = f"the message cannot be written as an email: {error}"
                return Delivery(notification_id, recipient, subject, "failed", m.last_error), None
        # Committed: from here until the outcome is recorded, a crash leaves the claim, and no run resends it.
        try:
            link.send(email)
        except (smtplib.SMTPException, OSError) as error:
            link.close()
            failure = _classify(error, settings)
            last_error = failure.text
            with factory.begin() as s:
                m = s.get_one(Notification, notification_id)
                m.sending_started_at, m.last_error = None, failure.text
                if failure.permanent:
                    m.status = NotificationStatus.FAILED
                    return Delivery(notification_id, recipient, subject, "failed", failure.text), None
            if failure.stop:
                return Delivery(notification_id, recipient, subject, "queued", failure.text), failure.text
            if attempt < max_tries:
                sleep(backoff_seconds * 2 ** (attempt - 1))
            continue
        with factory.begin() as s:
            s.execute(
                sa.update(Notification)
                .where(Notification.id == notification_id, Notification.sent_at.is_(None))
                .values(status=NotificationStatus.SENT, sent_at=clock(), last_error=None)
                .execution_options(synchronize_session=False)
            )
        return Delivery(notification_id, recipient, subject, "sent"), None
    tries = f"{max_tries} tries" if max_tries > 1 else "1 try"
    return Delivery(notification_id, recipient, subject, "queued", f"{last_error} ({tries})"), None
