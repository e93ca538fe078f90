"""The automated damage: what `mentorship:process-absences` caused, seen as a chain, and its revert.

An automated absence is a no-show (`attended = false`) stamped `System` (certain) or, when asked, one with no
attribution at all (suspected). What followed from it: the active warnings and reprobations of the mentees
concerned that no person issued, and the bookings those reprobations cancelled.

`report_misfire` only reads. `revert_misfire` sends the automated absences back to pending and re-applies the
policy from counted absences alone, never touching what a person issued; its dry run and its apply are computed
by the same code, so the preview is exactly what the apply writes.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.audit import Actor, Operation, new_entry, record_many
from core.config import Policy
from core.discipline import (
    Conflict,
    ConflictReason,
    PolicyPlan,
    lock_future_slots,
    plan_policies,
    restorable_bookings,
    write_plans,
)
from core.errors import InvalidInput, NotAllowed, NotFound
from core.models import PERSON_KINDS, ActorKind, Booking, BookingStatus, Mentee, Reprobation, Warning
from core.notifications import queue_revert_corrections

# Ids per statement: well under SQLite's bound-parameter limit, and large enough to keep round trips few.
CHUNK = 5000
T = TypeVar("T")


@dataclass(frozen=True)
class AbsenceRow:
    """An automated absence: a no-show stamped System, or with no attribution."""

    booking_id: int
    mentee_id: int
    mentor_id: int
    start_time: datetime
    end_time: datetime
    marked_by: ActorKind | None
    marked_by_name: str | None
    marked_at: datetime | None


@dataclass(frozen=True)
class IssuedRow:
    """A warning or a reprobation in the report: whom it concerns, the absence that caused it, who issued it."""

    id: int
    mentee_id: int
    booking_id: int  # the absence that caused it
    issued_at: datetime
    issued_by: ActorKind | None
    issued_by_name: str | None


@dataclass(frozen=True)
class CancelledBookingRow:
    """A booking cancelled by a reported reprobation; `conflict` says why it could not be restored now."""

    booking_id: int
    mentee_id: int
    mentor_id: int
    start_time: datetime
    end_time: datetime
    reprobation_id: int
    cancelled_at: datetime | None
    cancelled_by: ActorKind | None
    cancelled_by_name: str | None
    conflict: ConflictReason | None


@dataclass(frozen=True)
class AbsenceSummary:
    system: tuple[AbsenceRow, ...]
    unattributed: tuple[AbsenceRow, ...]


@dataclass(frozen=True)
class MenteeDamage:
    """One affected mentee's chain: absences -> warnings -> reprobations -> cancelled bookings."""

    mentee_id: int
    mentee: str
    absence_booking_ids: tuple[int, ...]
    warning_ids: tuple[int, ...]
    reprobation_ids: tuple[int, ...]
    cancelled_booking_ids: tuple[int, ...]
    restorable_booking_ids: tuple[int, ...]
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True)
class MisfireReport:
    """The automated damage in scope, with everything that followed from it."""

    since: datetime | None
    until: datetime | None
    include_unattributed: bool
    absences: AbsenceSummary
    warnings: tuple[IssuedRow, ...]
    reprobations: tuple[IssuedRow, ...]
    cancelled_bookings: tuple[CancelledBookingRow, ...]
    mentees: tuple[MenteeDamage, ...]


