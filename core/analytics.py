"""Analytics: the real no-show rates, what the automated marks claimed, and the backlog of pending sessions.

Every figure is computed by the database (GROUP BY and conditional aggregates in one pass); Python only
receives the aggregated rows. Every figure is taken over one `Scope`:

- the **held sessions** in scope: bookings whose `start_time` is in `[since, until)` (of the one mentor, when
  the scope names one), whose status is `scheduled` (cancelled sessions are left out everywhere) and whose
  `end_time <= now` (a session that has not ended is neither pending nor marked);
- a held session is **pending** when `attended` is NULL, **marked** otherwise;
- a mark is **by a person** when `attendance_marked_by` is `Mentor` or `Admin`; a mark stamped `System` or
  carrying no attribution is **automated** (the legacy job's, certain or suspected);
- **time to mark**: hours from the session's `end_time` to `attendance_marked_at`, over marks by a person.

Rates are fractions in [0, 1], or None where nothing was marked.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.audit import Actor
from core.errors import InvalidInput, NotAllowed, NotFound
from core.models import PERSON_KINDS, ActorKind, Booking, BookingStatus, Mentee, Mentor, Reprobation, Role, User
from core.models import Warning as MenteeWarning

DEFAULT_DAYS = 90
DAY = timedelta(days=1)

# Pending sessions by age (now - end_time): (label, lower bound inclusive, upper bound exclusive).
BACKLOG_BUCKETS: tuple[tuple[str, timedelta, timedelta | None], ...] = (
    ("<1 day", timedelta(0), DAY),
    ("1-3 days", DAY, 3 * DAY),
    ("3-7 days", 3 * DAY, 7 * DAY),
    ("7-30 days", 7 * DAY, 30 * DAY),
    (">30 days", 30 * DAY, None),
)
# Time to mark, in hours: (label, lower bound inclusive, upper bound exclusive). A mark recorded before
# the session's end (possible only in imported history) falls in the first bucket.
TIME_TO_MARK_BUCKETS: tuple[tuple[str, float | None, float | None], ...] = (
    ("<1 hour", None, 1.0),
    ("1-24 hours", 1.0, 24.0),
    ("1-3 days", 24.0, 72.0),
    ("3-7 days", 72.0, 168.0),
    ("7-30 days", 168.0, 720.0),
    (">30 days", 720.0, None),
)


# ---------------------------------------------------------------------------------------------------------
# Scope


@dataclass(frozen=True)
class Scope:
    """Sessions starting in `[since, until)`, of one mentor or of all (`mentor_id` None)."""

    since: datetime
    until: datetime
    mentor_id: int | None = None

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise InvalidInput("the date range must be timezone-aware")
        if self.since >= self.until:
            raise InvalidInput(
                f"the date range is empty: it starts {self.since:%Y-%m-%d %H:%M} and ends {self.until:%Y-%m-%d %H:%M}"
            )

    @property
    def previous(self) -> Scope:
        """The period of equal length just before this one, same mentor."""
        return Scope(self.since - (self.until - self.since), self.since, self.mentor_id)


def scope_for_days(first_day: date, last_day: date, mentor_id: int | None = None) -> Scope:
    """Sessions starting on `first_day` through `last_day`, both included (days in UTC)."""
    if last_day < first_day:
        raise InvalidInput(f"the date range is empty: {first_day.isoformat()} is after {last_day.isoformat()}")
    since = datetime.combine(first_day, time(), tzinfo=UTC)
    until = datetime.combine(last_day + DAY, time(), tzinfo=UTC)
    return Scope(since, until, mentor_id)


def default_days(today: date) -> tuple[date, date]:
    """The default range: the last `DEFAULT_DAYS` days up to and including `today`."""
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def scope_for_actor(actor: Actor, scope: Scope) -> Scope:
    """The scope this actor may see: an admin any; a mentor only their own sessions, whatever was asked."""
    if actor.kind is ActorKind.ADMIN:
        return scope
    if actor.kind is ActorKind.MENTOR and actor.mentor_id is not None:
        if scope.mentor_id is not None and scope.mentor_id != actor.mentor_id:
            raise NotAllowed("a mentor sees the analytics of their own sessions only")
        return Scope(scope.since, scope.until, actor.mentor_id)
    raise NotAllowed(f"{actor.kind.value} {actor.name!r} may not see analytics")


def find_mentor_id(session: Session, username: str) -> int:
    """The mentor a mentor user is linked to; refuses unknown users, admins and unlinked users."""
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    if user.role is not Role.MENTOR or user.mentor_id is None:
        raise InvalidInput(f"user {username!r} is not a mentor linked to a mentor's sessions")
    return user.mentor_id


# ---------------------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class PeriodFigures:
    """The headline figures of one period.

    - `counted_no_show_rate` = `no_shows_marked_by_person / sessions_marked_by_person`: the real rate,
      absences a person decided over sessions a person marked (pending ones left out).
    - `automated_no_show_rate` = `(no_shows_marked_by_person + automated_no_shows) / sessions_marked`: what the
      legacy job would have claimed, its System-stamped and unattributed absences counted as real, over every
      marked session whatever its attribution.
    """

    since: datetime
    until: datetime
    sessions: int
    sessions_marked: int
    sessions_marked_by_person: int
    no_shows_marked_by_person: int
    automated_no_shows: int
    system_no_shows: int
    unattributed_no_shows: int
    pending: int
    counted_no_show_rate: float | None
    automated_no_show_rate: float | None


@dataclass(frozen=True)
class Summary:
    current: PeriodFigures
    previous: PeriodFigures


@dataclass(frozen=True)
class MentorRow:
    """One mentor's held sessions in scope. `marked`, `attended` and `no_shows` count marks by a person;
    `automated_marks` the rest; `sessions = marked + automated_marks + pending`."""

    mentor_id: int
    mentor: str
    sessions: int
    marked: int
    attended: int
    no_shows: int
    rate: float | None
    automated_marks: int
    pending: int
    median_hours_to_mark: float | None


@dataclass(frozen=True)
class MenteeRow:
    """One mentee's held sessions in scope. `no_shows` are counted absences; `rate` is over marks by a person.
    `warnings` (active ones) and `reprobated` (an active reprobation) are the mentee's state now, all mentors."""

    mentee_id: int
    mentee: str
    sessions: int
    marked: int
    no_shows: int
    rate: float | None
    pending: int
    warnings: int
    reprobated: bool


