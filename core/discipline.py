"""Applying the absence policy: compare what a mentee should have with what they have, write the difference.

`plan_policy` only reads; `write_plan` writes a plan inside the caller's transaction, attributed to one
operation. Running `apply_policy` twice changes nothing the second time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core.audit import Operation, new_entry, record, record_many
from core.config import Policy
from core.models import (
    PERSON_KINDS,
    ActorKind,
    Booking,
    BookingStatus,
    Mentee,
    Mentor,
    Reprobation,
    Warning,
)
from core.notifications import queue_consequence_notices
from core.policy import CountedAbsence, decide

CANCELLED_BY_REPROBATION = "reprobation"
LOCK_CHUNK = 5000  # ids per statement, well under SQLite's bound-parameter limit


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


# The statements of one mentee's policy (a mark, a reset), built once with bound parameters: SQLAlchemy then
# reuses each one's cache key, which would cost more to work out than these statements take to run.
_LOCK_MENTEE = sa.select(Mentee.id).where(Mentee.id == sa.bindparam("mentee_id")).with_for_update()
# No-shows marked by a person: the only absences the policy counts.
_COUNTED_ABSENCES = sa.select(Booking.id, Booking.start_time).where(
    Booking.mentee_id == sa.bindparam("mentee_id"),
    Booking.attended.is_(False),
    Booking.attendance_marked_by.in_(PERSON_KINDS),
)
_ACTIVE_WARNINGS = (
    sa.select(Warning.id, Warning.booking_id, Warning.issued_by)
    .where(Warning.mentee_id == sa.bindparam("mentee_id"), Warning.revoked_at.is_(None))
    .order_by(Warning.id)
)
_ACTIVE_REPROBATIONS = (
    sa.select(Reprobation.id, Reprobation.booking_id, Reprobation.issued_by)
    .where(Reprobation.mentee_id == sa.bindparam("mentee_id"), Reprobation.lifted_at.is_(None))
    .order_by(Reprobation.issued_at, Reprobation.id)
)
_FUTURE_BOOKINGS = (
    sa.select(Booking.id)
    .where(
        Booking.mentee_id == sa.bindparam("mentee_id"),
        Booking.status == BookingStatus.SCHEDULED,
        Booking.start_time > sa.bindparam("now"),
    )
    .order_by(Booking.start_time, Booking.id)
)
_BOOKING_STATES = sa.select(
    Booking.id, Booking.status, Booking.cancelled_by, Booking.cancelled_by_name, Booking.reprobation_id
).where(Booking.id.in_(sa.bindparam("ids", expanding=True)))
# Writes are Core statements of the tables (the columns to set are the parameters given): they refresh no
# object already loaded in the session, and none of the callers holds a warning, reprobation or booking
# that a plan writes.
_WARNINGS, _REPROBATIONS, _BOOKINGS = (cast(sa.Table, m.__table__) for m in (Warning, Reprobation, Booking))
_NEW_WARNING = sa.insert(_WARNINGS).returning(_WARNINGS.c.id)
_NEW_REPROBATION = sa.insert(_REPROBATIONS).returning(_REPROBATIONS.c.id)
_WARNINGS_BY_ID = sa.update(_WARNINGS).where(_WARNINGS.c.id.in_(sa.bindparam("ids", expanding=True)))
_REPROBATIONS_BY_ID = sa.update(_REPROBATIONS).where(_REPROBATIONS.c.id.in_(sa.bindparam("ids", expanding=True)))
_BOOKINGS_BY_ID = sa.update(_BOOKINGS).where(_BOOKINGS.c.id.in_(sa.bindparam("ids", expanding=True)))


def lock_mentee(session: Session, mentee_id: int) -> bool:
    """Take the mentee's row lock: every action that can change a mentee's discipline takes it first,
    so two such actions on one mentee run one after the other, across processes. False: no such mentee."""
    return session.scalar(_LOCK_MENTEE, {"mentee_id": mentee_id}) is not None


# One alias for every call: a statement built on a new alias costs as much again to run.
_MINE = aliased(Booking, name="mine")


def lock_future_slots(session: Session, mentee_ids: Iterable[int], now: datetime) -> None:
    """Lock the mentees' future bookings and every booking of the same mentor that overlaps one of them.

    Take it after the mentee locks and before writing any future booking. Restoring a session takes its slot
    in the mentor's calendar, which another mentee's action may be restoring into at the same moment: with
    these rows locked, the two slot checks run one after the other. Every lock is taken in one pass in
    ascending id order, so two such actions never wait for each other in a cycle. (Not the mentor's row: on
    MariaDB every write of a booking takes a shared lock on its mentor through the foreign key.)

    SQLite has no row locks: there every writing transaction holds the database's write lock from its first
    statement (`BEGIN IMMEDIATE`, see core.db), so the actions already run one after the other.
    """
    if session.get_bind().dialect.name == "sqlite":
        return
    mine = _MINE
    wanted = sorted(set(mentee_ids))
    in_play: set[int] = set()
    for start in range(0, len(wanted), LOCK_CHUNK):
        # Driven by the mentees' own future bookings, each probing its mentor's calendar around it
        # (ix_bookings_mentor_calendar): an EXISTS tested on every booking would read the whole table.
        overlapping_one_of_mine = sa.and_(
            mine.mentor_id == Booking.mentor_id,
            mine.start_time < Booking.end_time,
            mine.end_time > Booking.start_time,
        )
        in_play.update(
            session.scalars(
                sa.select(Booking.id)
                .join(mine, overlapping_one_of_mine)
                .where(mine.mentee_id.in_(wanted[start : start + LOCK_CHUNK]), mine.start_time > now)
            )
        )
    ordered = sorted(in_play)
    for start in range(0, len(ordered), LOCK_CHUNK):
        session.execute(
            sa.select(Booking.id)
            .where(Booking.id.in_(ordered[start : start + LOCK_CHUNK]))
            .order_by(Booking.id)
            .with_for_update(key_share=True)
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
    for_update: bool = False,
) -> PolicyPlan:
    """Read the mentee's counted absences and discipline and return the difference (writes nothing).

    `extra_absence` / `without_absence` answer "what if": a no-show about to be marked, a mark about to be
    reset. With `protect_person_issued`, warnings and reprobations issued by a person are left as they are
    (a revert of automated damage never touches a human decision). Pass `for_update` when the plan is to be
    written: a plan that restores or cancels bookings then locks them first (`lock_future_slots`).
    """
    mentee = {"mentee_id": mentee_id}
    absences = [CountedAbsence(i, t) for i, t in session.execute(_COUNTED_ABSENCES, mentee)]
    if without_absence is not None:
        absences = [a for a in absences if a.booking_id != without_absence]
    if extra_absence is not None:
        absences.append(extra_absence)
    active_warnings = session.execute(_ACTIVE_WARNINGS, mentee).all()
    active_reprobations = session.execute(_ACTIVE_REPROBATIONS, mentee).all()
    issue, revoke, issue_reprobation, lift = _compare(
        absences, active_warnings, active_reprobations, policy, protect_person_issued
    )

    if for_update and (lift or issue_reprobation is not None):
        lock_future_slots(session, [mentee_id], now)
    restore: tuple[int, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    if lift:
        restore, conflicts = restorable_bookings(session, lift, now)
    cancel: tuple[int, ...] = ()
    if issue_reprobation is not None:
        future = session.scalars(_FUTURE_BOOKINGS, {"mentee_id": mentee_id, "now": now})
        cancel = tuple(sorted({*future, *restore}))
    return PolicyPlan(mentee_id, issue, revoke, issue_reprobation, tuple(lift), cancel, restore, conflicts)


# (id, cause booking id, issued by) of an active warning or reprobation
_Issued = tuple[int, int, ActorKind | None]


def _compare(
    absences: list[CountedAbsence],
    active_warnings: Sequence[_Issued],
    active_reprobations: Sequence[_Issued],
    policy: Policy,
    protect_person_issued: bool,
) -> tuple[tuple[int, ...], tuple[int, ...], int | None, list[int]]:
    """What a mentee should have against what they have: (warnings to issue by cause, warnings to revoke,
    the cause of a reprobation to issue, reprobations to lift). Active reprobations come oldest first."""
    decision = decide(absences, policy)
    counted = {a.booking_id for a in absences}
    warned_causes = {cause for _, cause, _ in active_warnings}
    revoke = tuple(
        wid
        for wid, cause, issued_by in active_warnings
        if cause not in decision.warning_causes and not (protect_person_issued and issued_by in PERSON_KINDS)
    )
    issue = tuple(sorted(decision.warning_causes - warned_causes))

    # Imported history may hold more than one active reprobation: keep at most one that still holds.
    kept: int | None = None
    lift: list[int] = []
    for reprobation_id, cause, issued_by in active_reprobations:
        holds = decision.reprobated and cause in counted and kept is None
        if holds or (protect_person_issued and issued_by in PERSON_KINDS):
            kept = reprobation_id if kept is None else kept
        else:
            lift.append(reprobation_id)
    issue_reprobation = decision.reprobation_cause if kept is None else None
    return issue, revoke, issue_reprobation, lift


def plan_policies(
    session: Session,
    mentee_ids: Iterable[int],
    policy: Policy,
    now: datetime,
    *,
    protect_person_issued: bool = False,
) -> list[PolicyPlan]:
    """`plan_policy` for many mentees, in mentee id order: the same plans, read with a few set-based queries
    per few thousand mentees instead of several queries per mentee. Writes and locks nothing: when the plans
    are to be written, take the mentees' locks and `lock_future_slots` for all of them first."""
    plans: list[PolicyPlan] = []
    wanted = sorted(set(mentee_ids))
    # Plain column reads on the session's connection (after a flush, so they see what this transaction wrote):
    # the ORM's handling of each row would add about half again to the ~100,000 rows of a large revert.
    session.flush()
    db = session.connection()
    for start in range(0, len(wanted), LOCK_CHUNK):
        chunk = wanted[start : start + LOCK_CHUNK]
        absences: defaultdict[int, list[CountedAbsence]] = defaultdict(list)
        for mentee_id, booking_id, start_time in db.execute(
            sa.select(Booking.mentee_id, Booking.id, Booking.start_time).where(
                Booking.mentee_id.in_(chunk),
                Booking.attended.is_(False),
                Booking.attendance_marked_by.in_(PERSON_KINDS),
            )
        ).all():
            absences[mentee_id].append(CountedAbsence(booking_id, start_time))
        warnings: defaultdict[int, list[_Issued]] = defaultdict(list)
        for mentee_id, warning_id, cause, issued_by in db.execute(
            sa.select(Warning.mentee_id, Warning.id, Warning.booking_id, Warning.issued_by)
            .where(Warning.mentee_id.in_(chunk), Warning.revoked_at.is_(None))
            .order_by(Warning.mentee_id, Warning.id)
        ).all():
            warnings[mentee_id].append((warning_id, cause, issued_by))
        reprobations: defaultdict[int, list[_Issued]] = defaultdict(list)
        for mentee_id, reprobation_id, cause, issued_by in db.execute(
            sa.select(Reprobation.mentee_id, Reprobation.id, Reprobation.booking_id, Reprobation.issued_by)
            .where(Reprobation.mentee_id.in_(chunk), Reprobation.lifted_at.is_(None))
            .order_by(Reprobation.mentee_id, Reprobation.issued_at, Reprobation.id)
        ).all():
            reprobations[mentee_id].append((reprobation_id, cause, issued_by))
        compared = {
            m: _compare(absences[m], warnings[m], reprobations[m], policy, protect_person_issued) for m in chunk
        }
        restorable = _restorable_by_mentee(session, [r for *_, lift in compared.values() for r in lift], now)
        future: defaultdict[int, list[int]] = defaultdict(list)
        reprobated = [m for m, (_, _, cause, _) in compared.items() if cause is not None]
        if reprobated:
            for mentee_id, booking_id in db.execute(
                sa.select(Booking.mentee_id, Booking.id)
                .where(
                    Booking.mentee_id.in_(reprobated),
                    Booking.status == BookingStatus.SCHEDULED,
                    Booking.start_time > now,
                )
                .order_by(Booking.start_time, Booking.id)
            ).all():
                future[mentee_id].append(booking_id)
        for m in chunk:
            issue, revoke, issue_reprobation, lift = compared[m]
            restore, conflicts = restorable.get(m, ((), ()))
            cancel = tuple(sorted({*future[m], *restore})) if issue_reprobation is not None else ()
            plans.append(PolicyPlan(m, issue, revoke, issue_reprobation, tuple(lift), cancel, restore, conflicts))
    return plans


