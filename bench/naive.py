"""The naive baseline the analytics queries are compared with: load the bookings with pandas, compute in pandas.

Each figure of `core.analytics` is computed here again from `pd.read_sql` of the bookings table (only the
columns the figures use, read in chunks so the memory stays bounded), with the same definitions: held sessions
are scheduled, started in [since, until) and ended by `now`; a mark is by a person when stamped Mentor or
Admin. Each function returns a small signature of its figure, which the benchmark compares with the
signature of the database's answer: a baseline that computed something else would prove nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core import analytics
from core.models import HOURS_TO_MARK_EDGES, TIME_TO_MARK_BINS, ActorKind, BookingStatus

PERSON = ("Mentor", "Admin")
COLUMNS = (
    "id",
    "mentor_id",
    "mentee_id",
    "start_time",
    "end_time",
    "status",
    "attended",
    "attendance_marked_by",
    "attendance_marked_at",
)
TIMES = ("start_time", "end_time", "attendance_marked_at")
STATUSES = [s.value for s in BookingStatus]
KINDS = [k.value for k in ActorKind]
Signature = tuple[Any, ...]


def load_bookings(connection: sa.Connection) -> pd.DataFrame:
    """The bookings table as a DataFrame (naive UTC times, `attended` as a nullable boolean)."""
    query = sa.text(f"SELECT {', '.join(COLUMNS)} FROM bookings")  # noqa: S608 (constant column names)
    frames = []
    # Each chunk is converted as it comes: a million rows of time strings at once would need more memory than
    # the whole benchmark may use.
    for frame in pd.read_sql(query, connection, chunksize=50_000):
        for column in TIMES:
            frame[column] = pd.to_datetime(frame[column], format="ISO8601")
        frame["attended"] = frame["attended"].astype("boolean")
        # Small types: the same values in a third of the memory (fixed categories, so that chunks concatenate).
        for column in ("id", "mentor_id", "mentee_id"):
            frame[column] = frame[column].astype("int32")
        frame["status"] = pd.Categorical(frame["status"], categories=STATUSES)
        frame["attendance_marked_by"] = pd.Categorical(frame["attendance_marked_by"], categories=KINDS)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_mentees(connection: sa.Connection) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mentees' names, active warnings and active reprobations (by mentee id), for the per-mentee figure."""
    names = pd.read_sql(sa.text("SELECT id, name FROM mentees"), connection)
    warnings = pd.read_sql(sa.text("SELECT mentee_id FROM warnings WHERE revoked_at IS NULL"), connection)
    reprobations = pd.read_sql(sa.text("SELECT mentee_id FROM reprobations WHERE lifted_at IS NULL"), connection)
    return names, warnings, reprobations


def _naive(moment: datetime) -> pd.Timestamp:
    return pd.Timestamp(moment.replace(tzinfo=None))


def _held(bookings: pd.DataFrame, since: datetime, until: datetime, now: datetime) -> pd.DataFrame:
    start = bookings["start_time"]
    keep = (
        (start >= _naive(since))
        & (start < _naive(until))
        & (bookings["status"] == "scheduled")
        & (bookings["end_time"] <= _naive(now))
    )
    return bookings[keep]


def _flags(held: pd.DataFrame) -> pd.DataFrame:
    attended = held["attended"]
    by = held["attendance_marked_by"]
    marked = attended.notna()
    person = by.isin(PERSON)
    return pd.DataFrame(
        {
            "marked": marked,
            "by_person": marked & person,
            "attended": (attended == True) & person,  # noqa: E712 (nullable boolean: NA stays out)
            "counted": (attended == False) & person,  # noqa: E712
            "system": (attended == False) & (by == "System"),  # noqa: E712
            "unattributed": (attended == False) & by.isna(),  # noqa: E712
            "automated": marked & ~person,
            "pending": attended.isna(),
        },
        index=held.index,
    ).fillna(False)


def _hours_to_mark(held: pd.DataFrame) -> pd.Series:
    marked = held[held["attended"].notna() & held["attendance_marked_by"].isin(PERSON)]
    marked = marked[marked["attendance_marked_at"].notna()]
    return (marked["attendance_marked_at"] - marked["end_time"]).dt.total_seconds() / 3600


def _estimated_median(hours: pd.Series) -> float | None:
    """The median as the product estimates it from the marks by bin (analytics.estimate_median_hours)."""
    bins = np.bincount(
        np.searchsorted(HOURS_TO_MARK_EDGES, hours.to_numpy(), side="right"), minlength=len(TIME_TO_MARK_BINS)
    )
    return analytics.estimate_median_hours([int(n) for n in bins])


def summary(bookings: pd.DataFrame, scope: analytics.Scope, now: datetime) -> Signature:
    out: list[int] = []
    for period in (scope, scope.previous):
        f = _flags(_held(bookings, period.since, period.until, now))
        out += [len(f), *(int(f[c].sum()) for c in ("marked", "by_person", "counted", "system", "unattributed"))]
        out.append(int(f["pending"].sum()))
    return tuple(out)