@dataclass(frozen=True)
class WeekRow:
    """Held sessions starting in the week that begins on Monday `week` (UTC): the counted and automated rates
    (defined as in PeriodFigures) and the marks by attribution (`marks_unattributed`: no attribution at all)."""

    week: date
    sessions: int
    sessions_marked_by_person: int
    no_shows_marked_by_person: int
    counted_no_show_rate: float | None
    automated_no_show_rate: float | None
    marks_mentor: int
    marks_admin: int
    marks_system: int
    marks_unattributed: int
    pending: int


@dataclass(frozen=True)
class BacklogMentorRow:
    mentor_id: int
    mentor: str
    pending: int
    oldest_end_time: datetime
    by_age: dict[str, int]


@dataclass(frozen=True)
class Backlog:
    """Pending sessions in scope by age (now - end_time, see BACKLOG_BUCKETS) and by mentor (most first)."""

    total: int
    by_age: dict[str, int]
    by_mentor: tuple[BacklogMentorRow, ...]


@dataclass(frozen=True)
class TimeToMark:
    """Marks by a person in scope by hours from the session's end to the mark (see TIME_TO_MARK_BUCKETS)."""

    marks: int
    by_bucket: dict[str, int]
    median_hours: float | None


@dataclass(frozen=True)
class Analytics:
    scope: Scope
    summary: Summary
    by_mentor: tuple[MentorRow, ...]
    by_mentee: tuple[MenteeRow, ...]
    weekly: tuple[WeekRow, ...]
    backlog: Backlog
    time_to_mark: TimeToMark