def restorable_bookings(
    session: Session, reprobation_ids: Iterable[int], now: datetime
) -> tuple[tuple[int, ...], tuple[Conflict, ...]]:
    """Which bookings cancelled by these reprobations can be restored, and which are in conflict."""
    restore: list[int] = []
    conflicts: list[Conflict] = []
    for booking_id, _, conflict in _restorable_rows(session, list(reprobation_ids), now):
        if conflict is None:
            restore.append(booking_id)
        else:
            conflicts.append(conflict)
    return tuple(restore), tuple(conflicts)


def _restorable_by_mentee(
    session: Session, reprobation_ids: Sequence[int], now: datetime
) -> dict[int, tuple[tuple[int, ...], tuple[Conflict, ...]]]:
    """`restorable_bookings` of many reprobations at once, by the mentee of each (whose reprobations they are)."""
    restore: defaultdict[int, list[int]] = defaultdict(list)
    conflicts: defaultdict[int, list[Conflict]] = defaultdict(list)
    for start in range(0, len(reprobation_ids), LOCK_CHUNK):
        for booking_id, mentee_id, conflict in _restorable_rows(
            session, list(reprobation_ids[start : start + LOCK_CHUNK]), now
        ):
            if conflict is None:
                restore[mentee_id].append(booking_id)
            else:
                conflicts[mentee_id].append(conflict)
    return {m: (tuple(restore[m]), tuple(conflicts[m])) for m in {*restore, *conflicts}}


