"""What admins audit: every warning, reprobation and cancellation with its attribution and status,
a reprobation's chain, and the audit log grouped by operation.

Read-only queries; each returns small frozen dataclasses (a page of them where the list can be long).
The attribution of a row is the kind and name of the actor who issued it (or cancelled the booking), when,
and its cause: the absence (booking) behind a warning or a reprobation, the reprobation behind a cancellation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from core.errors import InvalidInput, NotFound
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Mentee, Mentor, Reprobation, Warning

UNATTRIBUTED = "unattributed"
"""The attribution filter's value for rows that carry no actor kind at all (suspected automated damage)."""

ATTRIBUTIONS: tuple[str, ...] = (*(k.value for k in ActorKind), UNATTRIBUTED)

T = TypeVar("T")
AnySelect: TypeAlias = "sa.Select[*tuple[Any, ...]]"


class Status(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # a warning withdrawn
    LIFTED = "lifted"  # a reprobation withdrawn
    RESTORED = "restored"  # a cancelled booking scheduled again


@dataclass(frozen=True)
class AuditFilter:
    """Which rows to list. Empty `attribution` means every kind; dates bound when the row was issued
    (cancelled), `since` inclusive and `until` exclusive."""

    attribution: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    mentor_id: int | None = None
    mentee_id: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.attribution) - set(ATTRIBUTIONS))
        if unknown:
            raise InvalidInput(f"unknown attribution {', '.join(unknown)}: use one of {', '.join(ATTRIBUTIONS)}")
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and value.tzinfo is None:
                raise InvalidInput(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidInput("the date range is empty: its end must come after its start")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list: `total` rows match, these are rows `offset` .. `offset + len(rows)`."""

    rows: list[T]
    total: int
    offset: int
    limit: int | None


@dataclass(frozen=True)
class DisciplineRow:
    """One warning, reprobation or cancellation, with its attribution, cause and status."""

    id: int  # the warning's, the reprobation's or the cancelled booking's id
    mentee_id: int
    mentee: str
    mentor_id: int
    mentor: str
    session_start: datetime  # the absence's session, or the cancelled session
    attributed_kind: str | None  # Mentor, Admin, System, Mentee, or None when nobody was recorded
    attributed_name: str | None
    at: datetime | None
    cause_booking_id: int | None  # the absence behind a warning or a reprobation
    cause_reprobation_id: int | None  # the reprobation behind a cancellation
    status: Status
    status_at: datetime | None  # when it was revoked, lifted or restored
    status_by_kind: str | None
    status_by_name: str | None
    sessions_cancelled: int | None = None  # for a reprobation: how many bookings name it as their cause


@dataclass(frozen=True)
class ChainBooking:
    """A booking in a reprobation's chain, with who marked and who cancelled or restored it."""

    booking_id: int
    mentor: str
    mentee: str
    start_time: datetime
    end_time: datetime
    status: str
    attended: bool | None
    marked_by: str | None
    marked_by_name: str | None
    marked_at: datetime | None
    reverted_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    cancelled_by_name: str | None
    restored_at: datetime | None
    restored_by: str | None
    restored_by_name: str | None


@dataclass(frozen=True)
class ReprobationChain:
    """A reprobation, the absence that triggered it (and who marked it), the mentee's warnings,
    and the sessions it cancelled."""

    reprobation: DisciplineRow
    absence: ChainBooking
    warnings: list[DisciplineRow] = field(default_factory=list)
    cancelled: list[ChainBooking] = field(default_factory=list)


@dataclass(frozen=True)
class OperationSummary:
    """One user action (or command run): every audit entry it wrote shares its operation id."""

    operation_id: str
    at: datetime
    actor_kind: str
    actor_name: str
    reason: str | None
    entries: int
    actions: dict[str, int]  # action -> how many entries


@dataclass(frozen=True)
class AuditRow:
    id: int
    operation_id: str
    at: datetime
    actor_kind: str
    actor_name: str
    action: str
    target_type: str
    target_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


@dataclass(frozen=True)
class Choice:
    """An id and the name to show for it (filter options)."""

    id: int
    name: str


def _value(kind: ActorKind | str | None) -> str | None:
    return kind.value if isinstance(kind, ActorKind) else kind


def _attribution(column: Any, wanted: frozenset[str]) -> sa.ColumnElement[bool] | None:
    if not wanted:
        return None
    kinds = [ActorKind(k) for k in wanted if k != UNATTRIBUTED]
    clauses: list[sa.ColumnElement[bool]] = []
    if kinds:
        clauses.append(column.in_(kinds))
    if UNATTRIBUTED in wanted:
        clauses.append(column.is_(None))
    return sa.or_(*clauses)


def _where(
    query: AnySelect,
    filters: AuditFilter | None,
    *,
    kind_column: Any,
    at_column: Any,
    mentor_column: Any,
    mentee_column: Any,
) -> AnySelect:
    filters = filters or AuditFilter()
    attribution = _attribution(kind_column, filters.attribution)
    if attribution is not None:
        query = query.where(attribution)
    if filters.since is not None:
        query = query.where(at_column >= filters.since)
    if filters.until is not None:
        query = query.where(at_column < filters.until)
    if filters.mentor_id is not None:
        query = query.where(mentor_column == filters.mentor_id)
    if filters.mentee_id is not None:
        query = query.where(mentee_column == filters.mentee_id)
    return query


def _page(
    session: Session,
    query: AnySelect,
    order: Sequence[Any],
    offset: int,
    limit: int | None,
    counted: AnySelect | None = None,
) -> Any:
    """The total and one page of `query`; the total is counted on `counted` when given (the same rows)."""
    if offset < 0 or (limit is not None and limit < 1):
        raise InvalidInput("a page starts at row 0 or later and holds at least one row")
    counted = query if counted is None else counted
    total = session.scalar(sa.select(sa.func.count()).select_from(counted.order_by(None).subquery())) or 0
    paged = query.order_by(*order).offset(offset)
    if limit is not None:
        paged = paged.limit(limit)
    return total, session.execute(paged).all()


def list_warnings(
    session: Session, filters: AuditFilter | None = None, *, offset: int = 0, limit: int | None = 50
) -> Page[DisciplineRow]:
    """Warnings, newest first, each with who issued it, its cause (the absence) and whether it was revoked.
    The mentor is the one of the absence's session."""
    absence = aliased(Booking)
    query = (
        sa.select(
            Warning.id,
            Warning.mentee_id,
            Mentee.name,
            absence.mentor_id,
            Mentor.name,
            absence.start_time,
            Warning.issued_by,
            Warning.issued_by_name,
            Warning.issued_at,
            Warning.booking_id,
            Warning.revoked_at,
            Warning.revoked_by,
            Warning.revoked_by_name,
        )
        .join(absence, absence.id == Warning.booking_id)
        .join(Mentee, Mentee.id == Warning.mentee_id)
        .join(Mentor, Mentor.id == absence.mentor_id)
    )
    query = _where(
        query,
        filters,
        kind_column=Warning.issued_by,
        at_column=Warning.issued_at,
        mentor_column=absence.mentor_id,
        mentee_column=Warning.mentee_id,
    )
    total, rows = _page(session, query, (Warning.issued_at.desc(), Warning.id.desc()), offset, limit)
    return Page([_discipline_row(r, Status.REVOKED) for r in rows], total, offset, limit)


def _reprobation_query() -> tuple[AnySelect, Any]:
    absence = aliased(Booking)
    cancelled = aliased(Booking)
    sessions_cancelled = (
        sa.select(sa.func.count(cancelled.id))
        .where(cancelled.reprobation_id == Reprobation.id)
        .correlate(Reprobation)
        .scalar_subquery()
    )
    query = (
        sa.select(
            Reprobation.id,
            Reprobation.mentee_id,
            Mentee.name,
            absence.mentor_id,
            Mentor.name,
            absence.start_time,
            Reprobation.issued_by,
            Reprobation.issued_by_name,
            Reprobation.issued_at,
            Reprobation.booking_id,
            Reprobation.lifted_at,
            Reprobation.lifted_by,
            Reprobation.lifted_by_name,
            sessions_cancelled,
        )
        .join(absence, absence.id == Reprobation.booking_id)
        .join(Mentee, Mentee.id == Reprobation.mentee_id)
        .join(Mentor, Mentor.id == absence.mentor_id)
    )
    return query, absence


def _discipline_row(r: Any, ended: Status) -> DisciplineRow:
    """A warning's or a reprobation's row, from the columns both lists select in the same order; `ended` is
    the status once revoked or lifted. A reprobation's row has a 14th column: the sessions it cancelled."""
    return DisciplineRow(
        id=r[0],
        mentee_id=r[1],
        mentee=r[2],
        mentor_id=r[3],
        mentor=r[4],
        session_start=r[5],
        attributed_kind=_value(r[6]),
        attributed_name=r[7],
        at=r[8],
        cause_booking_id=r[9],
        cause_reprobation_id=None,
        status=ended if r[10] is not None else Status.ACTIVE,
        status_at=r[10],
        status_by_kind=_value(r[11]),
        status_by_name=r[12],
        sessions_cancelled=r[13] if len(r) > 13 else None,
    )


def _reprobation_row(r: Any) -> DisciplineRow:
    return _discipline_row(r, Status.LIFTED)


def list_reprobations(
    session: Session, filters: AuditFilter | None = None, *, offset: int = 0, limit: int | None = 50
) -> Page[DisciplineRow]:
    """Reprobations, newest first, each with who issued it, the absence that triggered it, whether it was
    lifted, and how many sessions it cancelled. The mentor is the one of the absence's session."""
    query, absence = _reprobation_query()
    query = _where(
        query,
        filters,
        kind_column=Reprobation.issued_by,
        at_column=Reprobation.issued_at,
        mentor_column=absence.mentor_id,
        mentee_column=Reprobation.mentee_id,
    )
    total, rows = _page(session, query, (Reprobation.issued_at.desc(), Reprobation.id.desc()), offset, limit)
    return Page([_reprobation_row(r) for r in rows], total, offset, limit)


# Cancelled now, or cancelled once and restored since.
_CANCELLED_ONCE = sa.or_(Booking.status == BookingStatus.CANCELLED, Booking.cancelled_at.is_not(None))


def _cancellations_query() -> AnySelect:
    return (
        sa.select(
            Booking.id,
            Booking.mentee_id,
            Mentee.name,
            Booking.mentor_id,
            Mentor.name,
            Booking.start_time,
            Booking.cancelled_by,
            Booking.cancelled_by_name,
            Booking.cancelled_at,
            Booking.reprobation_id,
            Booking.status,
            Booking.restored_at,
            Booking.restored_by,
            Booking.restored_by_name,
        )
        .join(Mentee, Mentee.id == Booking.mentee_id)
        .join(Mentor, Mentor.id == Booking.mentor_id)
        .where(_CANCELLED_ONCE)
    )


def _cancellation_row(r: Any) -> DisciplineRow:
    restored = r[10] is BookingStatus.SCHEDULED
    return DisciplineRow(
        id=r[0],
        mentee_id=r[1],
        mentee=r[2],
        mentor_id=r[3],
        mentor=r[4],
        session_start=r[5],
        attributed_kind=_value(r[6]),
        attributed_name=r[7],
        at=r[8],
        cause_booking_id=None,
        cause_reprobation_id=r[9],
        status=Status.RESTORED if restored else Status.ACTIVE,
        status_at=r[11] if restored else None,
        status_by_kind=_value(r[12]) if restored else None,
        status_by_name=r[13] if restored else None,
    )


def list_cancellations(
    session: Session, filters: AuditFilter | None = None, *, offset: int = 0, limit: int | None = 50
) -> Page[DisciplineRow]:
    """Cancelled sessions (and cancelled ones restored since), newest cancellation first, each with who
    cancelled it, the reprobation that caused it, and whether it was restored."""
    columns = {
        "kind_column": Booking.cancelled_by,
        "at_column": Booking.cancelled_at,
        "mentor_column": Booking.mentor_id,
        "mentee_column": Booking.mentee_id,
    }
    query = _where(_cancellations_query(), filters, **columns)
    # Counted without the names: a booking has exactly one mentor and one mentee (foreign keys), so the total
    # is the same, read from ix_bookings_cancellations alone instead of joining every cancelled booking.
    counted = _where(sa.select(Booking.id).where(_CANCELLED_ONCE), filters, **columns)
    total, rows = _page(session, query, (Booking.cancelled_at.desc(), Booking.id.desc()), offset, limit, counted)
    return Page([_cancellation_row(r) for r in rows], total, offset, limit)


def _chain_booking(b: Booking, mentor: str, mentee: str) -> ChainBooking:
    return ChainBooking(
        booking_id=b.id,
        mentor=mentor,
        mentee=mentee,
        start_time=b.start_time,
        end_time=b.end_time,
        status=b.status.value,
        attended=b.attended,
        marked_by=_value(b.attendance_marked_by),
        marked_by_name=b.attendance_marked_by_name,
        marked_at=b.attendance_marked_at,
        reverted_at=b.attendance_reverted_at,
        cancelled_at=b.cancelled_at,
        cancelled_by=_value(b.cancelled_by),
        cancelled_by_name=b.cancelled_by_name,
        restored_at=b.restored_at,
        restored_by=_value(b.restored_by),
        restored_by_name=b.restored_by_name,
    )


def reprobation_chain(session: Session, reprobation_id: int) -> ReprobationChain:
    """The reprobation, the absence that triggered it with who marked it, the mentee's warnings
    (oldest first) and every session that names the reprobation as the cause of its cancellation."""
    query, _ = _reprobation_query()
    row = session.execute(query.where(Reprobation.id == reprobation_id)).first()
    if row is None:
        raise NotFound(f"reprobation {reprobation_id} does not exist")
    reprobation = _reprobation_row(row)
    absence_row = session.execute(_booking_query().where(Booking.id == reprobation.cause_booking_id)).one()
    cancelled = session.execute(
        _booking_query().where(Booking.reprobation_id == reprobation_id).order_by(Booking.start_time, Booking.id)
    ).all()
    warnings = list_warnings(session, AuditFilter(mentee_id=reprobation.mentee_id), limit=None).rows
    return ReprobationChain(
        reprobation=reprobation,
        absence=_chain_booking(*absence_row),
        warnings=sorted(warnings, key=lambda w: (w.at or w.session_start, w.id)),
        cancelled=[_chain_booking(*row) for row in cancelled],
    )


def _booking_query() -> sa.Select[Booking, str, str]:
    return (
        sa.select(Booking, Mentor.name, Mentee.name)
        .join(Mentor, Mentor.id == Booking.mentor_id)
        .join(Mentee, Mentee.id == Booking.mentee_id)
    )


def booking_detail(session: Session, booking_id: int) -> ChainBooking:
    """One booking with its mentor, mentee, mark and cancellation, as an admin reviews it before acting."""
    row = session.execute(_booking_query().where(Booking.id == booking_id)).first()
    if row is None:
        raise NotFound(f"booking {booking_id} does not exist")
    return _chain_booking(*row)


def names_of_mentors(session: Session, mentor_ids: Iterable[int]) -> dict[int, str]:
    """Mentor id -> name, for the ids given."""
    ids = sorted(set(mentor_ids))
    if not ids:
        return {}
    return {i: n for i, n in session.execute(sa.select(Mentor.id, Mentor.name).where(Mentor.id.in_(ids)))}


def mentor_choices(session: Session) -> list[Choice]:
    """Every mentor, by name (filter options)."""
    return [
        Choice(i, n) for i, n in session.execute(sa.select(Mentor.id, Mentor.name).order_by(Mentor.name, Mentor.id))
    ]


def mentee_choices(session: Session) -> list[Choice]:
    """The mentees who have a warning, a reprobation or a cancelled session, by name (filter options)."""
    concerned = sa.union(
        sa.select(Warning.mentee_id),
        sa.select(Reprobation.mentee_id),
        sa.select(Booking.mentee_id).where(
            sa.or_(Booking.status == BookingStatus.CANCELLED, Booking.cancelled_at.is_not(None))
        ),
    ).subquery()
    rows = session.execute(
        sa.select(Mentee.id, Mentee.name)
        .where(Mentee.id.in_(sa.select(concerned.c[0])))
        .order_by(Mentee.name, Mentee.id)
    )
    return [Choice(i, n) for i, n in rows]


def list_operations(
    session: Session,
    *,
    actor_name: str | None = None,
    action: str | None = None,
    operation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int | None = 50,
) -> Page[OperationSummary]:
    """The audit log grouped by operation, newest first: who acted, when, why, and how many entries of
    each action the operation wrote. `action` keeps the operations that wrote at least one such entry."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} must be timezone-aware")
    first_at = sa.func.min(AuditEntry.at)
    query = sa.select(
        AuditEntry.operation_id,
        first_at,
        sa.func.min(AuditEntry.actor_kind),
        sa.func.min(AuditEntry.actor_name),
        sa.func.min(AuditEntry.reason),
        sa.func.count(AuditEntry.id),
    ).group_by(AuditEntry.operation_id)
    if actor_name:
        query = query.where(AuditEntry.actor_name == actor_name)
    if operation_id:
        query = query.where(AuditEntry.operation_id == operation_id.strip())
    if action:
        query = query.where(
            AuditEntry.operation_id.in_(sa.select(AuditEntry.operation_id).where(AuditEntry.action == action))
        )
    if since is not None:
        query = query.having(first_at >= since)
    if until is not None:
        query = query.having(first_at < until)
    total, rows = _page(session, query, (first_at.desc(), AuditEntry.operation_id), offset, limit)
    ids = [r[0] for r in rows]
    actions: dict[str, dict[str, int]] = {i: {} for i in ids}
    if ids:
        counted = session.execute(
            sa.select(AuditEntry.operation_id, AuditEntry.action, sa.func.count(AuditEntry.id))
            .where(AuditEntry.operation_id.in_(ids))
            .group_by(AuditEntry.operation_id, AuditEntry.action)
            .order_by(AuditEntry.operation_id, AuditEntry.action)
        )
        for operation_id, name, count in counted:
            actions[operation_id][name] = count
    return Page(
        [
            OperationSummary(
                operation_id=r[0],
                at=r[1],
                actor_kind=_value(r[2]) or "",
                actor_name=r[3],
                reason=r[4],
                entries=r[5],
                actions=actions[r[0]],
            )
            for r in rows
        ],
        total,
        offset,
        limit,
    )


def operation_entries(session: Session, operation_id: str) -> list[AuditRow]:
    """Every audit entry of one operation, in the order it was written."""
    entries = session.scalars(
        sa.select(AuditEntry).where(AuditEntry.operation_id == operation_id).order_by(AuditEntry.id)
    ).all()
    return [
        AuditRow(
            id=e.id,
            operation_id=e.operation_id,
            at=e.at,
            actor_kind=e.actor_kind.value,
            actor_name=e.actor_name,
            action=e.action,
            target_type=e.target_type,
            target_id=e.target_id,
            before=e.before,
            after=e.after,
            reason=e.reason,
        )
        for e in entries
    ]


def audit_actors(session: Session) -> list[str]:
    """The names of everyone (and every command) that wrote to the audit log (filter options)."""
    return list(session.scalars(sa.select(AuditEntry.actor_name).distinct().order_by(AuditEntry.actor_name)))


def audit_actions(session: Session) -> list[str]:
    """Every action name in the audit log (filter options)."""
    return list(session.scalars(sa.select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