@dataclass(frozen=True)
class RevertResult:
    """What a revert did (or, on a dry run, would do). `operation_id` is None when nothing was written.

    Besides undoing, re-applying the policy may give a counted absence the warning or reprobation it deserves
    and lacks: those are `warnings_issued_for` / `reprobations_issued_for` (cause booking ids) and
    `bookings_cancelled`.
    """

    operation_id: str | None
    applied: bool
    mentee_ids: tuple[int, ...]
    absences_reset: tuple[int, ...]
    warnings_revoked: tuple[int, ...]
    reprobations_lifted: tuple[int, ...]
    bookings_restored: tuple[int, ...]
    conflicts: tuple[Conflict, ...]
    warnings_issued_for: tuple[int, ...] = ()
    reprobations_issued_for: tuple[int, ...] = ()
    bookings_cancelled: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (
            self.absences_reset
            or self.warnings_revoked
            or self.reprobations_lifted
            or self.bookings_restored
            or self.warnings_issued_for
            or self.reprobations_issued_for
            or self.bookings_cancelled
        )

    def counts(self) -> dict[str, int]:
        return {
            "absences_reset": len(self.absences_reset),
            "warnings_revoked": len(self.warnings_revoked),
            "reprobations_lifted": len(self.reprobations_lifted),
            "bookings_restored": len(self.bookings_restored),
            "conflicts": len(self.conflicts),
            "warnings_issued": len(self.warnings_issued_for),
            "reprobations_issued": len(self.reprobations_issued_for),
            "bookings_cancelled": len(self.bookings_cancelled),
        }


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a report or a revert builds its rows.

    The collector walks every live object each time enough new ones have been made. A whole-history report or
    revert makes hundreds of thousands of rows, records and tuples, none of them in a reference cycle, and would
    set it off over and over: a third of a report's time, a seventh of a revert's. Reference counting still
    frees everything as usual; the collector resumes afterwards.
    """
    if not gc.isenabled():  # already paused (by another report running meanwhile, say): leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_time(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name} must carry a time zone, got {value.isoformat()}")


def _automated_absences(
    *,
    since: datetime | None,
    until: datetime | None,
    include_unattributed: bool,
    mentee_ids: Iterable[int] | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clause of the automated absences in scope.

    The time bounded is when the absence was marked, or the session's end where that is unknown:
    `since` included, `until` excluded.
    """
    marked_by = Booking.attendance_marked_by == ActorKind.SYSTEM
    if include_unattributed:
        marked_by = sa.or_(marked_by, Booking.attendance_marked_by.is_(None))
    clauses: list[sa.ColumnElement[bool]] = [Booking.attended.is_(False), marked_by]
    marked_at = sa.func.coalesce(Booking.attendance_marked_at, Booking.end_time)
    if since is not None:
        clauses.append(marked_at >= since)
    if until is not None:
        clauses.append(marked_at < until)
    if mentee_ids is not None:
        clauses.append(Booking.mentee_id.in_(list(mentee_ids)))
    return clauses


def _not_person_issued(column: Any) -> sa.ColumnElement[bool]:
    # NOT IN alone would drop the NULLs (issued by no one recorded), which are not a person either.
    return sa.or_(column.is_(None), column.not_in(PERSON_KINDS))


