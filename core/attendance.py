"""Marking attendance: the only way an absence comes to be, and only by a person.

Each function is one user action: the caller wraps it in one transaction (`with factory.begin() as s:`);
it writes under one operation id, records every change in the audit log, and raises a `DomainError`
(having written nothing) when the action is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.audit import Actor, Operation, new_entry, record_many
from core.config import Policy
from core.discipline import Consequences, lock_mentee, plan_policy, write_plan
from core.errors import AlreadyMarked, InvalidAction, InvalidInput, NotAllowed, NotFound
from core.models import ActorKind, Booking, BookingStatus, Mentee
from core.policy import CountedAbsence

# Statements built once with bound parameters: SQLAlchemy then reuses each one's cache key, which would cost
# more to work out than these statements take to run.
_MENTEE_OF_BOOKING = sa.select(Booking.mentee_id).where(Booking.id == sa.bindparam("booking_id"))
_BOOKING = sa.select(Booking).where(Booking.id == sa.bindparam("booking_id")).execution_options(populate_existing=True)
_BOOKING_AND_MENTEE = (
    sa.select(Booking, Mentee.name)
    .join(Mentee, Mentee.id == Booking.mentee_id)
    .where(Booking.id == sa.bindparam("booking_id"))
)
_BOOKINGS = cast(sa.Table, Booking.__table__)
_SET_ATTENDANCE = sa.update(_BOOKINGS).where(_BOOKINGS.c.id == sa.bindparam("booking_id"))


@dataclass(frozen=True)
class MarkResult:
    booking_id: int
    attended: bool | None
    attendance_marked_by: ActorKind | None
    operation_id: str | None
    consequences: Consequences = field(default_factory=Consequences)


@dataclass(frozen=True)
class NoShowPreview:
    """What marking this booking no-show would cause, computed without writing anything."""

    booking_id: int
    mentee_id: int
    mentee_name: str
    warning: bool
    reprobation: bool
    bookings_cancelled: int
    consequences: Consequences

    @property
    def message(self) -> str:
        if self.reprobation:
            n = self.bookings_cancelled
            return f"{self.mentee_name} will be reprobated and {n} future session{'s' if n != 1 else ''} cancelled"
        if self.warning:
            return f"a warning to {self.mentee_name}"
        return f"no warning or reprobation for {self.mentee_name}"


def _describe(booking: Booking) -> str:
    if booking.attended is None:
        return "pending"
    mark = "attended" if booking.attended else "no-show"
    by = booking.attendance_marked_by.value if booking.attendance_marked_by else "no one recorded"
    name = f" {booking.attendance_marked_by_name}" if booking.attendance_marked_by_name else ""
    return f"{mark} (marked by {by}{name})"


def _state(booking: Booking) -> dict[str, Any]:
    return {
        "attended": booking.attended,
        "attendance_marked_by": booking.attendance_marked_by.value if booking.attendance_marked_by else None,
        "attendance_marked_by_name": booking.attendance_marked_by_name,
        "attendance_marked_at": booking.attendance_marked_at.isoformat() if booking.attendance_marked_at else None,
    }


def _check_actor(booking_id: int, actor: Actor, reason: str | None) -> None:
    if not actor.is_person:
        raise NotAllowed(
            f"booking {booking_id}: only a mentor or an admin may decide attendance, not {actor.kind.value}"
        )
    if actor.kind is ActorKind.ADMIN and not (reason and reason.strip()):
        raise InvalidInput(f"booking {booking_id}: an admin acting for a mentor must give a reason")


def _load_locked(session: Session, booking_id: int, actor: Actor, now: datetime) -> Booking:
    """The booking, after taking its mentee's lock and re-reading it, checked against the actor."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    mentee_id = session.scalar(_MENTEE_OF_BOOKING, {"booking_id": booking_id})
    if mentee_id is None:
        raise NotFound(f"booking {booking_id} does not exist")
    locked = lock_mentee(session, mentee_id)
    assert locked  # a booking's mentee is a foreign key
    booking = session.execute(_BOOKING, {"booking_id": booking_id}).scalar_one()
    if actor.kind is ActorKind.MENTOR and booking.mentor_id != actor.mentor_id:
        raise NotAllowed(f"booking {booking_id} is not one of your sessions")
    return booking


def _set_attendance(session: Session, op: Operation, action: str, booking: Booking, **values: Any) -> None:
    """Write the booking's attendance with one statement, keep the loaded booking in step, and record it."""
    before = _state(booking)
    session.execute(_SET_ATTENDANCE, {"booking_id": booking.id, **values})
    for key, value in values.items():
        set_committed_value(booking, key, value)
    record_many(session, [new_entry(op, action, "booking", booking.id, before, _state(booking))])


def _check_markable(booking: Booking, now: datetime) -> None:
    if booking.status is BookingStatus.CANCELLED:
        raise InvalidAction(f"booking {booking.id} was cancelled; a cancelled session cannot be marked")
    if booking.end_time > now:
        raise InvalidAction(
            f"booking {booking.id} has not ended yet (it ends {booking.end_time:%Y-%m-%d %H:%M} UTC); "
            "only past sessions can be marked"
        )
    if booking.attended is not None:
        raise AlreadyMarked(f"booking {booking.id} is already marked {_describe(booking)}; reset it first")


