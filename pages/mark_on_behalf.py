"""Admin: mark or reset a booking's attendance on behalf of its mentor, with a reason (attributed Admin)."""

from __future__ import annotations

from datetime import datetime

import streamlit as st
from sqlalchemy.orm import Session

from app import state, ui
from core import audit_views as views
from core.attendance import MarkResult, mark_attended, mark_no_show, preview_no_show, reset_attendance
from core.audit import Actor
from core.errors import DomainError
from core.models import Role

ACTIONS = {"attended": "Attended", "no-show": "No-show", "reset": "Reset to pending"}
HANDLERS = {"attended": mark_attended, "no-show": mark_no_show, "reset": reset_attendance}
DONE = {"attended": "marked attended", "no-show": "marked no-show", "reset": "reset to pending"}

user = ui.require_role(Role.ADMIN)
st.title("Mark on behalf of a mentor")
st.write(
    "Mark a past session attended or no-show, or reset its mark, as an admin acting for its mentor. "
    "The reason is recorded in the audit log with your name."
)
ui.show_flash()


def review() -> None:
    booking_id = st.session_state.get(state.BEHALF_BOOKING)
    reason = (st.session_state.get(state.BEHALF_REASON) or "").strip()
    if not booking_id:
        ui.flash("error", "Enter the booking id.")
    elif not reason:
        ui.flash("error", "Give a reason: it is recorded with the change.")
    else:
        st.session_state[state.BEHALF_CONFIRM] = {
            "booking_id": int(booking_id),
            "action": st.session_state.get(state.BEHALF_ACTION, "attended"),
            "reason": reason,
        }


def cancel() -> None:
    st.session_state.pop(state.BEHALF_CONFIRM, None)


def confirm(booking_id: int, action: str, reason: str) -> None:
    st.session_state.pop(state.BEHALF_CONFIRM, None)
    handler = HANDLERS[action]

    def run(session: Session, actor: Actor, now: datetime) -> MarkResult:
        return handler(session, booking_id, actor=actor, now=now, policy=ui.policy(), reason=reason)

    def describe(result: MarkResult) -> str:
        counts = {k.replace("_", " "): v for k, v in result.consequences.counts().items() if v}
        effects = "; ".join(f"{name}: {n}" for name, n in counts.items())
        return f"Booking {booking_id} {DONE[action]}" + (f" ({effects})" if effects else "") + "."

    ui.act(run, describe)


with st.form(state.BEHALF_FORM, border=True):
    st.number_input("Booking id", min_value=1, step=1, value=None, key=state.BEHALF_BOOKING)
    st.radio("Action", list(ACTIONS), format_func=ACTIONS.__getitem__, horizontal=True, key=state.BEHALF_ACTION)
    st.text_input("Reason (required)", key=state.BEHALF_REASON, max_chars=500)
    st.form_submit_button("Review", on_click=review, type="primary")

pending = st.session_state.get(state.BEHALF_CONFIRM)
if pending:
    booking_id, action, reason = pending["booking_id"], pending["action"], pending["reason"]
    admin = ui.require_actor(user)
    try:
        with ui.reading() as session:
            booking = views.booking_detail(session, booking_id)
            consequence = (
                preview_no_show(session, booking_id, actor=admin, now=ui.now(), policy=ui.policy()).message
                if action == "no-show"
                else None
            )
    except DomainError as error:
        st.error(ui.md_escape(str(error)))
        st.button("Dismiss", on_click=cancel, key=state.BEHALF_CANCEL_BUTTON)
        st.stop()
    st.subheader(f"{ACTIONS[action]}: booking {booking_id}")
    mark = {None: "pending", True: "attended", False: "no-show"}[booking.attended]
    ui.table(
        ui.frame(
            [booking],
            {
                "booking_id": "Booking",
                "mentor": "Mentor",
                "mentee": "Mentee",
                "start_time": "Session",
                "status": "Status",
                "marked_by": "Marked by",
                "marked_by_name": "Marked by (name)",
                "marked_at": "Marked at",
            },
        ).assign(Attendance=mark)
    )
    if consequence:
        st.warning(f"Consequence: {ui.md_escape(consequence)}", icon=":material/warning:")
    st.text(f"Reason: {reason}")
    left, right = st.columns(2)
    left.button(
        f"Confirm: {ACTIONS[action].lower()}",
        key=state.BEHALF_CONFIRM_BUTTON,
        type="primary",
        on_click=confirm,
        args=(booking_id, action, reason),
    )
    right.button("Cancel", key=state.BEHALF_CANCEL_BUTTON, on_click=cancel)
