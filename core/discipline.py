"""Applying the absence policy: compare what a mentee should have with what they have, write the difference.

`plan_policy` only reads; `write_plan` writes a plan inside the caller's transaction, attributed to one
operation. Running `apply_policy` twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core.audit import Operation, record
from core.config import Policy
from core.models import PERSON_KINDS, Booking, BookingStatus, Mentee, Mentor, Reprobation, Warning
from core.policy import CountedAbsence, decide

CANCELLED_BY_REPROBATION = "reprobation"


class ConflictReason(StrEnum):
    SLOT_TAKEN = "slot_taken"
    IN_PAST = "in_past"
    MENTOR_INACTIVE = "mentor_inactive"


@dataclass(frozen=True)
class Conflict:
    """A booking cancelled by a lifted reprobation that cannot be restored, and why."""

    booking_id: int
    reason: ConflictReason


@dataclass(frozen=True)
class PolicyPlan:
    """The difference between what a mentee should have and what they have."""

    mentee_id: int
    issue_warnings: tuple[int, ...] = ()  # cause booking ids
    revoke_warnings: tuple[int, ...] = ()  # warning ids
    issue_reprobation: int | None = None  # cause booking id
    lift_reprobations: tuple[int, ...] = ()  # reprobation ids
    cancel_bookings: tuple[int, ...] = ()
    restore_bookings: tuple[int, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.issue_warnings or self.revoke_warnings or self.issue_reprobation or self.lift_reprobations)


@dataclass
class Consequences:
    """What an action caused, by the ids it touched."""

    warnings_issued: list[int] = field(default_factory=list)
    warnings_revoked: list[int] = field(default_factory=list)
    reprobations_issued: list[int] = field(default_factory=list)
    reprobations_lifted: list[int] = field(default_factory=list)
    bookings_cancelled: list[int] = field(default_factory=list)
    bookings_restored: list[int] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "warnings_issued": len(self.warnings_issued),
            "warnings_revoked": len(self.warnings_revoked),
            "reprobations_issued": len(self.reprobations_issued),
            "reprobations_lifted": len(self.reprobations_lifted),
            "bookings_cancelled": len(self.bookings_cancelled),
            "bookings_restored": len(self.bookings_restored),
        }

    def merge(self, other: Consequences) -> None:
        self.warnings_issued += other.warnings_issued
        self.warnings_revoked += other.warnings_revoked
        self.reprobations_issued += other.reprobations_issued
        self.reprobations_lifted += other.reprobations_lifted
        self.bookings_cancelled += other.bookings_cancelled
        self.bookings_restored += other.bookings_restored
        self.conflicts += other.conflicts


def counted_absences_query(mentee_id: int) -> sa.Select[int, datetime]:
    """No-shows marked by a person: the only absences the policy counts."""
    return sa.select(Booking.id, Booking.start_time).where(
        Booking.mentee_id == mentee_id,
        Booking.attended.is_(False),
        Booking.attendance_marked_by.in_(PERSON_KINDS),
    )


def lock_mentee(session: Session, mentee_id: int) -> Mentee | None:
    """Take the mentee's row lock: every action that can change a mentee's discipline takes it first,
    so two such actions on one mentee run one after the other, across processes."""
    return session.scalar(
        sa.select(Mentee).where(Mentee.id == mentee_id).with_for_update().execution_options(populate_existing=True)
    )


def plan_policy(
    session: Session,
    mentee_id: int,
    policy: Policy,
    now: datetime,
    *,
    extra_absence: CountedAbsence | None = None,
    without_absence: int | None = None,
    protect_person_issued: bool = False,
) -> PolicyPlan:
    """Read the mentee's counted absences and discipline and return the difference (writes nothing).

    `extra_absence` / `without_absence` answer "what if": a no-show about to be marked, a mark about to be
    reset. With `protect_person_issued`, warnings and reprobations issued by a person are left as they are
    (a revert of automated damage never touches a human decision).
    """
    absences = [CountedAbsence(i, t) for i, t in session.execute(counted_absences_query(mentee_id))]
    if without_absence is not None:
        absences = [a for a in absences if a.booking_id != without_absence]
    if extra_absence is not None:
        absences.append(extra_absence)
    decision = decide(absences, policy)
    counted = {a.booking_id for a in absences}

    active_warnings = session.execute(
        sa.select(Warning.id, Warning.booking_id, Warning.issued_by).where(
            Warning.mentee_id == mentee_id, Warning.revoked_at.is_(None)
        )
    ).all()
    warned_causes = {cause for _, cause, _ in active_warnings}
    revoke = tuple(
        wid
        for wid, cause, issued_by in active_warnings
        if cause not in decision.warning_causes and not (protect_person_issued and issued_by in PERSON_KINDS)
    )
    issue = tuple(sorted(decision.warning_causes - warned_causes))

    # Imported history may hold more than one active reprobation: keep at most one that still holds.
    active_reprobations = session.execute(
        sa.select(Reprobation.id, Reprobation.booking_id, Reprobation.issued_by)
        .where(Reprobation.mentee_id == mentee_id, Reprobation.lifted_at.is_(None))
        .order_by(Reprobation.issued_at, Reprobation.id)
    ).all()
    kept: int | None = None
    lift: list[int] = []
    for reprobation_id, cause, issued_by in active_reprobations:
        holds = decision.reprobated and cause in counted and kept is None
        if holds or (protect_person_issued and issued_by in PERSON_KINDS):
            kept = reprobation_id if kept is None else kept
        else:
            lift.append(reprobation_id)
    issue_reprobation = decision.reprobation_cause if kept is None else None

    restore: tuple[int, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    if lift:
        restore, conflicts = _restorable(session, lift, now)
    cancel: tuple[int, ...] = ()
    if issue_reprobation is not None:
        cancel = tuple(
            session.scalars(
                sa.select(Booking.id)
                .where(
                    Booking.mentee_id == mentee_id,
                    Booking.status == BookingStatus.SCHEDULED,
                    Booking.start_time > now,
                )
                .order_by(Booking.start_time, Booking.id)
            )
        )
        cancel = tuple(sorted({*cancel, *restore}))
    return PolicyPlan(mentee_id, issue, revoke, issue_reprobation, tuple(lift), cancel, restore, conflicts)


def _restorable(
    session: Session, reprobation_ids: Iterable[int], now: datetime
) -> tuple[tuple[int, ...], tuple[Conflict, ...]]:
    """Which bookings cancelled by these reprobations can be restored, and which are in conflict."""
    other = aliased(Booking)
    overlapping = (
        sa.select(other.id)
        .where(
            other.mentor_id == Booking.mentor_id,
            other.id != Booking.id,
            other.status == BookingStatus.SCHEDULED,
            other.start_time < Booking.end_time,
            other.end_time > Booking.start_time,
        )
        .exists()
    )
    rows = session.execute(
        sa.select(Booking.id, Booking.start_time, Mentor.active, overlapping)
        .join(Mentor, Mentor.id == Booking.mentor_id)
        .where(
            Booking.reprobation_id.in_(list(reprobation_ids)),
            Booking.status == BookingStatus.CANCELLED,
        )
        .order_by(Booking.start_time, Booking.id)
    ).all()
    restore: list[int] = []
    conflicts: list[Conflict] = []
    for booking_id, start_time, mentor_active, slot_taken in rows:
        if start_time <= now:
            conflicts.append(Conflict(booking_id, ConflictReason.IN_PAST))
        elif not mentor_active:
            conflicts.append(Conflict(booking_id, ConflictReason.MENTOR_INACTIVE))
        elif slot_taken:
            conflicts.append(Conflict(booking_id, ConflictReason.SLOT_TAKEN))
        else:
            restore.append(booking_id)
    return tuple(restore), tuple(conflicts)


def _booking_state(b: Booking) -> dict[str, Any]:
    return {
        "status": b.status.value,
        "cancelled_by": b.cancelled_by.value if b.cancelled_by else None,
        "cancelled_by_name": b.cancelled_by_name,
        "reprobation_id": b.reprobation_id,
    }


def write_plan(session: Session, plan: PolicyPlan, op: Operation) -> Consequences:
    """Write a plan made in this transaction (after `lock_mentee`), attributed to `op`."""
    done = Consequences(conflicts=list(plan.conflicts))
    actor = op.actor
    for warning_id in plan.revoke_warnings:
        warning = session.get_one(Warning, warning_id)
        warning.revoked_at, warning.revoked_by, warning.revoked_by_name = op.now, actor.kind, actor.name
        record(
            session,
            op,
            "warning.revoke",
            "warning",
            warning_id,
            {"revoked_at": None},
            {"revoked_at": op.now.isoformat()},
        )
        done.warnings_revoked.append(warning_id)
    for cause in plan.issue_warnings:
        warning = Warning(
            mentee_id=plan.mentee_id,
            booking_id=cause,
            issued_at=op.now,
            issued_by=actor.kind,
            issued_by_name=actor.name,
        )
        session.add(warning)
        session.flush()
        record(
            session,
            op,
            "warning.issue",
            "warning",
            warning.id,
            None,
            {"mentee_id": plan.mentee_id, "booking_id": cause},
        )
        done.warnings_issued.append(warning.id)
    for reprobation_id in plan.lift_reprobations:
        reprobation = session.get_one(Reprobation, reprobation_id)
        reprobation.lifted_at, reprobation.lifted_by = op.now, actor.kind
        reprobation.lifted_by_name = actor.name
        record(
            session,
            op,
            "reprobation.lift",
            "reprobation",
            reprobation.id,
            {"lifted_at": None},
            {"lifted_at": op.now.isoformat()},
        )
        done.reprobations_lifted.append(reprobation.id)
    for booking_id in plan.restore_bookings:
        booking = session.get_one(Booking, booking_id)
        before = _booking_state(booking)
        booking.status = BookingStatus.SCHEDULED
        booking.restored_at, booking.restored_by, booking.restored_by_name = op.now, actor.kind, actor.name
        record(session, op, "booking.restore", "booking", booking_id, before, _booking_state(booking))
        done.bookings_restored.append(booking_id)
    if plan.issue_reprobation is not None:
        reprobation = Reprobation(
            mentee_id=plan.mentee_id,
            booking_id=plan.issue_reprobation,
            issued_at=op.now,
            issued_by=actor.kind,
            issued_by_name=actor.name,
        )
        session.add(reprobation)
        session.flush()
        record(
            session,
            op,
            "reprobation.issue",
            "reprobation",
            reprobation.id,
            None,
            {"mentee_id": plan.mentee_id, "booking_id": plan.issue_reprobation},
        )
        done.reprobations_issued.append(reprobation.id)
        for booking_id in plan.cancel_bookings:
            booking = session.get_one(Booking, booking_id)
            before = _booking_state(booking)
            booking.status = BookingStatus.CANCELLED
            booking.cancelled_at, booking.cancelled_by, booking.cancelled_by_name = (
                op.now,
                actor.kind,
                actor.name,
            )
            booking.cancellation_reason = CANCELLED_BY_REPROBATION
            booking.reprobation_id = reprobation.id
            booking.restored_at = booking.restored_by = booking.restored_by_name = None
            record(session, op, "booking.cancel", "booking", booking_id, before, _booking_state(booking))
            done.bookings_cancelled.append(booking_id)
    session.flush()
    return done


def apply_policy(
    session: Session, mentee_id: int, policy: Policy, op: Operation, *, protect_person_issued: bool = False
) -> Consequences:
    """Bring one mentee's warnings, reprobation and bookings in line with the policy. Idempotent."""
    lock_mentee(session, mentee_id)
    plan = plan_policy(session, mentee_id, policy, op.now, protect_person_issued=protect_person_issued)
    return write_plan(session, plan, op)
