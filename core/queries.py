"""What a mentor sees: their pending sessions, what they marked lately, what is coming, and a summary.

Each query filters, orders and limits in SQL along the bookings' indexes (a mentor's pending sessions,
a mentor's slots), so it stays quick on millions of bookings. `now` is always passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from core.models import PERSON_KINDS, ActorKind, Booking, BookingStatus, Mentee, Mentor, User

WEEK_STARTS_ON = 0  # Monday (ISO weeks), in UTC
# The columns of a BookingRow: a booking's, its mentor's name, the mentor's username (None when the mentor has no
# user) and the mentee's name. Columns, not Booking objects: a page lists hundreds and needs no object.
_RowsQuery = sa.Select[
    int,
    int,
    int,
    datetime,
    datetime,
    BookingStatus,
    bool | None,
    ActorKind | None,
    str | None,
    datetime | None,
    datetime | None,
    str,
    str | None,
    str,
]


@dataclass(frozen=True)
class BookingRow:
    """One session as a page or the command line shows it.

    `mentor` is the mentor's username when they have one, else their name. `pending_hours` is how long a
    pending session has waited since it ended (None unless pending). `reverted` says the session went back
    to pending through a revert of an automated absence.
    """

    booking_id: int
    mentor_id: int
    mentor_name: str
    mentor: str
    mentee_id: int
    mentee: str
    start_time: datetime
    end_time: datetime
    status: BookingStatus
    attended: bool | None
    attendance_marked_by: ActorKind | None
    attendance_marked_by_name: str | None
    attendance_marked_at: datetime | None
    reverted: bool
    pending_hours: float | None


@dataclass(frozen=True)
class MentorSummary:
    """The numbers on top of a mentor's page."""

    mentor_id: int
    pending_count: int
    oldest_pending_age: timedelta | None
    marked_this_week: int

    @property
    def oldest_pending_hours(self) -> float | None:
        if self.oldest_pending_age is None:
            return None
        return round(self.oldest_pending_age.total_seconds() / 3600, 1)


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")


def _rows_query() -> _RowsQuery:
    # A mentor user is unique per mentor, so the outer join adds at most one row per booking.
    return (
        sa.select(
            Booking.id,
            Booking.mentor_id,
            Booking.mentee_id,
            Booking.start_time,
            Booking.end_time,
            Booking.status,
            Booking.attended,
            Booking.attendance_marked_by,
            Booking.attendance_marked_by_name,
            Booking.attendance_marked_at,
            Booking.attendance_reverted_at,
            Mentor.name,
            User.username,
            Mentee.name,
        )
        .join(Mentor, Mentor.id == Booking.mentor_id)
        .outerjoin(User, User.mentor_id == Booking.mentor_id)
        .join(Mentee, Mentee.id == Booking.mentee_id)
    )


def _pending_where(now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
    """A scheduled session that has ended and that nobody has marked: the definition of pending."""
    return (
        Booking.status == BookingStatus.SCHEDULED,
        Booking.attended.is_(None),
        Booking.end_time <= now,
    )


def _rows(session: Session, query: _RowsQuery, now: datetime) -> list[BookingRow]:
    rows: list[BookingRow] = []
    for (
        booking_id,
        mentor_id,
        mentee_id,
        start_time,
        end_time,
        status,
        attended,
        marked_by,
        marked_by_name,
        marked_at,
        reverted_at,
        mentor_name,
        username,
        mentee_name,
    ) in session.execute(query):
        pending = status is BookingStatus.SCHEDULED and attended is None and end_time <= now
        rows.append(
            BookingRow(
                booking_id=booking_id,
                mentor_id=mentor_id,
                mentor_name=mentor_name,
                mentor=username or mentor_name,
                mentee_id=mentee_id,
                mentee=mentee_name,
                start_time=start_time,
                end_time=end_time,
                status=status,
                attended=attended,
                attendance_marked_by=marked_by,
                attendance_marked_by_name=marked_by_name,
                attendance_marked_at=marked_at,
                reverted=reverted_at is not None,
                pending_hours=round((now - end_time).total_seconds() / 3600, 1) if pending else None,
            )
        )
    return rows


def get_booking(session: Session, booking_id: int, *, now: datetime) -> BookingRow:
    """One booking as a list shows it; refuses an unknown id."""
    _check_now(now)
    rows = _rows(session, _rows_query().where(Booking.id == booking_id), now)
    if not rows:
        raise NotFound(f"booking {booking_id} does not exist")
    return rows[0]


def pending_bookings(
    session: Session,
    *,
    now: datetime,
    mentor_id: int | None = None,
    older_than: timedelta | None = None,
    limit: int | None = None,
) -> list[BookingRow]:
    """The pending sessions, oldest first (by end, then id): of one mentor, or of everyone.

    With `older_than`, only those that ended at least that long before `now`.
    """
    _check_now(now)
    query = _rows_query().where(*_pending_where(now))
    if mentor_id is not None:
        query = query.where(Booking.mentor_id == mentor_id)
    if older_than is not None:
        if older_than < timedelta(0):
            raise InvalidInput("older_than must not be negative")
        query = query.where(Booking.end_time <= now - older_than)
    query = query.order_by(Booking.end_time, Booking.id)
    if limit is not None:
        query = query.limit(limit)
    return _rows(session, query, now)


def recently_marked(session: Session, *, mentor_id: int, now: datetime, limit: int = 20) -> list[BookingRow]:
    """A mentor's sessions marked attended or no-show, the latest mark first (whoever marked them)."""
    _check_now(now)
    query = (
        _rows_query()
        .where(
            Booking.mentor_id == mentor_id,
            Booking.attended.is_not(None),
            Booking.end_time <= now,
        )
        .order_by(Booking.attendance_marked_at.desc(), Booking.end_time.desc(), Booking.id.desc())
        .limit(limit)
    )
    return _rows(session, query, now)


def upcoming_bookings(session: Session, *, mentor_id: int, now: datetime, limit: int = 20) -> list[BookingRow]:
    """A mentor's scheduled sessions that have not started yet, the soonest first."""
    _check_now(now)
    query = (
        _rows_query()
        .where(
            Booking.mentor_id == mentor_id,
            Booking.start_time > now,
            Booking.status == BookingStatus.SCHEDULED,
        )
        .order_by(Booking.start_time, Booking.id)
        .limit(limit)
    )
    return _rows(session, query, now)


def week_start(now: datetime) -> datetime:
    """Midnight UTC of the Monday of `now`'s week."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=(midnight.weekday() - WEEK_STARTS_ON) % 7)


def mentor_summary(session: Session, *, mentor_id: int, now: datetime) -> MentorSummary:
    """How many sessions wait for the mentor's decision, how long the oldest has waited, and how many of
    the mentor's sessions a person (the mentor, or an admin for them) marked since Monday (UTC)."""
    _check_now(now)
    count, oldest_end = session.execute(
        sa.select(sa.func.count(), sa.func.min(Booking.end_time)).where(
            Booking.mentor_id == mentor_id, *_pending_where(now)
        )
    ).one()
    marked = session.scalar(
        sa.select(sa.func.count()).where(
            Booking.mentor_id == mentor_id,
            Booking.attended.is_not(None),
            Booking.attendance_marked_by.in_(PERSON_KINDS),
            Booking.attendance_marked_at >= week_start(now),
            Booking.attendance_marked_at <= now,
        )
    )
    return MentorSummary(
        mentor_id=mentor_id,
        pending_count=count,
        oldest_pending_age=(now - oldest_end) if oldest_end is not None else None,
        marked_this_week=marked or 0,
    )