_OTHER = aliased(Booking, name="other")
# Built once (a statement built on a new alias costs far more to run than to answer): each booking these
# reprobations cancelled that is still cancelled, whether its mentor is active, and whether another scheduled
# booking of the mentor overlaps it. Only a session still to come needs the slot check (one already begun is in
# conflict anyway), and probing the calendar after a long-past session would read the mentor's whole history.
_CANCELLED_BY_REPROBATIONS = (
    sa.select(
        Booking.id,
        Booking.mentee_id,
        Booking.start_time,
        Mentor.active,
        sa.case(
            (
                Booking.start_time > sa.bindparam("now"),
                sa.select(_OTHER.id)
                .where(
                    _OTHER.mentor_id == Booking.mentor_id,
                    _OTHER.id != Booking.id,
                    _OTHER.status == BookingStatus.SCHEDULED,
                    _OTHER.start_time < Booking.end_time,
                    _OTHER.end_time > Booking.start_time,
                )
                .exists(),
            )
        ),
    )
    .join(Mentor, Mentor.id == Booking.mentor_id)
    .where(Booking.reprobation_id.in_(sa.bindparam("ids", expanding=True)), Booking.status == BookingStatus.CANCELLED)
    .order_by(Booking.start_time, Booking.id)
)


def _restorable_rows(
    session: Session, reprobation_ids: list[int], now: datetime
) -> list[tuple[int, int, Conflict | None]]:
    """(booking id, mentee id, why it cannot be restored or None) of each booking these reprobations
    cancelled that is still cancelled, in session order."""
    rows = session.execute(_CANCELLED_BY_REPROBATIONS, {"ids": reprobation_ids, "now": now}).all()
    verdicts: list[tuple[int, int, Conflict | None]] = []
    for booking_id, mentee_id, start_time, mentor_active, slot_taken in rows:
        if start_time <= now:
            verdicts.append((booking_id, mentee_id, Conflict(booking_id, ConflictReason.IN_PAST)))
        elif not mentor_active:
            verdicts.append((booking_id, mentee_id, Conflict(booking_id, ConflictReason.MENTOR_INACTIVE)))
        elif slot_taken:
            verdicts.append((booking_id, mentee_id, Conflict(booking_id, ConflictReason.SLOT_TAKEN)))
        else:
            verdicts.append((booking_id, mentee_id, None))
    return verdicts