@_cycle_collector_paused()
def report_misfire(
    session: Session,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    include_unattributed: bool = False,
) -> MisfireReport:
    """The automated absences in scope and what followed from them, for each affected mentee. Writes nothing.

    Followed from them: the mentee's active warnings and reprobations that no person issued, and the bookings
    those reprobations cancelled, each either restorable now or in conflict (slot taken, in the past, mentor
    inactive), by the same rules a revert applies.
    """
    _check_time("now", now)
    _check_time("since", since)
    _check_time("until", until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    scope = _automated_absences(since=since, until=until, include_unattributed=include_unattributed)
    affected = sa.select(Booking.mentee_id).where(*scope)
    # Plain column reads, run on the session's connection (after a flush, so they see what the caller's
    # transaction wrote): the ORM's handling of each row would add about half again to the tens of thousands
    # of rows of a whole-history report.
    session.flush()
    db = session.connection()
    absence_rows = db.execute(
        sa.select(
            Booking.id,
            Booking.mentee_id,
            Booking.mentor_id,
            Booking.start_time,
            Booking.end_time,
            Booking.attendance_marked_by,
            Booking.attendance_marked_by_name,
            Booking.attendance_marked_at,
            Mentee.name,
        )
        .join(Mentee, Mentee.id == Booking.mentee_id)
        .where(*scope)
        .order_by(Booking.id)
    ).all()
    absences = [AbsenceRow(*row[:-1]) for row in absence_rows]
    names = {row.mentee_id: row.name for row in absence_rows}
    warnings = [
        IssuedRow(*row)
        for row in db.execute(
            sa.select(
                Warning.id,
                Warning.mentee_id,
                Warning.booking_id,
                Warning.issued_at,
                Warning.issued_by,
                Warning.issued_by_name,
            )
            .where(
                Warning.mentee_id.in_(affected),
                Warning.revoked_at.is_(None),
                _not_person_issued(Warning.issued_by),
            )
            .order_by(Warning.id)
        ).all()
    ]
    reprobation_scope = [
        Reprobation.mentee_id.in_(affected),
        Reprobation.lifted_at.is_(None),
        _not_person_issued(Reprobation.issued_by),
    ]
    reprobations = [
        IssuedRow(*row)
        for row in db.execute(
            sa.select(
                Reprobation.id,
                Reprobation.mentee_id,
                Reprobation.booking_id,
                Reprobation.issued_at,
                Reprobation.issued_by,
                Reprobation.issued_by_name,
            )
            .where(*reprobation_scope)
            .order_by(Reprobation.id)
        ).all()
    ]
    conflict_of: dict[int, ConflictReason] = {}
    restorable: set[int] = set()
    for chunk in _chunks([r.id for r in reprobations]):
        restore, conflicts = restorable_bookings(session, chunk, now)
        restorable.update(restore)
        conflict_of.update((c.booking_id, c.reason) for c in conflicts)
    rows = db.execute(
        sa.select(
            Booking.id,
            Booking.mentee_id,
            Booking.mentor_id,
            Booking.start_time,
            Booking.end_time,
            sa.type_coerce(Booking.reprobation_id, sa.Integer()),  # never NULL here: filtered below
            Booking.cancelled_at,
            Booking.cancelled_by,
            Booking.cancelled_by_name,
        )
        .where(
            Booking.status == BookingStatus.CANCELLED,
            Booking.reprobation_id.in_(sa.select(Reprobation.id).where(*reprobation_scope)),
        )
        .order_by(Booking.id)
    ).all()
    # Restored together, two of them could double-book a mentor: the revert keeps the slot for the earlier one.
    for booking_id in _taken_slots((row[2], row[3], row[4], row[0]) for row in rows if row[0] in restorable):
        restorable.discard(booking_id)
        conflict_of[booking_id] = ConflictReason.SLOT_TAKEN
    cancelled = [CancelledBookingRow(*row, conflict=conflict_of.get(row[0])) for row in rows]

    # Each list grouped by mentee in one pass (a whole-history report names tens of thousands of mentees).
    absences_of: defaultdict[int, list[int]] = defaultdict(list)
    for a in absences:
        absences_of[a.mentee_id].append(a.booking_id)
    warnings_of: defaultdict[int, list[int]] = defaultdict(list)
    for w in warnings:
        warnings_of[w.mentee_id].append(w.id)
    reprobations_of: defaultdict[int, list[int]] = defaultdict(list)
    for r in reprobations:
        reprobations_of[r.mentee_id].append(r.id)
    cancelled_of: defaultdict[int, list[int]] = defaultdict(list)
    restorable_of: defaultdict[int, list[int]] = defaultdict(list)
    conflicts_of: defaultdict[int, list[Conflict]] = defaultdict(list)
    for c in cancelled:
        cancelled_of[c.mentee_id].append(c.booking_id)
        if c.booking_id in restorable:
            restorable_of[c.mentee_id].append(c.booking_id)
        if c.conflict:
            conflicts_of[c.mentee_id].append(Conflict(c.booking_id, c.conflict))
    mentees = tuple(
        MenteeDamage(
            mentee_id=mentee_id,
            mentee=names[mentee_id],
            absence_booking_ids=tuple(absence_ids),
            warning_ids=tuple(warnings_of.get(mentee_id, ())),
            reprobation_ids=tuple(reprobations_of.get(mentee_id, ())),
            cancelled_booking_ids=tuple(cancelled_of.get(mentee_id, ())),
            restorable_booking_ids=tuple(restorable_of.get(mentee_id, ())),
            conflicts=tuple(conflicts_of.get(mentee_id, ())),
        )
        for mentee_id, absence_ids in sorted(absences_of.items())
    )
    return MisfireReport(
        since=since,
        until=until,
        include_unattributed=include_unattributed,
        absences=AbsenceSummary(
            system=tuple(a for a in absences if a.marked_by is ActorKind.SYSTEM),
            unattributed=tuple(a for a in absences if a.marked_by is None),
        ),
        warnings=tuple(warnings),
        reprobations=tuple(reprobations),
        cancelled_bookings=tuple(cancelled),
        mentees=mentees,
    )


@dataclass(frozen=True)
class _Absence:
    booking_id: int
    mentee_id: int
    marked_by: ActorKind | None
    marked_by_name: str | None
    marked_at: datetime | None


def _lock_mentees(session: Session, mentee_ids: Sequence[int]) -> None:
    """Take the mentees' row locks in ascending id order, as `lock_mentee` does one by one: two reverts
    (or a revert and a mark) never wait for each other in a cycle."""
    for chunk in _chunks(mentee_ids):
        session.execute(sa.select(Mentee.id).where(Mentee.id.in_(chunk)).order_by(Mentee.id).with_for_update())


def _double_booked(session: Session, booking_ids: Iterable[int]) -> set[int]:
    """Of these cancelled bookings, the ones that would overlap another of them at the same mentor if all
    were restored: each was checked against the scheduled bookings alone, so restoring them together could
    double-book a mentor. See `_taken_slots`."""
    ids = sorted(set(booking_ids))
    if len(ids) < 2:
        return set()
    slots: list[tuple[int, datetime, datetime, int]] = []
    for chunk in _chunks(ids):
        slots += session.execute(
            sa.select(Booking.mentor_id, Booking.start_time, Booking.end_time, Booking.id).where(Booking.id.in_(chunk))
        )
    return _taken_slots(slots)


def _taken_slots(slots: Iterable[tuple[int, datetime, datetime, int]]) -> set[int]:
    """Of these (mentor id, start, end, booking id), the bookings that overlap an earlier one at the same
    mentor: the earlier (by start, then id) keeps the slot; the later is `slot_taken`."""
    taken: set[int] = set()
    latest_end: dict[int, datetime] = {}
    for mentor_id, start, end, booking_id in sorted(slots):
        if mentor_id in latest_end and start < latest_end[mentor_id]:
            taken.add(booking_id)
        else:
            latest_end[mentor_id] = end
    return taken


def _one_restore_per_slot(session: Session, plans: list[PolicyPlan]) -> list[PolicyPlan]:
    """The plans, with the restores that would double-book a mentor turned into `slot_taken` conflicts."""
    # A booking that the plan cancels again (a new reprobation) takes no slot.
    taken = _double_booked(session, (b for p in plans for b in p.restore_bookings if b not in p.cancel_bookings))
    if not taken:
        return plans
    return [
        replace(
            p,
            restore_bookings=tuple(b for b in p.restore_bookings if b not in taken),
            conflicts=p.conflicts
            + tuple(Conflict(b, ConflictReason.SLOT_TAKEN) for b in p.restore_bookings if b in taken),
        )
        for p in plans
    ]


@_cycle_collector_paused()
def revert_misfire(
    session: Session,
    *,
    actor: Actor,
    now: datetime,
    reason: str | None,
    policy: Policy,
    mentee_ids: Iterable[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_unattributed: bool = False,
    apply: bool = False,
) -> RevertResult:
    """Undo the automated damage in scope; without `apply`, say exactly what it would do and write nothing.

    With `apply`, in the caller's transaction and under one operation attributed to the admin with the reason:
    each automated absence in scope goes back to pending (its attribution cleared, never marked attended);
    then each affected mentee's policy is re-applied from counted absences alone, leaving every warning and
    reprobation a person issued as it is: warnings and reprobations that no longer hold are revoked and
    lifted, and the bookings cancelled by a lifted reprobation are restored unless in conflict.
    A second revert of the same scope finds nothing to do. Only an admin may revert, and only with a reason.
    """
    if actor.kind is not ActorKind.ADMIN:
        raise NotAllowed(f"only an admin may revert the automated damage, not {actor.kind.value} {actor.name!r}")
    if not (reason and reason.strip()):
        raise InvalidInput("a revert needs a reason: say why the automated damage is being undone")
    _check_time("now", now)
    _check_time("since", since)
    _check_time("until", until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    wanted: list[int] | None = None
    if mentee_ids is not None:
        wanted = sorted(set(mentee_ids))
        known = set(session.scalars(sa.select(Mentee.id).where(Mentee.id.in_(wanted))))
        missing = [m for m in wanted if m not in known]
        if missing:
            raise NotFound(f"no mentee with id {', '.join(map(str, missing))}")
    scope = _automated_absences(since=since, until=until, include_unattributed=include_unattributed, mentee_ids=wanted)

    affected = list(session.scalars(sa.select(Booking.mentee_id).where(*scope).distinct().order_by(Booking.mentee_id)))
    if apply:
        _lock_mentees(session, affected)
        # Every booking a restore or cancel may touch, at once and in id order: the plans, mentee by mentee,
        # would lock them in no overall order and could deadlock with a mark or reset on another mentee.
        lock_future_slots(session, affected, now)
    # Read the absences after taking the locks: a revert that ran meanwhile has already reset them.
    locked = set(affected)
    session.flush()
    rows = (
        session.connection()  # a plain column read: see `report_misfire`
        .execute(
            sa.select(
                Booking.id,
                Booking.mentee_id,
                Booking.attendance_marked_by,
                Booking.attendance_marked_by_name,
                Booking.attendance_marked_at,
            )
            .where(*scope)
            .order_by(Booking.id)
        )
        .all()
    )
    absences = [_Absence(*row) for row in rows if row[1] in locked]
    mentees = sorted({a.mentee_id for a in absences})
    # Automated absences are never counted, so the plan made now is the plan that holds after the reset.
    # Planned together in a few set-based reads (the future slots of every affected mentee are locked above).
    plans = plan_policies(session, mentees, policy, now, protect_person_issued=True)
    plans = _one_restore_per_slot(session, plans)

    result = RevertResult(
        operation_id=None,
        applied=apply,
        mentee_ids=tuple(mentees),
        absences_reset=tuple(a.booking_id for a in absences),
        warnings_revoked=tuple(w for p in plans for w in p.revoke_warnings),
        reprobations_lifted=tuple(r for p in plans for r in p.lift_reprobations),
        bookings_restored=tuple(b for p in plans for b in p.restore_bookings),
        conflicts=tuple(c for p in plans for c in p.conflicts),
        warnings_issued_for=tuple(b for p in plans for b in p.issue_warnings),
        reprobations_issued_for=tuple(p.issue_reprobation for p in plans if p.issue_reprobation is not None),
        bookings_cancelled=tuple(b for p in plans if p.issue_reprobation is not None for b in p.cancel_bookings),
    )
    if not apply or result.is_empty:
        return result

    op = Operation(actor, now, reason.strip())
    _reset_absences(session, absences, op, include_unattributed=include_unattributed)
    write_plans(session, plans, op)
    # One correction notice per mentee (replacing the per-step notices above), one notice per mentor.
    queue_revert_corrections(session, op, [a.booking_id for a in absences])
    session.flush()
    return replace(result, operation_id=op.id)


def _reset_absences(
    session: Session, absences: Sequence[_Absence], op: Operation, *, include_unattributed: bool
) -> None:
    """Send the absences back to pending with set-based UPDATEs, and audit each one (in bulk)."""
    after = {
        "attended": None,
        "attendance_marked_by": None,
        "attendance_marked_by_name": None,
        "attendance_marked_at": None,
        "attendance_reverted_at": op.now.isoformat(),
    }
    still_automated = Booking.attendance_marked_by == ActorKind.SYSTEM
    if include_unattributed:
        still_automated = sa.or_(still_automated, Booking.attendance_marked_by.is_(None))
    for chunk in _chunks(absences):
        session.execute(
            sa.update(Booking)
            .where(Booking.id.in_([a.booking_id for a in chunk]), Booking.attended.is_(False), still_automated)
            .values(
                attended=None,
                attendance_marked_by=None,
                attendance_marked_by_name=None,
                attendance_marked_at=None,
                attendance_reverted_at=op.now,
            )
        )
        record_many(
            session,
            [
                new_entry(
                    op,
                    "attendance.revert",
                    "booking",
                    a.booking_id,
                    {
                        "attended": False,
                        "attendance_marked_by": a.marked_by.value if a.marked_by else None,
                        "attendance_marked_by_name": a.marked_by_name,
                        "attendance_marked_at": a.marked_at.isoformat() if a.marked_at else None,
                    },
                    after,
                )
                for a in chunk
            ],
        )
