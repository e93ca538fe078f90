"""`mentorship stats`: the real no-show rates, what the automated marks claimed, and the pending backlog."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any

import typer

from app.cli import common
from app.cli.common import DbOption, JsonOption, emit_json, open_db, refusals
from core.analytics import (
    Analytics,
    PeriodFigures,
    compute_analytics,
    default_days,
    find_mentor_id,
    scope_for_days,
)

TEXT_MENTEES = 20


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date: use YYYY-MM-DD", param_hint=option) from None


def _period(figures: PeriodFigures) -> dict[str, Any]:
    return {
        "since": figures.since.date(),
        "until": (figures.until - timedelta(days=1)).date(),
        "counted_no_show_rate": figures.counted_no_show_rate,
        "automated_no_show_rate": figures.automated_no_show_rate,
        "sessions_marked_by_person": figures.sessions_marked_by_person,
        "no_shows_marked_by_person": figures.no_shows_marked_by_person,
        "pending": figures.pending,
        "sessions": figures.sessions,
        "sessions_marked": figures.sessions_marked,
        "system_no_shows": figures.system_no_shows,
        "unattributed_no_shows": figures.unattributed_no_shows,
    }


def stats_document(analytics: Analytics, mentor: str | None) -> dict[str, Any]:
    """The JSON of `stats --json`: the scope's figures at the top level, the previous period's under `previous`."""
    return {
        **_period(analytics.summary.current),
        "mentor": mentor,
        "previous": _period(analytics.summary.previous),
        "by_mentor": [asdict(row) for row in analytics.by_mentor],
        "by_mentee": [asdict(row) for row in analytics.by_mentee],
        "weekly": [asdict(row) for row in analytics.weekly],
        "backlog": analytics.backlog.by_age,
        "backlog_by_mentor": [asdict(row) for row in analytics.backlog.by_mentor],
        "time_to_mark": asdict(analytics.time_to_mark),
    }


def _days(figures: PeriodFigures) -> str:
    return f"{figures.since.date()} .. {(figures.until - timedelta(days=1)).date()}"


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


def _hours(hours: float | None) -> str:
    return "—" if hours is None else f"{hours:.1f} h"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [headers, *([str(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    )


def _text(analytics: Analytics, mentor: str | None) -> str:
    current, previous = analytics.summary.current, analytics.summary.previous
    if mentor is None:
        who = "all mentors"
    else:
        who = f"{analytics.by_mentor[0].mentor}, user {mentor}" if analytics.by_mentor else f"user {mentor}"
    mentees = sorted(analytics.by_mentee, key=lambda r: (-r.no_shows, r.mentee))[:TEXT_MENTEES]
    more = len(analytics.by_mentee) - len(mentees)
    return "\n".join(
        [
            f"Sessions starting {_days(current)} ({who}); previous period {_days(previous)}",
            "",
            f"Counted no-show rate  {_pct(current.counted_no_show_rate):>6}  ({current.no_shows_marked_by_person} "
            f"no-shows of {current.sessions_marked_by_person} sessions marked by a person; "
            f"previous {_pct(previous.counted_no_show_rate)})",
            f"Automated rate        {_pct(current.automated_no_show_rate):>6}  (what the automated marks claimed, "
            f"{current.system_no_shows} System and {current.unattributed_no_shows} unattributed absences counted; "
            f"previous {_pct(previous.automated_no_show_rate)})",
            f"Pending               {current.pending:>6}  (previous {previous.pending})",
            f"Median time to mark   {_hours(analytics.time_to_mark.median_hours):>6}  (estimated from the marks by "
            "time bin, as are the mentors' medians below)",
            "",
            "Backlog by age:  " + ", ".join(f"{label} {n}" for label, n in analytics.backlog.by_age.items()),
            "Time to mark:    " + ", ".join(f"{label} {n}" for label, n in analytics.time_to_mark.by_bucket.items()),
            "",
            "By mentor",
            _table(
                ["mentor", "sessions", "marked", "attended", "no-shows", "rate", "automated", "pending", "median"],
                [
                    [
                        r.mentor,
                        r.sessions,
                        r.marked,
                        r.attended,
                        r.no_shows,
                        _pct(r.rate),
                        r.automated_marks,
                        r.pending,
                        _hours(r.median_hours_to_mark),
                    ]
                    for r in analytics.by_mentor
                ],
            ),
            "",
            f"By mentee, most no-shows first{f' ({more} more in --json)' if more > 0 else ''}",
            _table(
                ["mentee", "sessions", "marked", "no-shows", "rate", "pending", "warnings", "reprobated"],
                [
                    [
                        r.mentee,
                        r.sessions,
                        r.marked,
                        r.no_shows,
                        _pct(r.rate),
                        r.pending,
                        r.warnings,
                        "yes" if r.reprobated else "no",
                    ]
                    for r in mentees
                ],
            ),
            "",
            "Weekly, by the Monday of the sessions' week (marks by Mentor, Admin, System, no attribution)",
            _table(
                ["week", "sessions", "counted", "automated", "Mentor", "Admin", "System", "none", "pending"],
                [
                    [
                        w.week,
                        w.sessions,
                        _pct(w.counted_no_show_rate),
                        _pct(w.automated_no_show_rate),
                        w.marks_mentor,
                        w.marks_admin,
                        w.marks_system,
                        w.marks_unattributed,
                        w.pending,
                    ]
                    for w in analytics.weekly
                ],
            ),
        ]
    )


def stats(
    since: Annotated[
        str | None, typer.Option("--since", help="First day (YYYY-MM-DD, UTC) [default: 89 days before --until].")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last day, included [default: today].")] = None,
    mentor: Annotated[
        str | None, typer.Option("--mentor", help="Only this mentor user's sessions (a username).")
    ] = None,
    json_output: JsonOption = False,
    db: DbOption = None,
) -> None:
    """No-show rates (counted, and what the automated marks claimed), per mentor and mentee, weekly, and the
    pending backlog, over sessions starting from --since through --until."""
    moment = common.now()
    last_day = _day(until, "--until") or moment.date()
    first_day = _day(since, "--since") or default_days(last_day)[0]
    factory = open_db(db, read_only=True)
    with refusals(), factory() as session:
        mentor_id = find_mentor_id(session, mentor) if mentor is not None else None
        analytics = compute_analytics(session, scope_for_days(first_day, last_day, mentor_id), now=moment)
    if json_output:
        emit_json(stats_document(analytics, mentor))
    else:
        typer.echo(_text(analytics, mentor))
