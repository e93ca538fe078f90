"""Admin: every warning, reprobation and cancellation with its attribution and status; a reprobation's chain."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from app import state, ui
from core import audit_views as views
from core.audit_views import AuditFilter, DisciplineRow, Page
from core.errors import DomainError
from core.models import Role

PAGE_SIZE = 50
ATTRIBUTION_LABELS = {value: value for value in views.ATTRIBUTIONS} | {views.UNATTRIBUTED: "(no attribution)"}

WARNING_COLUMNS = {
    "id": "Warning",
    "mentee": "Mentee",
    "mentor": "Mentor",
    "cause_booking_id": "Absence (booking)",
    "session_start": "Absence session",
    "attributed_kind": "Issued by",
    "attributed_name": "Issued by (name)",
    "at": "Issued at",
    "status": "Status",
    "status_at": "Status since",
    "status_by_name": "Status by",
}
REPROBATION_COLUMNS = {
    "id": "Reprobation",
    "mentee": "Mentee",
    "mentor": "Mentor",
    "cause_booking_id": "Absence (booking)",
    "session_start": "Absence session",
    "attributed_kind": "Issued by",
    "attributed_name": "Issued by (name)",
    "at": "Issued at",
    "sessions_cancelled": "Sessions cancelled",
    "status": "Status",
    "status_at": "Status since",
    "status_by_name": "Status by",
}
CANCELLATION_COLUMNS = {
    "id": "Booking",
    "mentee": "Mentee",
    "mentor": "Mentor",
    "session_start": "Session",
    "attributed_kind": "Cancelled by",
    "attributed_name": "Cancelled by (name)",
    "at": "Cancelled at",
    "cause_reprobation_id": "Cause (reprobation)",
    "status": "Status",
    "status_at": "Restored at",
    "status_by_name": "Restored by",
}
CHAIN_BOOKING_COLUMNS = {
    "booking_id": "Booking",
    "mentor": "Mentor",
    "start_time": "Session",
    "status": "Status",
    "attended": "Attendance",
    "marked_by": "Marked by",
    "marked_by_name": "Marked by (name)",
    "marked_at": "Marked at",
    "reverted_at": "Reverted at",
    "cancelled_by": "Cancelled by",
    "cancelled_at": "Cancelled at",
    "restored_by": "Restored by",
    "restored_at": "Restored at",
}

Lister = Callable[..., Page[DisciplineRow]]

ui.require_role(Role.ADMIN)
st.title("Audit")
st.write(
    "Every warning, reprobation and cancellation: who caused it (the kind of actor and its name), when, "
    "its cause, and whether it still stands. Choose a reprobation to see its chain."
)
ui.show_flash()

with ui.reading() as session:
    mentors = {c.id: c.name for c in views.mentor_choices(session)}
    mentees = {c.id: c.name for c in views.mentee_choices(session)}

with st.container(border=True):
    top = st.columns([2, 1, 1])
    attribution = top[0].multiselect(
        "Attribution",
        list(views.ATTRIBUTIONS),
        format_func=ATTRIBUTION_LABELS.__getitem__,
        key=state.AUDIT_ATTRIBUTION,
        placeholder="Any",
    )
    mentor_id = top[1].selectbox(
        "Mentor", [None, *mentors], format_func=lambda i: "Any" if i is None else mentors[i], key=state.AUDIT_MENTOR
    )
    mentee_id = top[2].selectbox(
        "Mentee", [None, *mentees], format_func=lambda i: "Any" if i is None else mentees[i], key=state.AUDIT_MENTEE
    )
    since, until = ui.date_window(
        state.AUDIT_SINCE, state.AUDIT_UNTIL, since_label="Issued or cancelled from", until_label="until (inclusive)"
    )

try:
    filters = AuditFilter(frozenset(attribution), since, until, mentor_id, mentee_id)
except DomainError as error:
    st.error(ui.md_escape(str(error)))
    st.stop()


def page_number(name: str, total: int) -> int:
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if pages == 1:
        return 0
    # Keyed by the page count: a narrower filter starts again at page 1 instead of an out-of-range page.
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{state.AUDIT_PAGE}_{name}_{pages}")
    return (int(number) - 1) * PAGE_SIZE


def export_button(name: str, lister: Lister, columns: dict[str, str], total: int) -> None:
    factory: sessionmaker[Session] = ui.session_factory()

    def build() -> bytes:
        # Runs when the button is clicked: every row that matches the filters, not only this page.
        with factory() as s:
            return ui.csv_bytes(ui.frame(lister(s, filters, limit=None).rows, columns))

    st.download_button(
        f"Download all {total} as CSV",
        build,
        file_name=f"{name}.csv",
        mime="text/csv",
        key=state.AUDIT_CSV_BUTTON + name,
        icon=":material/download:",
        # A download changes nothing: no rerun, so a second click never races a run that replaces this button.
        on_click="ignore",
        disabled=total == 0,
    )


def counts() -> dict[str, int]:
    with ui.reading() as s:
        return {
            name: lister(s, filters, limit=1).total
            for name, lister in (
                ("reprobations", views.list_reprobations),
                ("cancellations", views.list_cancellations),
                ("warnings", views.list_warnings),
            )
        }


def show_list(
    name: str, lister: Lister, columns: dict[str, str], total: int, *, selectable: bool = False
) -> list[DisciplineRow]:
    offset = page_number(name, total)
    with ui.reading() as s:
        page = lister(s, filters, offset=offset, limit=PAGE_SIZE)
    if not page.rows:
        st.info(f"No {name} match these filters.")
        return []
    st.caption(f"{offset + 1}–{offset + len(page.rows)} of {page.total}")
    df = ui.frame(page.rows, columns)
    if selectable:
        ui.table(df, key=state.AUDIT_REPROBATION_TABLE, selectable=True)
    else:
        ui.table(df)
    export_button(name, lister, columns, page.total)
    return page.rows


def bookings_table(bookings: list[views.ChainBooking]) -> pd.DataFrame:
    df = ui.frame(bookings, CHAIN_BOOKING_COLUMNS)
    df["Attendance"] = [{None: "pending", True: "attended", False: "no-show"}[b.attended] for b in bookings]
    return df


def show_chain(reprobation_id: int) -> None:
    with ui.reading() as s:
        chain = views.reprobation_chain(s, reprobation_id)
    r = chain.reprobation
    st.subheader(f"Reprobation {r.id}: {ui.md_escape(r.mentee)}")
    st.text(
        f"Issued {ui.when(r.at)} by {r.attributed_kind or 'no one recorded'} "
        f"{r.attributed_name or ''}; status {r.status.value}"
        + (f" since {ui.when(r.status_at)} ({r.status_by_kind} {r.status_by_name})" if r.status_at else "")
    )
    st.markdown("**The absence that triggered it**, and who marked it")
    ui.table(bookings_table([chain.absence]))
    st.markdown(f"**Warnings of this mentee** ({len(chain.warnings)})")
    if chain.warnings:
        ui.table(ui.frame(chain.warnings, WARNING_COLUMNS))
    st.markdown(f"**Sessions it cancelled** ({len(chain.cancelled)})")
    if chain.cancelled:
        ui.table(bookings_table(chain.cancelled))


totals = counts()
tabs = st.tabs(
    [
        f"Reprobations ({totals['reprobations']})",
        f"Cancellations ({totals['cancellations']})",
        f"Warnings ({totals['warnings']})",
    ]
)
with tabs[0]:
    reprobations = show_list(
        "reprobations", views.list_reprobations, REPROBATION_COLUMNS, totals["reprobations"], selectable=True
    )
    chosen = ui.selected_row(state.AUDIT_REPROBATION_TABLE)
    if chosen is not None and chosen < len(reprobations):
        show_chain(reprobations[chosen].id)
    elif reprobations:
        st.caption("Choose a reprobation in the table to see its chain.")
with tabs[1]:
    show_list("cancellations", views.list_cancellations, CANCELLATION_COLUMNS, totals["cancellations"])
with tabs[2]:
    show_list("warnings", views.list_warnings, WARNING_COLUMNS, totals["warnings"])