def write_plan(session: Session, plan: PolicyPlan, op: Operation) -> Consequences:
    """Write a plan made in this transaction (after `lock_mentee`, with `for_update`), attributed to `op`.

    One statement per kind of change, whatever the number of rows; the audit entries follow, in this order:
    warnings revoked, warnings issued, reprobations lifted, bookings restored, the reprobation issued,
    bookings cancelled.
    """
    actor, at = op.actor, op.now.isoformat()
    done = Consequences(conflicts=list(plan.conflicts))
    entries: list[tuple[str, str, int, dict[str, Any] | None, dict[str, Any]]] = []
    if plan.revoke_warnings:
        session.execute(
            _WARNINGS_BY_ID,
            {
                "ids": plan.revoke_warnings,
                "revoked_at": op.now,
                "revoked_by": actor.kind,
                "revoked_by_name": actor.name,
            },
        )
        for warning_id in plan.revoke_warnings:
            entries.append(("warning.revoke", "warning", warning_id, {"revoked_at": None}, {"revoked_at": at}))
        done.warnings_revoked.extend(plan.revoke_warnings)
    issued = {"mentee_id": plan.mentee_id, "issued_at": op.now, "issued_by": actor.kind, "issued_by_name": actor.name}
    for cause in plan.issue_warnings:
        warning_id = session.execute(_NEW_WARNING, {**issued, "booking_id": cause}).scalar_one()
        after = {"mentee_id": plan.mentee_id, "booking_id": cause}
        entries.append(("warning.issue", "warning", warning_id, None, after))
        done.warnings_issued.append(warning_id)
    if plan.lift_reprobations:
        session.execute(
            _REPROBATIONS_BY_ID,
            {"ids": plan.lift_reprobations, "lifted_at": op.now, "lifted_by": actor.kind, "lifted_by_name": actor.name},
        )
        for reprobation_id in plan.lift_reprobations:
            entries.append(("reprobation.lift", "reprobation", reprobation_id, {"lifted_at": None}, {"lifted_at": at}))
        done.reprobations_lifted.extend(plan.lift_reprobations)
    cancel = plan.cancel_bookings if plan.issue_reprobation is not None else ()
    # What each booking to restore or cancel looks like now: the audit entries' "before".
    states = _booking_states(session, [*plan.restore_bookings, *cancel])
    if plan.restore_bookings:
        _update_bookings(
            session,
            plan.restore_bookings,
            status=BookingStatus.SCHEDULED,
            restored_at=op.now,
            restored_by=actor.kind,
            restored_by_name=actor.name,
        )
        for booking_id in plan.restore_bookings:
            before = states[booking_id]
            states[booking_id] = {**before, "status": BookingStatus.SCHEDULED.value}
            entries.append(("booking.restore", "booking", booking_id, before, states[booking_id]))
        done.bookings_restored.extend(plan.restore_bookings)
    if plan.issue_reprobation is not None:
        reprobation_id = session.execute(
            _NEW_REPROBATION, {**issued, "booking_id": plan.issue_reprobation}
        ).scalar_one()
        after = {"mentee_id": plan.mentee_id, "booking_id": plan.issue_reprobation}
        entries.append(("reprobation.issue", "reprobation", reprobation_id, None, after))
        done.reprobations_issued.append(reprobation_id)
        _update_bookings(
            session,
            cancel,
            status=BookingStatus.CANCELLED,
            cancelled_at=op.now,
            cancelled_by=actor.kind,
            cancelled_by_name=actor.name,
            cancellation_reason=CANCELLED_BY_REPROBATION,
            reprobation_id=reprobation_id,
            restored_at=None,
            restored_by=None,
            restored_by_name=None,
        )
        cancelled = {
            "status": BookingStatus.CANCELLED.value,
            "cancelled_by": actor.kind.value,
            "cancelled_by_name": actor.name,
            "reprobation_id": reprobation_id,
        }
        for booking_id in cancel:
            entries.append(("booking.cancel", "booking", booking_id, states[booking_id], cancelled))
        done.bookings_cancelled.extend(cancel)
    for entry in entries:
        record(session, op, *entry)
    session.flush()
    # Tell the mentee in this same transaction (the notice is written just before it commits).
    queue_consequence_notices(session, op, plan.mentee_id, done)
    return done


