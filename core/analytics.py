"""Analytics: the real no-show rates, what the automated marks claimed, and the backlog of pending sessions.

Every figure is computed by the database; Python only receives aggregated rows. The counts of held sessions come
from the attendance tallies (per mentor and week, per week, per mentor and four weeks: see core/models.py),
which triggers keep in step with every booking written, and from the bookings only for the partial weeks at the
edges of a range and the sessions not ended yet (`_count_held`). Every figure is taken over one `Scope`:

- the **held sessions** in scope: bookings whose `start_time` is in `[since, until)` (of the one mentor, when
  the scope names one), whose status is `scheduled` (cancelled sessions are left out everywhere) and whose
  `end_time <= now` (a session that has not ended is neither pending nor marked);
- a held session is **pending** when `attended` is NULL, **marked** otherwise;
- a mark is **by a person** when `attendance_marked_by` is `Mentor` or `Admin`; a mark stamped `System` or
  carrying no attribution is **automated** (the legacy job's, certain or suspected);
- **time to mark**: hours from the session's `end_time` to `attendance_marked_at`, over marks by a person,
  counted in bins (HOURS_TO_MARK_EDGES); its medians are estimated from them (`estimate_median_hours`).

Rates are fractions in [0, 1], or None where nothing was marked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from core.audit import Actor
from core.errors import InvalidInput, NotAllowed, NotFound
from core.models import (
    ATTENDANCE_COUNTS,
    FOUR_WEEKS_FROM,
    HOURS_TO_MARK_EDGES,
    PERSON_KINDS,
    TIME_TO_MARK_BINS,
    ActorKind,
    Booking,
    BookingStatus,
    Mentee,
    Mentor,
    Reprobation,
    Role,
    User,
    attendance_tallies,
    four_week_attendance_tallies,
    weekly_attendance_tallies,
)
from core.models import Warning as MenteeWarning

DEFAULT_DAYS = 90
DAY = timedelta(days=1)
WEEK = timedelta(days=7)

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
# Counts per mentor and week: the tallies where they answer, the bookings elsewhere


# The bins (of TIME_TO_MARK_BINS) in each bucket of the chart (TIME_TO_MARK_BUCKETS).
_BIN_OF_BUCKET = tuple(
    tuple(
        i
        for i in range(len(TIME_TO_MARK_BINS))
        if (low is None or (i > 0 and HOURS_TO_MARK_EDGES[i - 1] >= low))
        and (high is None or (i < len(HOURS_TO_MARK_EDGES) and HOURS_TO_MARK_EDGES[i] <= high))
    )
    for _, low, high in TIME_TO_MARK_BUCKETS
)
# Every bucket of the chart is a union of whole bins, each bin in exactly one bucket.
assert sorted(i for bins in _BIN_OF_BUCKET for i in bins) == list(range(len(TIME_TO_MARK_BINS)))


def _four_weeks_at_or_after(monday: date) -> date:
    """The first Monday of the first four-week span (see four_week_attendance_tallies) that starts on or after
    `monday`."""
    return monday + timedelta(days=-((monday - FOUR_WEEKS_FROM).days % 28) % 28)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


class _Counts(Counter[str]):
    """Counts of held sessions (the names of ATTENDANCE_COUNTS and TIME_TO_MARK_BINS), with what follows from them."""

    @property
    def by_person(self) -> tuple[int, int]:
        """(marked, no-shows) by a person."""
        no_shows = self["mentor_no_shows"] + self["admin_no_shows"]
        return self["mentor_attended"] + self["admin_attended"] + no_shows, no_shows

    @property
    def automated(self) -> tuple[int, int]:
        """(marked, no-shows) by System or by nobody known."""
        no_shows = self["system_no_shows"] + self["unattributed_no_shows"]
        return self["system_attended"] + self["unattributed_attended"] + no_shows, no_shows

    def marks(self, kind: str) -> int:
        return self[f"{kind}_attended"] + self[f"{kind}_no_shows"]

    @property
    def bins(self) -> list[int]:
        return [self[name] for name in TIME_TO_MARK_BINS]


def _count_held(
    session: Session,
    since: datetime,
    until: datetime,
    mentor_id: int | None,
    now: datetime,
    *,
    by: str | None = None,
    timed: bool = False,
) -> dict[Any, _Counts]:
    """The held sessions starting in `[since, until)` (of one mentor, or all), counted by `by` ("mentor_id",
    "week" or None for one total under the key None); `timed` adds the marks by hours to mark.

    The tallies count every scheduled session of a week (a row per week, or per mentor and week, where the
    bookings are a million). The range's whole weeks are read from them. Each partial week at an edge of the
    range is counted from the bookings, either the days inside the range or, when fewer, the whole week from the
    tally less the days outside the range. From the first week holding a session that has not ended on, those
    sessions are taken away (a tally counts them, they are not held yet). The bookings are read through indexes
    that cover them, and only for a few days.
    """
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    names = ATTENDANCE_COUNTS + (TIME_TO_MARK_BINS if timed else ())
    mine = [] if mentor_id is None else [Booking.mentor_id == mentor_id]
    scheduled = [Booking.status == BookingStatus.SCHEDULED, *mine]
    held = [*scheduled, Booking.end_time <= now]
    # (sign, conditions) of the sessions counted from the bookings: +1 added, -1 taken away from the tallies.
    from_bookings: list[tuple[int, list[sa.ColumnElement[bool]]]] = []

    def between(start: datetime, end: datetime) -> list[sa.ColumnElement[bool]]:
        return [Booking.start_time >= start, Booking.start_time < end]

    def fewer_outside(inside: tuple[datetime, datetime], outside: tuple[datetime, datetime]) -> bool:
        """Whether a week at an edge has fewer sessions outside the range than inside it (counted from an index)."""
        count = [
            sa.select(sa.func.count()).where(*between(*interval), *mine).scalar_subquery()
            for interval in (inside, outside)
        ]
        return bool(session.scalar(sa.select(count[1] < count[0])))

    # The weeks read from the tallies, [first, end): each edge week whole, less its sessions outside the range,
    # when those are fewer than the ones inside; else its sessions inside the range, from the bookings.
    first_week = _monday(since.astimezone(UTC).date())
    week_after = _midnight(first_week) + WEEK
    if _midnight(first_week) < since:
        if since < until <= week_after or not fewer_outside((since, week_after), (_midnight(first_week), since)):
            first_week += WEEK
            from_bookings.append((+1, [*between(since, min(until, week_after)), *held]))
        else:
            from_bookings.append((-1, [*between(_midnight(first_week), since), *scheduled]))
    end_week = _monday(until.astimezone(UTC).date())
    if _midnight(end_week) < until:
        if first_week <= end_week and fewer_outside((_midnight(end_week), until), (until, _midnight(end_week) + WEEK)):
            end_week += WEEK
            from_bookings.append((-1, [*between(until, _midnight(end_week)), *scheduled]))
        else:
            from_bookings.append((+1, [*between(_midnight(end_week), until), *held]))
    if first_week >= end_week:
        # A range of a few days, in one week or two: every session from the bookings.
        first_week = end_week
        from_bookings = [(+1, [*between(since, until), *held])]

    parts: list[sa.Select[Any]] = []
    if first_week < end_week:
        # The sessions of the tallied weeks that have not ended: only in weeks whose latest end is after now.
        settled = weekly_attendance_tallies if mentor_id is None else attendance_tallies
        unsettled = sa.select(sa.func.min(settled.c.week)).where(
            settled.c.last_end > now, settled.c.week >= first_week, settled.c.week < end_week
        )
        if mentor_id is not None:
            unsettled = unsettled.where(settled.c.mentor_id == mentor_id)
        first_unsettled = session.scalar(unsettled)
        if first_unsettled is not None:
            start = max(since, _midnight(_as_date(first_unsettled)))
            from_bookings.append(
                (-1, [*between(start, min(until, _midnight(end_week))), *scheduled, Booking.end_time > now])
            )

        tally = weekly_attendance_tallies if mentor_id is None and by != "mentor_id" else attendance_tallies
        # (sign, tally, first week, end week) of the tallies read.
        spans = [(+1, tally, first_week, end_week)]
        if mentor_id is None and by == "mentor_id":
            # Every mentor, mentor by mentor: whole four-week spans from their own tally, a row in four, and the
            # weeks at the edges from the weekly one: those of a span inside the range, or the whole span less
            # those outside it, whichever are fewer.
            first_span = _four_weeks_at_or_after(first_week - 3 * WEEK)
            end_span = _four_weeks_at_or_after(end_week - 3 * WEEK)
            if first_span < first_week and (first_week - first_span) * 2 > 4 * WEEK:
                first_span += 4 * WEEK
            if end_span < end_week and (end_week - end_span) * 2 > 4 * WEEK:
                end_span += 4 * WEEK
            if first_span < end_span:
                spans = [
                    (+1, four_week_attendance_tallies, first_span, end_span),
                    *_signed_weeks(first_week, first_span),
                    *_signed_weeks(end_span, end_week),
                ]
        for sign, table, start_week, end_of_span in spans:
            if start_week < end_of_span:
                group = [] if by is None else [table.c[by].label("key")]
                signed = [(sign * sa.func.sum(table.c[name])).label(name) for name in names]
                part = sa.select(*group, *signed).where(table.c.week >= start_week, table.c.week < end_of_span)
                if mentor_id is not None:
                    part = part.where(table.c.mentor_id == mentor_id)
                parts.append(part.group_by(*group))

    # The sessions counted from the bookings: grouped by key, mark and bin first (each booking's bin computed
    # once), then summed into the tallies' counts, with their sign.
    dialect = _dialect(session)
    key_column = {"mentor_id": _grouping(Booking.mentor_id), "week": _week_start(dialect, Booking.start_time)}.get(
        by or ""
    )
    grouped: list[Any] = [Booking.attended.label("attended"), Booking.attendance_marked_by.label("marked_by")]
    if key_column is not None:
        grouped.insert(0, key_column.label("key"))
    if timed:
        grouped.append(_time_bin(dialect).label("time_bin"))
    for sign, conditions in from_bookings:
        g = (
            sa.select(*grouped, sa.func.count().label("n"))
            .where(*conditions)
            .group_by(*(c.element for c in grouped))
            .subquery()
        )
        totals = [
            (sign * sa.func.sum(sa.case((condition, g.c.n), else_=0))).label(name)
            for name, condition in zip(names, _conditions(g, names), strict=True)
        ]
        parts.append(sa.select(g.c.key, *totals).group_by(g.c.key) if by else sa.select(*totals))

    # Every part summed by key in one statement: a row per key comes back.
    every = sa.union_all(*parts).subquery()
    sums = [sa.func.sum(every.c[name]) for name in names]
    stmt = sa.select(every.c.key, *sums).group_by(every.c.key) if by else sa.select(*sums)
    counts: dict[Any, _Counts] = {}
    for row in session.execute(stmt):
        values = row[1:] if by else row
        counts[_key(row[0]) if by else None] = _Counts({n: int(v or 0) for n, v in zip(names, values, strict=True)})
    return counts


def _signed_weeks(start: date, end: date) -> list[tuple[int, sa.Table, date, date]]:
    """The per-mentor weekly tally of the weeks between Mondays `start` and `end`: added when `start` comes
    first (weeks inside the range beyond a span), else taken away (weeks of a span outside the range)."""
    if start < end:
        return [(+1, attendance_tallies, start, end)]
    return [(-1, attendance_tallies, end, start)] if end < start else []


def _conditions(g: sa.Subquery, names: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """When a group of sessions (`g`: attended, marked_by, time_bin) counts in each of `names`."""
    conditions: list[sa.ColumnElement[bool]] = []
    for name in names:
        if name == "sessions":
            conditions.append(sa.true())
        elif name == "pending":
            conditions.append(g.c.attended.is_(None))
        elif name in TIME_TO_MARK_BINS:
            conditions.append(g.c.time_bin == TIME_TO_MARK_BINS.index(name))
        else:
            kind, mark = name.split("_", 1)
            by = g.c.marked_by.is_(None) if kind == "unattributed" else g.c.marked_by == ActorKind(kind.title())
            conditions.append(sa.and_(g.c.attended.is_(mark == "attended"), by))
    return conditions


def _key(value: Any) -> Any:
    """A week (a date, whatever type the database answered with) or a mentor id."""
    return value if isinstance(value, int) else _as_date(value)


def _time_bin(dialect: str) -> sa.ColumnElement[Any]:
    """The bin (an index into TIME_TO_MARK_BINS) of a booking's mark by a person, or NULL for any other booking."""

    def search(hours: Any, low: int, high: int) -> Any:
        """The bin among low..high that holds `hours`, by halves: the hours are compared ~5 times, not ~20."""
        if low == high:
            return sa.literal_column(str(low))
        middle = (low + high) // 2
        return sa.case(
            (hours < HOURS_TO_MARK_EDGES[middle], search(hours, low, middle)), else_=search(hours, middle + 1, high)
        )

    timed = sa.and_(_MARKED, _BY_PERSON, Booking.attendance_marked_at.is_not(None))
    hours = _hours_between(dialect, Booking.end_time, Booking.attendance_marked_at)
    if dialect == "sqlite":
        # SQLite computes the hours (two julianday() parses) at each comparison; a scalar subquery computes them
        # once per booking, for a third of the time. (MariaDB's subqueries cannot see the outer row this way.)
        def sql(expression: Any) -> str:
            return str(expression.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))

        bin_of_hours = sql(search(sa.literal_column("hours"), 0, len(HOURS_TO_MARK_EDGES)))
        once = f"(SELECT {bin_of_hours} FROM (SELECT {sql(hours)} AS hours))"  # noqa: S608 (constants only)
        return sa.case((timed, sa.literal_column(once)), else_=sa.null())
    return sa.case((timed, search(hours, 0, len(HOURS_TO_MARK_EDGES))), else_=sa.null())