MENTOR_COLUMNS = tuple(f.name for f in fields(MentorRow))
MENTEE_COLUMNS = tuple(f.name for f in fields(MenteeRow))


# ---------------------------------------------------------------------------------------------------------
# Dialect helpers: the only SQL that differs between SQLite, PostgreSQL and MariaDB.


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _hours_between(dialect: str, start: Any, end: Any) -> sa.ColumnElement[float]:
    """Hours from `start` to `end` (both naive UTC columns); each database spells interval arithmetic its way."""
    if dialect == "sqlite":
        # Times are stored as ISO text; julianday() reads it as fractional days. Rounding to whole milliseconds
        # first makes whole hours exact (24 h is 24.0, not 23.999...), which the bucket bounds rely on.
        milliseconds = sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86_400_000.0)
        return sa.cast(milliseconds / 3_600_000.0, sa.Float)
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", end - start) / 3600.0, sa.Float)
    if dialect in ("mysql", "mariadb"):
        return sa.cast(sa.func.timestampdiff(sa.literal_column("MICROSECOND"), start, end) / 3_600_000_000.0, sa.Float)
    raise InvalidInput(f"analytics do not support the {dialect} database")


def _week_start(dialect: str, column: Any) -> sa.ColumnElement[Any]:
    """The Monday (a date, UTC) of the week `column` falls in; each database truncates dates its way."""
    if dialect == "sqlite":
        # 'weekday 0' moves forward to the next Sunday (or stays on one); six days back is that week's Monday.
        return sa.func.date(column, "weekday 0", "-6 days")
    if dialect == "postgresql":
        # ISO weeks start on Monday.
        return sa.cast(sa.func.date_trunc("week", column), sa.Date)
    if dialect in ("mysql", "mariadb"):
        # WEEKDAY() is 0 on Monday; SUBDATE(d, n) is n days before d.
        return sa.func.subdate(sa.func.date(column), sa.func.weekday(column))
    raise InvalidInput(f"analytics do not support the {dialect} database")


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# ---------------------------------------------------------------------------------------------------------
# Conditions shared by the queries


_MARKED = Booking.attended.is_not(None)
_PENDING = Booking.attended.is_(None)
_NO_SHOW = Booking.attended.is_(False)
_ATTENDED = Booking.attended.is_(True)
_BY_PERSON = Booking.attendance_marked_by.in_(PERSON_KINDS)
_BY_SYSTEM = Booking.attendance_marked_by == ActorKind.SYSTEM
_UNATTRIBUTED = Booking.attendance_marked_by.is_(None)
_AUTOMATED = sa.or_(_BY_SYSTEM, _UNATTRIBUTED)