def mentors(bookings: pd.DataFrame, scope: analytics.Scope, now: datetime) -> Signature:
    held = _held(bookings, scope.since, scope.until, now)
    f = _flags(held)
    f["mentor_id"] = held["mentor_id"]
    table = f.groupby("mentor_id").sum()
    hours = _hours_to_mark(held)
    medians = hours.groupby(held.loc[hours.index, "mentor_id"]).apply(_estimated_median)
    return (len(table), int(table["counted"].sum()), int(table["pending"].sum()), round(float(medians.sum()), 3))


def mentees(
    bookings: pd.DataFrame,
    mentee_names: pd.DataFrame,
    warnings: pd.DataFrame,
    reprobations: pd.DataFrame,
    scope: analytics.Scope,
    now: datetime,
    limit: int,
) -> Signature:
    """The mentees with the most counted no-shows (then by name and id), as the Analytics page lists them."""
    held = _held(bookings, scope.since, scope.until, now)
    f = _flags(held)
    f["mentee_id"] = held["mentee_id"]
    table = f.groupby("mentee_id").sum()
    table["warnings"] = warnings.groupby("mentee_id").size().reindex(table.index, fill_value=0)
    table["reprobated"] = table.index.isin(reprobations["mentee_id"])
    table = table.join(mentee_names.set_index("id")).reset_index()
    top = table.sort_values(["counted", "name", "mentee_id"], ascending=[False, True, True]).head(limit)
    return (len(top), int(top["counted"].sum()), int(top["warnings"].sum()), int(top["reprobated"].sum()))


def weeks(bookings: pd.DataFrame, scope: analytics.Scope, now: datetime) -> Signature:
    held = _held(bookings, scope.since, scope.until, now)
    f = _flags(held)
    start = held["start_time"].dt.normalize()
    f["week"] = start - pd.to_timedelta(start.dt.day_of_week, unit="D")
    table = f.groupby("week").sum()
    return (len(table), int(table["counted"].sum()), int(table["system"].sum()))


def backlog(bookings: pd.DataFrame, scope: analytics.Scope, now: datetime) -> Signature:
    held = _held(bookings, scope.since, scope.until, now)
    pending = held[held["attended"].isna()]
    age = _naive(now) - pending["end_time"]
    counts = []
    for _, low, high in analytics.BACKLOG_BUCKETS:
        inside = age >= low if high is None else (age >= low) & (age < high)
        counts.append(int(inside.sum()))
    by_mentor = pending.groupby("mentor_id").size()
    return (len(pending), tuple(counts), len(by_mentor))


def time_to_mark(bookings: pd.DataFrame, scope: analytics.Scope, now: datetime) -> Signature:
    hours = _hours_to_mark(_held(bookings, scope.since, scope.until, now))
    counts = []
    for _, low, high in analytics.TIME_TO_MARK_BUCKETS:
        inside = pd.Series(True, index=hours.index)
        if low is not None:
            inside &= hours >= low
        if high is not None:
            inside &= hours < high
        counts.append(int(inside.sum()))
    median = _estimated_median(hours)
    return (len(hours), tuple(counts), None if median is None else round(median, 3))


# -- the same signatures, of the database's answers -----------------------------------------------------------


def summary_of(answer: analytics.Summary) -> Signature:
    out: list[int] = []
    for p in (answer.current, answer.previous):
        out += [p.sessions, p.sessions_marked, p.sessions_marked_by_person, p.no_shows_marked_by_person]
        out += [p.system_no_shows, p.unattributed_no_shows, p.pending]
    return tuple(out)


def mentors_of(answer: tuple[analytics.MentorRow, ...]) -> Signature:
    medians = sum(r.median_hours_to_mark for r in answer if r.median_hours_to_mark is not None)
    return (len(answer), sum(r.no_shows for r in answer), sum(r.pending for r in answer), round(medians, 3))


def mentees_of(answer: tuple[analytics.MenteeRow, ...]) -> Signature:
    return (
        len(answer),
        sum(r.no_shows for r in answer),
        sum(r.warnings for r in answer),
        sum(r.reprobated for r in answer),
    )


def weeks_of(answer: tuple[analytics.WeekRow, ...]) -> Signature:
    held = [w for w in answer if w.sessions]
    return (len(held), sum(w.no_shows_marked_by_person for w in held), sum(w.marks_system for w in held))


def backlog_of(answer: analytics.Backlog) -> Signature:
    return (answer.total, tuple(answer.by_age.values()), len(answer.by_mentor))


def time_to_mark_of(answer: analytics.TimeToMark) -> Signature:
    median = None if answer.median_hours is None else round(answer.median_hours, 3)
    return (answer.marks, tuple(answer.by_bucket.values()), median)
