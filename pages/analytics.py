"""Analytics: the real no-show rate beside what the automated marks claimed, the backlog, per mentor and mentee.

Admins see every mentor (or one they choose); a mentor sees their own sessions only, whatever is asked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from app import state, ui
from core.analytics import (
    BACKLOG_BUCKETS,
    TIME_TO_MARK_BUCKETS,
    Analytics,
    Scope,
    compute_analytics,
    default_days,
    scope_for_actor,
    scope_for_days,
    tabulate_mentees,
)
from core.audit_views import mentor_choices
from core.errors import DomainError
from core.models import ActorKind, Role

MENTEES_SHOWN = 500  # the table shows the first ones by the chosen order; the CSV holds them all

MENTOR_COLUMNS = {
    "mentor": "Mentor",
    "sessions": "Sessions",
    "marked": "Marked by a person",
    "attended": "Attended",
    "no_shows": "No-shows",
    "rate": "No-show rate",
    "automated_marks": "Automated marks",
    "pending": "Pending",
    "median_hours_to_mark": "Median hours to mark",
}
MENTEE_TABLE_COLUMNS = {
    "mentee": "Mentee",
    "sessions": "Sessions",
    "marked": "Marked by a person",
    "no_shows": "No-shows",
    "rate": "No-show rate",
    "pending": "Pending",
    "warnings": "Active warnings",
    "reprobated": "Reprobated",
}
BACKLOG_COLUMNS = {"mentor": "Mentor", "pending": "Pending", "oldest_end_time": "Oldest session ended"}
PERCENT = {"No-show rate": st.column_config.NumberColumn(format="percent")}
MEDIAN_HELP = (
    "Estimated from the marks counted by how long they took (bins such as 12-18 hours or 1-2 days), "
    "so it lies within the bin that holds the exact median."
)
HOURS = {"Median hours to mark": st.column_config.NumberColumn(format="%.1f", help=MEDIAN_HELP)}
RATE_COLORS = alt.Scale(domain=["Counted", "Automated (legacy claim)"], range=["#1f77b4", "#d62728"])
ATTRIBUTION_COLORS = alt.Scale(
    domain=["Mentor", "Admin", "System", "No attribution"], range=["#1f77b4", "#9ecae1", "#d62728", "#ff9896"]
)
COUNTED_HELP = (
    "No-shows marked by a person (a mentor or an admin) over the sessions a person marked. "
    "Pending and cancelled sessions are left out. The change is against the previous period of equal length."
)
AUTOMATED_HELP = (
    "What the automated job claimed: its System-stamped and unattributed absences counted as real, "
    "over every marked session."
)

user = ui.signed_in()
if user is None or user.role not in (Role.ADMIN, Role.MENTOR):
    st.error("Please sign in first.")
    st.stop()
actor = ui.require_actor(user)
st.title("Analytics")


def pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1%}"


def points(current: float | None, previous: float | None) -> str | None:
    """The change of a rate in percentage points, or None when either period has no rate."""
    if current is None or previous is None:
        return None
    return f"{(current - previous) * 100:+.1f} pp"


def hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} h"


def choose_scope() -> Scope:
    """The range and (for an admin) the mentor chosen above the figures, held to what this user may see."""
    left, right = st.columns(2)
    picked = left.date_input(
        "Sessions starting", value=default_days(ui.now().date()), key=state.ANALYTICS_RANGE, format="YYYY-MM-DD"
    )
    days: tuple[date, ...] = tuple(picked) if isinstance(picked, tuple | list) else (picked,)
    if len(days) != 2:
        st.info("Choose the last day of the range too.")
        st.stop()
    mentor_id: int | None = None
    if actor.kind is ActorKind.ADMIN:
        with ui.reading() as session:
            names = {c.id: c.name for c in mentor_choices(session)}
        mentor_id = right.selectbox(
            "Mentor",
            [None, *names],
            format_func=lambda i: "All mentors" if i is None else names[i],
            key=state.ANALYTICS_MENTOR,
        )
    else:
        right.caption("Your own sessions only.")
    try:
        return scope_for_actor(actor, scope_for_days(days[0], days[1], mentor_id))
    except DomainError as error:
        st.error(ui.md_escape(str(error)))
        st.stop()


def kpis(analytics: Analytics) -> None:
    current, previous = analytics.summary.current, analytics.summary.previous
    columns = st.columns(5)
    columns[0].metric(
        "Counted no-show rate",
        pct(current.counted_no_show_rate),
        points(current.counted_no_show_rate, previous.counted_no_show_rate),
        delta_color="inverse",
        help=COUNTED_HELP,
    )
    columns[1].metric(
        "Automated rate",
        pct(current.automated_no_show_rate),
        points(current.automated_no_show_rate, previous.automated_no_show_rate),
        delta_color="inverse",
        help=AUTOMATED_HELP,
    )
    columns[2].metric(
        "Sessions marked by a person",
        current.sessions_marked_by_person,
        current.sessions_marked_by_person - previous.sessions_marked_by_person,
    )
    columns[3].metric("Pending", current.pending, current.pending - previous.pending, delta_color="inverse")
    columns[4].metric("Median time to mark", hours(analytics.time_to_mark.median_hours), help=MEDIAN_HELP)
    st.caption(
        f"Previous period: {previous.since:%Y-%m-%d} to {previous.until - pd.Timedelta(days=1):%Y-%m-%d}, "
        f"counted rate {pct(previous.counted_no_show_rate)}, automated {pct(previous.automated_no_show_rate)}."
    )


def weekly_charts(analytics: Analytics) -> None:
    weeks = ui.frame(list(analytics.weekly))
    if weeks.empty:
        return
    weeks["week"] = pd.to_datetime(weeks["week"])
    rates = weeks.melt(
        id_vars="week",
        value_vars=["counted_no_show_rate", "automated_no_show_rate"],
        var_name="rate",
        value_name="value",
    ).replace({"rate": {"counted_no_show_rate": "Counted", "automated_no_show_rate": "Automated (legacy claim)"}})
    marks = weeks.melt(
        id_vars="week",
        value_vars=["marks_mentor", "marks_admin", "marks_system", "marks_unattributed"],
        var_name="attribution",
        value_name="marks",
    ).replace(
        {
            "attribution": {
                "marks_mentor": "Mentor",
                "marks_admin": "Admin",
                "marks_system": "System",
                "marks_unattributed": "No attribution",
            }
        }
    )
    left, right = st.columns(2)
    left.altair_chart(
        alt.Chart(rates, title="Weekly no-show rate")
        .mark_line(point=True)
        .encode(
            x=alt.X("week:T", title="Week (Monday)"),
            y=alt.Y("value:Q", title="No-show rate", axis=alt.Axis(format="%")),
            color=alt.Color("rate:N", title=None, scale=RATE_COLORS),
            tooltip=[alt.Tooltip("week:T"), "rate:N", alt.Tooltip("value:Q", format=".1%")],
        ),
    )
    right.altair_chart(
        alt.Chart(marks, title="Marks by attribution")
        .mark_bar()
        .encode(
            # One band per week (a time axis would draw hairline bars).
            x=alt.X("yearmonthdate(week):O", title="Week (Monday)"),
            y=alt.Y("marks:Q", title="Marks"),
            color=alt.Color("attribution:N", title=None, scale=ATTRIBUTION_COLORS),
            tooltip=[alt.Tooltip("week:T"), "attribution:N", "marks:Q"],
        ),
    )


def bucket_chart(counts: dict[str, int], order: list[str], title: str, axis: str) -> alt.Chart:
    df = pd.DataFrame({"bucket": list(counts), "count": list(counts.values())})
    chart: alt.Chart = (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(x=alt.X("bucket:N", sort=order, title=axis), y=alt.Y("count:Q", title="Sessions"), tooltip=["count:Q"])
    )
    return chart


def backlog(analytics: Analytics) -> None:
    st.subheader(f"Pending backlog: {analytics.backlog.total}")
    left, right = st.columns(2)
    left.altair_chart(
        bucket_chart(
            analytics.backlog.by_age,
            [label for label, _, _ in BACKLOG_BUCKETS],
            "Pending sessions by age",
            "Time since the session ended",
        )
    )
    right.altair_chart(
        bucket_chart(
            analytics.time_to_mark.by_bucket,
            [label for label, _, _ in TIME_TO_MARK_BUCKETS],
            "Time to mark (marks by a person)",
            "From the session's end to the mark",
        )
    )
    rows = ui.frame(list(analytics.backlog.by_mentor))
    if rows.empty:
        return
    ages = pd.DataFrame.from_records(list(rows["by_age"]))
    table = pd.concat([rows[list(BACKLOG_COLUMNS)].rename(columns=BACKLOG_COLUMNS), ages], axis=1)
    ui.table(table, key=state.ANALYTICS_BACKLOG_TABLE)
    download(lambda: ui.csv_bytes(table), "analytics_backlog", "Download backlog CSV", False)


def download(build: Callable[[], bytes], name: str, label: str, disabled: bool) -> None:
    """A CSV download whose data is built only when the user asks for it."""
    st.download_button(
        label,
        build,
        file_name=f"{name}.csv",
        mime="text/csv",
        key=state.ANALYTICS_CSV_BUTTON + name,
        icon=":material/download:",
        # A download changes nothing: no rerun, so a second click never races a run that replaces this button.
        on_click="ignore",
        disabled=disabled,
    )


def mentor_table(analytics: Analytics) -> None:
    st.subheader("Per mentor")
    df = ui.frame(list(analytics.by_mentor), MENTOR_COLUMNS)
    ui.table(df, key=state.ANALYTICS_MENTOR_TABLE, column_config=PERCENT | HOURS)
    download(lambda: ui.csv_bytes(df), "analytics_mentors", "Download per-mentor CSV", df.empty)


def mentee_table(analytics: Analytics, scope: Scope, sort: str, descending: bool) -> None:
    df = ui.frame(list(analytics.by_mentee), MENTEE_TABLE_COLUMNS)
    if len(df) == MENTEES_SHOWN:
        st.caption(f"The first {MENTEES_SHOWN} mentees in this order; the CSV holds every one.")
    ui.table(df, key=state.ANALYTICS_MENTEE_TABLE, column_config=PERCENT)

    def build() -> bytes:
        # Deferred: the whole table is read only when the user asks for the file.
        with ui.reading() as session:
            rows = tabulate_mentees(session, scope, now=moment, sort_by=sort, descending=descending)
        return ui.csv_bytes(ui.frame(list(rows), MENTEE_TABLE_COLUMNS))

    download(build, "analytics_mentees", "Download per-mentee CSV", df.empty)


scope = choose_scope()
# Drawn in this order; the mentee table's order is chosen in its own section, before the figures are read.
figures, charts, backlog_section, mentors_section, mentees_section = (st.container() for _ in range(5))
with mentees_section:
    st.subheader("Per mentee")
    sort_left, sort_right = st.columns([3, 1])
    mentee_sort = sort_left.selectbox(
        "Order mentees by",
        list(MENTEE_TABLE_COLUMNS),
        index=list(MENTEE_TABLE_COLUMNS).index("no_shows"),
        format_func=lambda c: MENTEE_TABLE_COLUMNS[c],
        key=state.ANALYTICS_MENTEE_SORT,
    )
    mentee_descending = sort_right.toggle("Descending", value=True, key=state.ANALYTICS_MENTEE_DESCENDING)
moment = ui.now()
try:
    with ui.reading() as session:
        result = compute_analytics(
            session,
            scope,
            now=moment,
            mentee_sort=mentee_sort,
            mentee_descending=mentee_descending,
            mentee_limit=MENTEES_SHOWN,
        )
except DomainError as error:
    st.error(ui.md_escape(str(error)))
    st.stop()

with figures:
    kpis(result)
with charts:
    weekly_charts(result)
with backlog_section:
    backlog(result)
with mentors_section:
    mentor_table(result)
with mentees_section:
    mentee_table(result, scope, mentee_sort, mentee_descending)