def _held(since: datetime, until: datetime, mentor_id: int | None, now: datetime) -> list[sa.ColumnElement[bool]]:
    """Held sessions: scheduled, started in [since, until), ended by `now` (of one mentor, if given)."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    conditions = [
        Booking.start_time >= since,
        Booking.start_time < until,
        Booking.status == BookingStatus.SCHEDULED,
        Booking.end_time <= now,
    ]
    if mentor_id is not None:
        conditions.append(Booking.mentor_id == mentor_id)
    return conditions


def _grouping(column: sa.ColumnElement[int] | Any) -> sa.ColumnElement[int]:
    """`column + 0`, to group or partition by. The expression keeps SQLite from walking an index in the column's
    order (fetching every booking from the table, one by one) merely to spare a sort; other databases plan it
    as they would the column."""
    return sa.cast(column + sa.literal_column("0"), sa.Integer)


def _count(*conditions: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """COUNT of the rows meeting every condition: one column of a single-pass conditional aggregate."""
    return sa.func.count(sa.case((sa.and_(*conditions), 1)))


def _ratio(numerator: sa.ColumnElement[Any], denominator: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """numerator / denominator as a float, NULL where the denominator is 0 (for sorting in SQL)."""
    return sa.case((denominator > 0, sa.cast(numerator, sa.Float) / denominator))


def _ordering(
    columns: dict[str, sa.ColumnElement[Any]], sort_by: str, descending: bool, ties: list[sa.ColumnElement[Any]]
) -> list[sa.ColumnElement[Any]]:
    """ORDER BY `sort_by`, empty values (NULL) last on every database, then `ties` for a stable order."""
    if sort_by not in columns:
        raise InvalidInput(f"cannot sort by {sort_by!r}: choose one of {', '.join(columns)}")
    column = columns[sort_by]
    # MariaDB has no NULLS LAST; sorting on "is null" first is portable.
    return [sa.case((column.is_(None), 1), else_=0), column.desc() if descending else column.asc(), *ties]


# ---------------------------------------------------------------------------------------------------------
# Queries


def summarize_no_shows(session: Session, scope: Scope, *, now: datetime) -> Summary:
    """The headline figures of the scope and of the period of equal length just before it (see PeriodFigures),
    in one pass over both periods."""
    previous = scope.previous
    figures_of = {
        "sessions": (),
        "marked": (_MARKED,),
        "marked_by_person": (_MARKED, _BY_PERSON),
        "no_shows_by_person": (_NO_SHOW, _BY_PERSON),
        "system_no_shows": (_NO_SHOW, _BY_SYSTEM),
        "unattributed_no_shows": (_NO_SHOW, _UNATTRIBUTED),
        "pending": (_PENDING,),
    }
    # Conditional counts for both periods in one scan; a GROUP BY on the period would sort every row.
    periods = {1: Booking.start_time >= scope.since, 0: Booking.start_time < scope.since}
    row = session.execute(
        sa.select(
            *(
                _count(period, *conditions).label(f"{name}_{key}")
                for key, period in periods.items()
                for name, conditions in figures_of.items()
            )
        ).where(*_held(previous.since, scope.until, scope.mentor_id, now))
    ).one()
    counts = {key: SimpleNamespace(**{name: getattr(row, f"{name}_{key}") for name in figures_of}) for key in periods}

    def figures(period: Scope, key: int) -> PeriodFigures:
        row = counts[key]
        automated = row.system_no_shows + row.unattributed_no_shows
        return PeriodFigures(
            since=period.since,
            until=period.until,
            sessions=row.sessions,
            sessions_marked=row.marked,
            sessions_marked_by_person=row.marked_by_person,
            no_shows_marked_by_person=row.no_shows_by_person,
            automated_no_shows=automated,
            system_no_shows=row.system_no_shows,
            unattributed_no_shows=row.unattributed_no_shows,
            pending=row.pending,
            counted_no_show_rate=_rate(row.no_shows_by_person, row.marked_by_person),
            automated_no_show_rate=_rate(row.no_shows_by_person + automated, row.marked),
        )

    return Summary(current=figures(scope, 1), previous=figures(previous, 0))


def tabulate_mentors(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    sort_by: str = "mentor",
    descending: bool = False,
    limit: int | None = None,
) -> tuple[MentorRow, ...]:
    """One row per mentor with held sessions in scope (see MentorRow), sorted by any of its columns.

    The median hours to mark is exact: the mentor's durations are ranked by a window function and the middle
    one (or the mean of the middle two) is picked in SQL, so no database needs a percentile function.
    """
    held = _held(scope.since, scope.until, scope.mentor_id, now)
    mentor = _grouping(Booking.mentor_id)
    totals = (
        sa.select(
            mentor.label("mentor_id"),
            sa.func.count().label("sessions"),
            _count(_MARKED, _BY_PERSON).label("marked"),
            _count(_ATTENDED, _BY_PERSON).label("attended"),
            _count(_NO_SHOW, _BY_PERSON).label("no_shows"),
            _count(_MARKED, _AUTOMATED).label("automated_marks"),
            _count(_PENDING).label("pending"),
        )
        .where(*held)
        .group_by(mentor)
        .subquery()
    )
    hours = _hours_between(_dialect(session), Booking.end_time, Booking.attendance_marked_at)
    ranked = (
        sa.select(
            mentor.label("mentor_id"),
            hours.label("hours"),
            sa.func.row_number().over(partition_by=mentor, order_by=hours).label("position"),
            sa.func.count().over(partition_by=mentor).label("n"),
        )
        .where(*held, _MARKED, _BY_PERSON, Booking.attendance_marked_at.is_not(None))
        .subquery()
    )
    # The middle position(s): 2*position in [n, n + 2] picks one row when n is odd, two when even.
    medians = (
        sa.select(ranked.c.mentor_id, sa.func.avg(ranked.c.hours).label("median"))
        .where(2 * ranked.c.position >= ranked.c.n, 2 * ranked.c.position <= ranked.c.n + 2)
        .group_by(ranked.c.mentor_id)
        .subquery()
    )
    columns: dict[str, sa.ColumnElement[Any]] = {
        "mentor_id": totals.c.mentor_id,
        "mentor": Mentor.name.expression,
        "sessions": totals.c.sessions,
        "marked": totals.c.marked,
        "attended": totals.c.attended,
        "no_shows": totals.c.no_shows,
        "rate": _ratio(totals.c.no_shows, totals.c.marked),
        "automated_marks": totals.c.automated_marks,
        "pending": totals.c.pending,
        "median_hours_to_mark": medians.c.median,
    }
    stmt = (
        sa.select(*(c.label(name) for name, c in columns.items()))
        .join_from(totals, Mentor, Mentor.id == totals.c.mentor_id)
        .outerjoin(medians, medians.c.mentor_id == totals.c.mentor_id)
        .order_by(*_ordering(columns, sort_by, descending, [Mentor.name.expression, totals.c.mentor_id]))
        .limit(limit)
    )
    return tuple(
        MentorRow(
            mentor_id=row.mentor_id,
            mentor=row.mentor,
            sessions=row.sessions,
            marked=row.marked,
            attended=row.attended,
            no_shows=row.no_shows,
            rate=_rate(row.no_shows, row.marked),
            automated_marks=row.automated_marks,
            pending=row.pending,
            median_hours_to_mark=None if row.median_hours_to_mark is None else float(row.median_hours_to_mark),
        )
        for row in session.execute(stmt)
    )


def tabulate_mentees(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    sort_by: str = "mentee",
    descending: bool = False,
    limit: int | None = None,
) -> tuple[MenteeRow, ...]:
    """One row per mentee with held sessions in scope (see MenteeRow), sorted by any of its columns."""
    mentee = _grouping(Booking.mentee_id)
    totals = (
        sa.select(
            mentee.label("mentee_id"),
            sa.func.count().label("sessions"),
            _count(_MARKED, _BY_PERSON).label("marked"),
            _count(_NO_SHOW, _BY_PERSON).label("no_shows"),
            _count(_PENDING).label("pending"),
        )
        .where(*_held(scope.since, scope.until, scope.mentor_id, now))
        .group_by(mentee)
        .subquery()
    )
    warnings = (
        sa.select(MenteeWarning.mentee_id, sa.func.count().label("active"))
        .where(MenteeWarning.revoked_at.is_(None))
        .group_by(MenteeWarning.mentee_id)
        .subquery()
    )
    reprobations = (
        sa.select(Reprobation.mentee_id, sa.func.count().label("active"))
        .where(Reprobation.lifted_at.is_(None))
        .group_by(Reprobation.mentee_id)
        .subquery()
    )
    columns: dict[str, sa.ColumnElement[Any]] = {
        "mentee_id": totals.c.mentee_id,
        "mentee": Mentee.name.expression,
        "sessions": totals.c.sessions,
        "marked": totals.c.marked,
        "no_shows": totals.c.no_shows,
        "rate": _ratio(totals.c.no_shows, totals.c.marked),
        "pending": totals.c.pending,
        "warnings": sa.func.coalesce(warnings.c.active, 0),
        "reprobated": sa.case((reprobations.c.active > 0, 1), else_=0),
    }
    stmt = (
        sa.select(*(c.label(name) for name, c in columns.items()))
        .join_from(totals, Mentee, Mentee.id == totals.c.mentee_id)
        .outerjoin(warnings, warnings.c.mentee_id == totals.c.mentee_id)
        .outerjoin(reprobations, reprobations.c.mentee_id == totals.c.mentee_id)
        .order_by(*_ordering(columns, sort_by, descending, [Mentee.name.expression, totals.c.mentee_id]))
        .limit(limit)
    )
    return tuple(
        MenteeRow(
            mentee_id=row.mentee_id,
            mentee=row.mentee,
            sessions=row.sessions,
            marked=row.marked,
            no_shows=row.no_shows,
            rate=_rate(row.no_shows, row.marked),
            pending=row.pending,
            warnings=int(row.warnings),
            reprobated=bool(row.reprobated),
        )
        for row in session.execute(stmt)
    )


def tally_weeks(session: Session, scope: Scope, *, now: datetime) -> tuple[WeekRow, ...]:
    """One row per week (Monday, UTC) that the scope touches, oldest first, weeks without sessions included
    with zeros: the counted and automated rates (as in PeriodFigures) and the marks by attribution."""
    rows = (
        sa.select(
            _week_start(_dialect(session), Booking.start_time).label("week"),
            Booking.attended,
            Booking.attendance_marked_by,
        )
        .where(*_held(scope.since, scope.until, scope.mentor_id, now))
        .subquery()
    )
    marked = rows.c.attended.is_not(None)
    no_show = rows.c.attended.is_(False)
    kind = rows.c.attendance_marked_by
    found = {
        _as_date(row.week): row
        for row in session.execute(
            sa.select(
                rows.c.week,
                sa.func.count().label("sessions"),
                _count(marked, kind.in_(PERSON_KINDS)).label("by_person"),
                _count(no_show, kind.in_(PERSON_KINDS)).label("counted"),
                _count(marked).label("marked"),
                _count(no_show, sa.or_(kind.in_(PERSON_KINDS), kind == ActorKind.SYSTEM, kind.is_(None))).label(
                    "claimed"
                ),
                _count(marked, kind == ActorKind.MENTOR).label("mentor"),
                _count(marked, kind == ActorKind.ADMIN).label("admin"),
                _count(marked, kind == ActorKind.SYSTEM).label("system"),
                _count(marked, kind.is_(None)).label("unattributed"),
                _count(rows.c.attended.is_(None)).label("pending"),
            ).group_by(rows.c.week)
        )
    }
    weeks: list[WeekRow] = []
    week = _monday(scope.since.astimezone(UTC).date())
    last = _monday((scope.until - timedelta(microseconds=1)).astimezone(UTC).date())
    while week <= last:
        row = found.get(week)
        if row is None:
            weeks.append(WeekRow(week, 0, 0, 0, None, None, 0, 0, 0, 0, 0))
        else:
            weeks.append(
                WeekRow(
                    week=week,
                    sessions=row.sessions,
                    sessions_marked_by_person=row.by_person,
                    no_shows_marked_by_person=row.counted,
                    counted_no_show_rate=_rate(row.counted, row.by_person),
                    automated_no_show_rate=_rate(row.claimed, row.marked),
                    marks_mentor=row.mentor,
                    marks_admin=row.admin,
                    marks_system=row.system,
                    marks_unattributed=row.unattributed,
                    pending=row.pending,
                )
            )
        week += timedelta(days=7)
    return tuple(weeks)


def _backlog_bucket(now: datetime, low: timedelta, high: timedelta | None) -> sa.ColumnElement[bool]:
    """Pending sessions whose age (now - end_time) is in [low, high); bounds are computed here, not in SQL."""
    condition = Booking.end_time <= now - low
    return condition if high is None else sa.and_(condition, Booking.end_time > now - high)


def tally_backlog(session: Session, scope: Scope, *, now: datetime) -> Backlog:
    """The pending sessions in scope by age bucket and by mentor (most pending first, then name)."""
    mentor = _grouping(Booking.mentor_id)
    labels = [label for label, _, _ in BACKLOG_BUCKETS]
    pending = (
        sa.select(
            mentor.label("mentor_id"),
            sa.func.count().label("pending"),
            sa.func.min(Booking.end_time).label("oldest"),
            *(
                _count(_backlog_bucket(now, low, high)).label(f"b{i}")
                for i, (_, low, high) in enumerate(BACKLOG_BUCKETS)
            ),
        )
        .where(*_held(scope.since, scope.until, scope.mentor_id, now), _PENDING)
        .group_by(mentor)
        .subquery()
    )
    by_mentor = tuple(
        BacklogMentorRow(
            mentor_id=row.mentor_id,
            mentor=row.name,
            pending=row.pending,
            oldest_end_time=row.oldest,
            by_age={label: int(getattr(row, f"b{i}")) for i, label in enumerate(labels)},
        )
        for row in session.execute(
            sa.select(pending, Mentor.name)
            .join_from(pending, Mentor, Mentor.id == pending.c.mentor_id)
            .order_by(pending.c.pending.desc(), Mentor.name, pending.c.mentor_id)
        )
    )
    by_age = {label: sum(row.by_age[label] for row in by_mentor) for label in labels}
    return Backlog(total=sum(row.pending for row in by_mentor), by_age=by_age, by_mentor=by_mentor)


def measure_time_to_mark(session: Session, scope: Scope, *, now: datetime) -> TimeToMark:
    """Marks by a person on held sessions in scope, by hours from the session's end to the mark, and the exact
    median (the middle of the ranked durations, or the mean of the middle two), in one query."""
    hours = _hours_between(_dialect(session), Booking.end_time, Booking.attendance_marked_at)
    ranked = (
        sa.select(
            hours.label("hours"),
            sa.func.row_number().over(order_by=hours).label("position"),
            sa.func.count().over().label("n"),
        )
        .where(
            *_held(scope.since, scope.until, scope.mentor_id, now),
            _MARKED,
            _BY_PERSON,
            Booking.attendance_marked_at.is_not(None),
        )
        .subquery()
    )
    h = ranked.c.hours
    middle = sa.and_(2 * ranked.c.position >= ranked.c.n, 2 * ranked.c.position <= ranked.c.n + 2)
    buckets = []
    for i, (_, low, high) in enumerate(TIME_TO_MARK_BUCKETS):
        conditions = [
            c for c in (None if low is None else h >= low, None if high is None else h < high) if c is not None
        ]
        buckets.append(_count(*conditions).label(f"b{i}"))
    row = session.execute(
        sa.select(sa.func.count().label("marks"), sa.func.avg(sa.case((middle, h))).label("median"), *buckets)
    ).one()
    return TimeToMark(
        marks=row.marks,
        by_bucket={label: int(getattr(row, f"b{i}")) for i, (label, _, _) in enumerate(TIME_TO_MARK_BUCKETS)},
        median_hours=None if row.median is None else float(row.median),
    )


def compute_analytics(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    mentor_sort: str = "mentor",
    mentor_descending: bool = False,
    mentee_sort: str = "mentee",
    mentee_descending: bool = False,
    mentee_limit: int | None = None,
) -> Analytics:
    """Every figure of the scope, as the analytics page and `mentorship stats` show them."""
    return Analytics(
        scope=scope,
        summary=summarize_no_shows(session, scope, now=now),
        by_mentor=tabulate_mentors(session, scope, now=now, sort_by=mentor_sort, descending=mentor_descending),
        by_mentee=tabulate_mentees(
            session, scope, now=now, sort_by=mentee_sort, descending=mentee_descending, limit=mentee_limit
        ),
        weekly=tally_weeks(session, scope, now=now),
        backlog=tally_backlog(session, scope, now=now),
        time_to_mark=measure_time_to_mark(session, scope, now=now),
    )
