"""Admin: Notifications. The outbox: every message with its status, recipient, kind and the action that caused
it; a failed message can be put back in the queue."""

from __future__ import annotations

import streamlit as st

from app import state, ui
from core import notifications as notes
from core.models import NotificationStatus, Role

LIMIT = 500

ui.require_role(Role.ADMIN)
st.title("Notifications")
st.write(
    "Every message the desk has queued: warnings, reprobations and cancellations, their corrections after a "
    "revert, and reminders to mentors. `mentorship notify` sends the queued ones; a failed one can be retried."
)
ui.show_flash()

with ui.reading() as session:
    counts = notes.count_outbox(session)
queued, sent, failed = st.columns(3)
queued.metric("Queued", counts[NotificationStatus.QUEUED])
sent.metric("Sent", counts[NotificationStatus.SENT])
failed.metric("Failed", counts[NotificationStatus.FAILED])

left, right = st.columns(2)
status = left.selectbox(
    "Status",
    [None, *NotificationStatus],
    format_func=lambda s: "Any status" if s is None else s.value,
    key=state.NOTIFY_STATUS,
)
kind = right.selectbox(
    "Kind", [None, *notes.KINDS], format_func=lambda k: "Any kind" if k is None else k, key=state.NOTIFY_KIND
)
with ui.reading() as session:
    entries = notes.list_outbox(session, status=status, kind=kind, limit=LIMIT)
if not entries:
    st.info("No message matches these filters.")
    st.stop()

st.caption(f"{len(entries)} messages, newest first" + (f" (the newest {LIMIT})" if len(entries) == LIMIT else ""))
table = ui.frame(
    entries,
    {
        "id": "Message",
        "recipient_name": "Recipient",
        "recipient_email": "Email",
        "kind": "Kind",
        "subject": "Subject",
        "attempts": "Attempts",
        "last_error": "Last error",
        "action": "Caused by",
        "operation_id": "Operation",
    },
)
table.insert(1, "Status", [e.status.value for e in entries])
table.insert(2, "Queued at", [ui.when(e.created_at) for e in entries])
table.insert(3, "Sent at", [ui.when(e.sent_at) for e in entries])
actors = [f"{e.actor_kind.value} {e.actor_name}" if e.actor_kind else "" for e in entries]
table.insert(list(table.columns).index("Caused by") + 1, "Actor", actors)
version = int(st.session_state.get(state.NOTIFY_VERSION, 0))
table_key = state.versioned(state.NOTIFY_TABLE, version)
st.dataframe(table, hide_index=True, key=table_key, on_select="rerun", selection_mode="single-row")

chosen = ui.selected_row(table_key)
if chosen is None or chosen >= len(entries):
    st.caption("Choose a message in the table to read it (and to retry it, if it failed).")
    st.stop()

entry = entries[chosen]
st.subheader(f"Message {entry.id}: {entry.status.value}")
cause = f"{entry.action} by {entry.actor_kind.value} {entry.actor_name}" if entry.action and entry.actor_kind else ""
# Plain text only: names and bodies are shown exactly as typed, never as Markdown or HTML.
st.text(
    "\n".join(
        line
        for line in (
            f"To: {entry.recipient}",
            f"Subject: {entry.subject}",
            f"Kind: {entry.kind}",
            f"Queued: {ui.when(entry.created_at)}",
            f"Sent: {ui.when(entry.sent_at)}" if entry.sent_at else "",
            f"Attempts: {entry.attempts}",
            f"Last error: {entry.last_error}" if entry.last_error else "",
            f"Caused by: {cause} (operation {entry.operation_id})" if cause else "",
            f"Reason: {entry.reason}" if entry.reason else "",
        )
        if line
    )
)
st.text(entry.body)

if entry.status is NotificationStatus.FAILED:
    if entry.sending_started_at is not None:
        st.warning(
            "This message may already have been delivered: a notify run handed it to the mail server and stopped "
            "before recording the outcome. Check with the recipient before retrying, or they may get it twice.",
            icon=":material/warning:",
        )

    def retry(notification_id: int = entry.id) -> None:
        ui.act(
            lambda session, actor, now: notes.retry_notification(session, notification_id, actor=actor, now=now),
            lambda result: f"Message {result.notification_id} is queued again: the next notify run sends it.",
        )
        ui.bump(state.NOTIFY_VERSION)

    st.button("Retry", key=state.NOTIFY_RETRY_BUTTON, on_click=retry, icon=":material/replay:")