def _booking_states(session: Session, booking_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The state of each booking as the audit log records a cancellation or a restoration."""
    states: dict[int, dict[str, Any]] = {}
    for start in range(0, len(booking_ids), LOCK_CHUNK):
        chunk = {"ids": booking_ids[start : start + LOCK_CHUNK]}
        for booking_id, status, cancelled_by, cancelled_by_name, reprobation_id in session.execute(
            _BOOKING_STATES, chunk
        ):
            states[booking_id] = {
                "status": status.value,
                "cancelled_by": cancelled_by.value if cancelled_by else None,
                "cancelled_by_name": cancelled_by_name,
                "reprobation_id": reprobation_id,
            }
    return states


def _update_bookings(session: Session, booking_ids: Sequence[int], **values: Any) -> None:
    """Set these columns of these bookings (a Core statement: see `_BOOKINGS_BY_ID`)."""
    for start in range(0, len(booking_ids), LOCK_CHUNK):
        session.execute(_BOOKINGS_BY_ID, {"ids": booking_ids[start : start + LOCK_CHUNK], **values})


def write_plans(session: Session, plans: Sequence[PolicyPlan], op: Operation) -> Consequences:
    """`write_plan` for many mentees' plans, in their order: the same changes, audit entries (in the same order)
    and notices, with set-based statements. Plans that revoke, lift and restore only (a revert's) are written
    together; a plan that issues a warning or a reprobation is written by `write_plan` in its turn."""
    done = Consequences()
    batch: list[PolicyPlan] = []
    for plan in plans:
        if plan.issue_warnings or plan.issue_reprobation is not None:
            done.merge(_write_withdrawals(session, batch, op))
            batch = []
            done.merge(write_plan(session, plan, op))
        else:
            batch.append(plan)
    done.merge(_write_withdrawals(session, batch, op))
    return done


def _write_withdrawals(session: Session, plans: Sequence[PolicyPlan], op: Operation) -> Consequences:
    """Write plans that only revoke warnings, lift reprobations and restore bookings."""
    done = Consequences()
    if not plans:
        return done
    actor = op.actor
    revoked, lifted = {"revoked_at": op.now.isoformat()}, {"lifted_at": op.now.isoformat()}
    restored = [b for p in plans for b in p.restore_bookings]
    before = _booking_states(session, restored)
    entries: list[dict[str, Any]] = []
    for plan in plans:
        for warning_id in plan.revoke_warnings:
            entries.append(new_entry(op, "warning.revoke", "warning", warning_id, {"revoked_at": None}, revoked))
        for reprobation_id in plan.lift_reprobations:
            entries.append(
                new_entry(op, "reprobation.lift", "reprobation", reprobation_id, {"lifted_at": None}, lifted)
            )
        for booking_id in plan.restore_bookings:
            state = before[booking_id]
            after = {**state, "status": BookingStatus.SCHEDULED.value}
            entries.append(new_entry(op, "booking.restore", "booking", booking_id, state, after))
        mine = Consequences(
            warnings_revoked=list(plan.revoke_warnings),
            reprobations_lifted=list(plan.lift_reprobations),
            bookings_restored=list(plan.restore_bookings),
            conflicts=list(plan.conflicts),
        )
        queue_consequence_notices(session, op, plan.mentee_id, mine)
        done.merge(mine)
    for start in range(0, len(done.warnings_revoked), LOCK_CHUNK):
        session.execute(
            sa.update(Warning)
            .where(Warning.id.in_(done.warnings_revoked[start : start + LOCK_CHUNK]))
            .values(revoked_at=op.now, revoked_by=actor.kind, revoked_by_name=actor.name)
        )
    for start in range(0, len(done.reprobations_lifted), LOCK_CHUNK):
        session.execute(
            sa.update(Reprobation)
            .where(Reprobation.id.in_(done.reprobations_lifted[start : start + LOCK_CHUNK]))
            .values(lifted_at=op.now, lifted_by=actor.kind, lifted_by_name=actor.name)
        )
    _update_bookings(
        session,
        restored,
        status=BookingStatus.SCHEDULED,
        restored_at=op.now,
        restored_by=actor.kind,
        restored_by_name=actor.name,
    )
    record_many(session, entries)
    return done


def apply_policy(
    session: Session, mentee_id: int, policy: Policy, op: Operation, *, protect_person_issued: bool = False
) -> Consequences:
    """Bring one mentee's warnings, reprobation and bookings in line with the policy. Idempotent."""
    lock_mentee(session, mentee_id)
    plan = plan_policy(session, mentee_id, policy, op.now, protect_person_issued=protect_person_issued, for_update=True)
    return write_plan(session, plan, op)