def _mark(
    session: Session,
    booking_id: int,
    attended: bool,
    *,
    actor: Actor,
    now: datetime,
    policy: Policy,
    reason: str | None,
) -> MarkResult:
    _check_actor(booking_id, actor, reason)
    booking = _load_locked(session, booking_id, actor, now)
    _check_markable(booking, now)
    op = Operation(actor, now, reason)
    _set_attendance(
        session,
        op,
        "attendance.mark",
        booking,
        attended=attended,
        attendance_marked_by=actor.kind,
        attendance_marked_by_name=actor.name,
        attendance_marked_at=now,
        attendance_reverted_at=None,
    )
    consequences = Consequences()
    if not attended:
        plan = plan_policy(session, booking.mentee_id, policy, now, for_update=True)
        consequences = write_plan(session, plan, op)
    return MarkResult(booking.id, attended, actor.kind, op.id, consequences)


def mark_attended(
    session: Session,
    booking_id: int,
    *,
    actor: Actor,
    now: datetime,
    policy: Policy,
    reason: str | None = None,
) -> MarkResult:
    """Mark a pending past booking attended. Attendance changes no discipline."""
    return _mark(session, booking_id, True, actor=actor, now=now, policy=policy, reason=reason)


def mark_no_show(
    session: Session,
    booking_id: int,
    *,
    actor: Actor,
    now: datetime,
    policy: Policy,
    reason: str | None = None,
) -> MarkResult:
    """Mark a pending past booking no-show (a counted absence) and apply the policy to its mentee."""
    return _mark(session, booking_id, False, actor=actor, now=now, policy=policy, reason=reason)


def reset_attendance(
    session: Session,
    booking_id: int,
    *,
    actor: Actor,
    now: datetime,
    policy: Policy,
    reason: str | None = None,
) -> MarkResult:
    """Send a marked booking back to pending and withdraw what rested on it.

    A mentor resets only marks made by a mentor on their own sessions; an admin may reset any mark
    (with a reason). Re-applying the policy revokes warnings and lifts a reprobation that no longer hold.
    """
    _check_actor(booking_id, actor, reason)
    booking = _load_locked(session, booking_id, actor, now)
    if booking.attended is None:
        raise InvalidAction(f"booking {booking_id} is pending; there is no mark to reset")
    if actor.kind is ActorKind.MENTOR and booking.attendance_marked_by is not ActorKind.MENTOR:
        raise NotAllowed(f"booking {booking_id} is marked {_describe(booking)}; only an admin can reset that mark")
    was_counted = booking.attended is False and booking.attendance_marked_by in (
        ActorKind.MENTOR,
        ActorKind.ADMIN,
    )
    op = Operation(actor, now, reason)
    _set_attendance(
        session,
        op,
        "attendance.reset",
        booking,
        attended=None,
        attendance_marked_by=None,
        attendance_marked_by_name=None,
        attendance_marked_at=None,
    )
    consequences = Consequences()
    if was_counted:
        plan = plan_policy(session, booking.mentee_id, policy, now, for_update=True)
        consequences = write_plan(session, plan, op)
    return MarkResult(booking.id, None, None, op.id, consequences)


def preview_no_show(session: Session, booking_id: int, *, actor: Actor, now: datetime, policy: Policy) -> NoShowPreview:
    """What `mark_no_show` would cause now, with the same checks, writing nothing."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    found = session.execute(_BOOKING_AND_MENTEE, {"booking_id": booking_id}).one_or_none()
    if found is None:
        raise NotFound(f"booking {booking_id} does not exist")
    booking, mentee_name = found
    if actor.kind is ActorKind.MENTOR and booking.mentor_id != actor.mentor_id:
        raise NotAllowed(f"booking {booking_id} is not one of your sessions")
    if not actor.is_person:
        raise NotAllowed(
            f"booking {booking_id}: only a mentor or an admin may decide attendance, not {actor.kind.value}"
        )
    _check_markable(booking, now)
    plan = plan_policy(
        session, booking.mentee_id, policy, now, extra_absence=CountedAbsence(booking.id, booking.start_time)
    )
    consequences = Consequences(
        warnings_issued=list(plan.issue_warnings),
        warnings_revoked=list(plan.revoke_warnings),
        reprobations_issued=[plan.issue_reprobation] if plan.issue_reprobation is not None else [],
        reprobations_lifted=list(plan.lift_reprobations),
        bookings_cancelled=list(plan.cancel_bookings),
        bookings_restored=list(plan.restore_bookings),
        conflicts=list(plan.conflicts),
    )
    return NoShowPreview(
        booking.id,
        booking.mentee_id,
        mentee_name,
        warning=booking.id in plan.issue_warnings,
        reprobation=plan.issue_reprobation is not None,
        bookings_cancelled=len(plan.cancel_bookings),
        consequences=consequences,
    )
