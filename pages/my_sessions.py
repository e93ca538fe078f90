"""Mentor: the sessions waiting for my decision (attended or no-show), what I marked lately, what is coming."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st
from sqlalchemy.orm import Session

from app import state, ui
from core.attendance import MarkResult, mark_attended, mark_no_show, preview_no_show, reset_attendance
from core.audit import Actor
from core.errors import DomainError
from core.models import Role
from core.queries import BookingRow, mentor_summary, pending_bookings, recently_marked, upcoming_bookings

PENDING_SHOWN = 200  # the oldest first; the metric above says how many there are in all

Handler = Callable[..., MarkResult]

user = ui.require_role(Role.MENTOR)
me = ui.require_actor(user)
assert me.mentor_id is not None  # actor_for_user refuses a mentor user linked to no mentor
st.title("My sessions")
ui.show_flash()

now = ui.now()
with ui.reading() as session:
    summary = mentor_summary(session, mentor_id=me.mentor_id, now=now)
    pending = pending_bookings(session, now=now, mentor_id=me.mentor_id, limit=PENDING_SHOWN)
    marked = recently_marked(session, mentor_id=me.mentor_id, now=now)
    upcoming = upcoming_bookings(session, mentor_id=me.mentor_id, now=now)

left, middle, right = st.columns(3)
left.metric("Pending sessions", summary.pending_count)
middle.metric("Oldest pending", ui.age(summary.oldest_pending_age) if summary.oldest_pending_age else "none")
right.metric("Marked this week", summary.marked_this_week)


def session_label(row: BookingRow) -> str:
    return f"{row.mentee}'s session of {ui.when(row.start_time)}"


def describe(label: str, done: str) -> Callable[[MarkResult], str]:
    def text(result: MarkResult) -> str:
        c = result.consequences.counts()
        effects = [
            f"{c[key]} {noun}{'s' if c[key] != 1 else ''} {verb}"
            for key, noun, verb in (
                ("warnings_issued", "warning", "issued"),
                ("reprobations_issued", "reprobation", "issued"),
                ("bookings_cancelled", "future session", "cancelled"),
                ("warnings_revoked", "warning", "withdrawn"),
                ("reprobations_lifted", "reprobation", "lifted"),
                ("bookings_restored", "session", "restored"),
            )
            if c[key]
        ]
        return f"{label}: {done}." + (f" {', '.join(effects).capitalize()}." if effects else "")

    return text


def run(handler: Handler, booking_id: int, label: str, done: str) -> None:
    def action(session: Session, actor: Actor, now: datetime) -> MarkResult:
        return handler(session, booking_id, actor=actor, now=now, policy=ui.policy())

    ui.act(action, describe(label, done))
    st.session_state.pop(state.MENTOR_CONFIRM_NO_SHOW, None)
    ui.bump(state.MENTOR_VERSION)  # the lists change: start them without a selection


def ask_no_show(booking_id: int) -> None:
    st.session_state[state.MENTOR_CONFIRM_NO_SHOW] = booking_id


def cancel_no_show() -> None:
    st.session_state.pop(state.MENTOR_CONFIRM_NO_SHOW, None)


version = int(st.session_state.get(state.MENTOR_VERSION, 0))

# --- pending ---------------------------------------------------------------------------------------------------
st.subheader("Waiting for your decision")
if not pending:
    st.info("No session is waiting for your decision.")
    st.session_state.pop(state.MENTOR_CONFIRM_NO_SHOW, None)
else:
    if summary.pending_count > len(pending):
        st.caption(f"The oldest {len(pending)} of {summary.pending_count}.")
    table = ui.frame_of(
        pending,
        {
            "Mentee": lambda r: r.mentee,
            "Session": lambda r: ui.when(r.start_time),
            "Waiting": lambda r: ui.age(now - r.end_time),
            "Reverted": lambda r: r.reverted,
            "Booking": lambda r: r.booking_id,
        },
    )
    pending_key = state.versioned(state.MENTOR_PENDING_TABLE, version)
    ui.table(
        table,
        key=pending_key,
        selectable=True,
        column_config={
            "Reverted": st.column_config.CheckboxColumn(
                help="Sent back to pending by an admin's revert of an automated absence: it needs your decision."
            )
        },
    )
    chosen_at = ui.selected_row(pending_key)
    chosen = pending[chosen_at] if chosen_at is not None and chosen_at < len(pending) else None
    confirming = st.session_state.get(state.MENTOR_CONFIRM_NO_SHOW)
    if confirming is not None and (chosen is None or chosen.booking_id != confirming):
        st.session_state.pop(state.MENTOR_CONFIRM_NO_SHOW, None)
        confirming = None
    if chosen is None:
        st.caption("Choose a session in the table, then mark it.")
    else:
        label = session_label(chosen)
        st.text(f"Chosen: {label} (booking {chosen.booking_id})")
        if confirming is None:
            a, b, _ = st.columns([1, 1, 4])
            a.button(
                "Attended",
                key=state.MENTOR_ATTENDED_BUTTON,
                icon=":material/check:",
                on_click=run,
                args=(mark_attended, chosen.booking_id, label, "marked attended"),
            )
            b.button(
                "No-show",
                key=state.MENTOR_NO_SHOW_BUTTON,
                icon=":material/person_off:",
                on_click=ask_no_show,
                args=(chosen.booking_id,),
            )
        else:
            try:
                with ui.reading() as session:
                    preview = preview_no_show(session, chosen.booking_id, actor=me, now=now, policy=ui.policy())
            except DomainError as error:
                st.error(ui.md_escape(str(error)))
                st.button("Back", key=state.MENTOR_CANCEL_BUTTON, on_click=cancel_no_show)
            else:
                st.warning(
                    f"Marking this session no-show means {ui.md_escape(preview.message)}. Confirm?",
                    icon=":material/warning:",
                )
                a, b, _ = st.columns([1, 1, 4])
                a.button(
                    "Confirm no-show",
                    key=state.MENTOR_CONFIRM_BUTTON,
                    type="primary",
                    on_click=run,
                    args=(mark_no_show, chosen.booking_id, label, "marked no-show"),
                )
                b.button("Cancel", key=state.MENTOR_CANCEL_BUTTON, on_click=cancel_no_show)

# --- recently marked -------------------------------------------------------------------------------------------
st.subheader("Recently marked")
if not marked:
    st.info("You have not marked any session yet.")
else:
    table = ui.frame_of(
        marked,
        {
            "Mentee": lambda r: r.mentee,
            "Session": lambda r: ui.when(r.start_time),
            "Mark": lambda r: "attended" if r.attended else "no-show",
            "Marked by": lambda r: (
                f"{r.attendance_marked_by.value} {r.attendance_marked_by_name or ''}".strip()
                if r.attendance_marked_by
                else ""
            ),
            "Marked at": lambda r: ui.when(r.attendance_marked_at),
            "Booking": lambda r: r.booking_id,
        },
    )
    marked_key = state.versioned(state.MENTOR_MARKED_TABLE, version)
    ui.table(table, key=marked_key, selectable=True)
    chosen_at = ui.selected_row(marked_key)
    if chosen_at is None or chosen_at >= len(marked):
        st.caption("Choose a session to reset its mark (it goes back to pending, and what rested on it is withdrawn).")
    else:
        row = marked[chosen_at]
        st.button(
            f"Reset booking {row.booking_id} to pending",
            key=state.MENTOR_RESET_BUTTON,
            icon=":material/undo:",
            on_click=run,
            args=(reset_attendance, row.booking_id, session_label(row), "reset to pending"),
        )

# --- upcoming --------------------------------------------------------------------------------------------------
st.subheader("Upcoming")
if not upcoming:
    st.info("No upcoming session.")
else:
    table = ui.frame_of(
        upcoming,
        {
            "Mentee": lambda r: r.mentee,
            "Session": lambda r: ui.when(r.start_time),
            "Ends": lambda r: ui.when(r.end_time),
            "Booking": lambda r: r.booking_id,
        },
    )
    ui.table(table)