def estimate_median_hours(bins: Sequence[int]) -> float | None:
    """The median hours to mark, estimated from marks counted by bin (see HOURS_TO_MARK_EDGES).

    The marks of a bin are taken as spread evenly across it: the j-th of c marks in [low, high) stands at
    low + (high - low) * (j - 1/2) / c. The median is the middle mark (the mean of the middle two), so the estimate
    lies in the bin holding the exact median (for instance between 12 and 18 hours) or between the two bins
    holding the middle two. A mark in the last bin (30 days or more) stands at 720 hours.
    """
    marks = sum(bins)
    if marks == 0:
        return None

    def hours_of(rank: int) -> float:
        """The estimated hours of the mark at `rank` (1 = quickest)."""
        seen = 0
        for i, count in enumerate(bins):
            if seen + count >= rank:
                if i == len(HOURS_TO_MARK_EDGES):
                    return float(HOURS_TO_MARK_EDGES[-1])
                low = 0.0 if i == 0 else float(HOURS_TO_MARK_EDGES[i - 1])
                return low + (HOURS_TO_MARK_EDGES[i] - low) * (rank - seen - 0.5) / count
            seen += count
        raise AssertionError(f"no mark at rank {rank} of {marks}")

    if marks % 2:
        return hours_of((marks + 1) // 2)
    return (hours_of(marks // 2) + hours_of(marks // 2 + 1)) / 2


def _sorted(rows: list[Any], sort_by: str, descending: bool, ties: Callable[[Any], Any]) -> list[Any]:
    """`rows` by the field `sort_by`, empty values (None) last, then by `ties` for a stable order."""
    present = sorted((r for r in rows if getattr(r, sort_by) is not None), key=ties)
    present.sort(key=lambda r: getattr(r, sort_by), reverse=descending)  # stable: ties keep their order
    return present + sorted((r for r in rows if getattr(r, sort_by) is None), key=ties)


# ---------------------------------------------------------------------------------------------------------
# Queries


def summarize_no_shows(session: Session, scope: Scope, *, now: datetime) -> Summary:
    """The headline figures of the scope and of the period of equal length just before it (see PeriodFigures)."""

    def figures(period: Scope) -> PeriodFigures:
        row = _count_held(session, period.since, period.until, period.mentor_id, now).get(None, _Counts())
        marked_by_person, no_shows_by_person = row.by_person
        marked_automated, automated = row.automated
        marked = marked_by_person + marked_automated
        return PeriodFigures(
            since=period.since,
            until=period.until,
            sessions=row["sessions"],
            sessions_marked=marked,
            sessions_marked_by_person=marked_by_person,
            no_shows_marked_by_person=no_shows_by_person,
            automated_no_shows=automated,
            system_no_shows=row["system_no_shows"],
            unattributed_no_shows=row["unattributed_no_shows"],
            pending=row["pending"],
            counted_no_show_rate=_rate(no_shows_by_person, marked_by_person),
            automated_no_show_rate=_rate(no_shows_by_person + automated, marked),
        )

    return Summary(current=figures(scope), previous=figures(scope.previous))


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

    The median hours to mark is estimated from the mentor's marks by bin (see `estimate_median_hours`)."""
    if sort_by not in MENTOR_COLUMNS:
        raise InvalidInput(f"cannot sort by {sort_by!r}: choose one of {', '.join(MENTOR_COLUMNS)}")
    counts = _count_held(session, scope.since, scope.until, scope.mentor_id, now, by="mentor_id", timed=True)
    names = {mentor_id: name for mentor_id, name in session.execute(sa.select(Mentor.id, Mentor.name))}
    rows = []
    for mentor_id, row in counts.items():
        if not row["sessions"]:
            continue
        marked, no_shows = row.by_person
        rows.append(
            MentorRow(
                mentor_id=mentor_id,
                mentor=names[mentor_id],
                sessions=row["sessions"],
                marked=marked,
                attended=marked - no_shows,
                no_shows=no_shows,
                rate=_rate(no_shows, marked),
                automated_marks=row.automated[0],
                pending=row["pending"],
                median_hours_to_mark=estimate_median_hours(row.bins),
            )
        )
    return tuple(_sorted(rows, sort_by, descending, lambda r: (r.mentor, r.mentor_id))[:limit])


def tally_weeks(session: Session, scope: Scope, *, now: datetime) -> tuple[WeekRow, ...]:
    """One row per week (Monday, UTC) that the scope touches, oldest first, weeks without sessions included
    with zeros: the counted and automated rates (as in PeriodFigures) and the marks by attribution."""
    found = _count_held(session, scope.since, scope.until, scope.mentor_id, now, by="week")
    weeks: list[WeekRow] = []
    week = _monday(scope.since.astimezone(UTC).date())
    last = _monday((scope.until - timedelta(microseconds=1)).astimezone(UTC).date())
    while week <= last:
        row = found.get(week)
        if row is None or not row["sessions"]:
            weeks.append(WeekRow(week, 0, 0, 0, None, None, 0, 0, 0, 0, 0))
        else:
            by_person, counted_no_shows = row.by_person
            automated, automated_no_shows = row.automated
            weeks.append(
                WeekRow(
                    week=week,
                    sessions=row["sessions"],
                    sessions_marked_by_person=by_person,
                    no_shows_marked_by_person=counted_no_shows,
                    counted_no_show_rate=_rate(counted_no_shows, by_person),
                    automated_no_show_rate=_rate(counted_no_shows + automated_no_shows, by_person + automated),
                    marks_mentor=row.marks("mentor"),
                    marks_admin=row.marks("admin"),
                    marks_system=row.marks("system"),
                    marks_unattributed=row.marks("unattributed"),
                    pending=row["pending"],
                )
            )
        week += timedelta(days=7)
    return tuple(weeks)


def tabulate_mentees(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    sort_by: str = "mentee",
    descending: bool = False,
    limit: int | None = None,
) -> tuple[MenteeRow, ...]:
    """One row per mentee with held sessions in scope (see MenteeRow), sorted by any of its columns.

    The first `limit` mentees with the most no-shows (the Analytics page's order) are found from the counted
    no-shows alone, a few percent of the sessions, when at least `limit` mentees have one; only their rows are
    then counted in full. Any other order counts every held session in scope.
    """
    held = _held(scope.since, scope.until, scope.mentor_id, now)
    chosen = _most_no_shows(session, held, limit) if sort_by == "no_shows" and descending and limit else None
    mentee = _grouping(Booking.mentee_id)
    counted = sa.select(
        mentee.label("mentee_id"),
        sa.func.count().label("sessions"),
        _count(_MARKED, _BY_PERSON).label("marked"),
        _count(_NO_SHOW, _BY_PERSON).label("no_shows"),
        _count(_PENDING).label("pending"),
    ).where(*held)
    warned = sa.select(MenteeWarning.mentee_id, sa.func.count().label("active")).where(
        MenteeWarning.revoked_at.is_(None)
    )
    reprobated = sa.select(Reprobation.mentee_id, sa.func.count().label("active")).where(
        Reprobation.lifted_at.is_(None)
    )
    if chosen is not None:
        counted = counted.where(Booking.mentee_id.in_(chosen))
        warned = warned.where(MenteeWarning.mentee_id.in_(chosen))
        reprobated = reprobated.where(Reprobation.mentee_id.in_(chosen))
    totals = counted.group_by(mentee).subquery()
    warnings = warned.group_by(MenteeWarning.mentee_id).subquery()
    reprobations = reprobated.group_by(Reprobation.mentee_id).subquery()
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


def _most_no_shows(session: Session, held: list[sa.ColumnElement[bool]], limit: int) -> list[int] | None:
    """The `limit` mentees with the most counted no-shows among the held sessions (then by name and id), or None
    when fewer than `limit` mentees have one (the rest of the order is then mentees without any)."""
    # One scan per kind of person: with `IN (Mentor, Admin)` SQLite would walk the pending sessions' index.
    per_kind = [
        sa.select(Booking.mentee_id.label("mentee_id"), sa.func.count().label("no_shows"))
        .where(*held, _NO_SHOW, Booking.attendance_marked_by == kind)
        .group_by(Booking.mentee_id)
        for kind in PERSON_KINDS
    ]
    counted = sa.union_all(*per_kind).subquery()
    chosen = list(
        session.scalars(
            sa.select(counted.c.mentee_id)
            .join(Mentee, Mentee.id == counted.c.mentee_id)
            .group_by(counted.c.mentee_id, Mentee.name)
            .order_by(sa.func.sum(counted.c.no_shows).desc(), Mentee.name, counted.c.mentee_id)
            .limit(limit)
        )
    )
    return chosen if len(chosen) == limit else None


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
    """Marks by a person on held sessions in scope, by hours from the session's end to the mark, and the median
    estimated from them (see `estimate_median_hours`)."""
    bins = _count_held(session, scope.since, scope.until, scope.mentor_id, now, timed=True).get(None, _Counts()).bins
    return TimeToMark(
        marks=sum(bins),
        by_bucket={
            label: sum(bins[i] for i in _BIN_OF_BUCKET[b]) for b, (label, _, _) in enumerate(TIME_TO_MARK_BUCKETS)
        },
        median_hours=estimate_median_hours(bins),
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
