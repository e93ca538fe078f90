"""Admin: the audit log of every change, grouped by operation (one user action or command run)."""

from __future__ import annotations

import json

import streamlit as st

from app import state, ui
from core import audit_views as views
from core.models import Role

PAGE_SIZE = 50

ui.require_role(Role.ADMIN)
st.title("Audit log")
st.write(
    "Every change, grouped by operation: all the rows one action wrote share its operation id. "
    "Choose an operation to see its entries, with the state before and after."
)
ui.show_flash()

with ui.reading() as session:
    actors = views.audit_actors(session)
    actions = views.audit_actions(session)

left, middle, right = st.columns(3)
actor = left.selectbox(
    "Actor", [None, *actors], format_func=lambda a: "Anyone" if a is None else a, key=state.LOG_ACTOR
)
action = middle.selectbox(
    "Action", [None, *actions], format_func=lambda a: "Any action" if a is None else a, key=state.LOG_ACTION
)
operation_id = right.text_input("Operation id", key=state.LOG_OPERATION, placeholder="Any operation") or None

with ui.reading() as session:
    total = views.list_operations(session, actor_name=actor, action=action, operation_id=operation_id, limit=1).total
pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
offset = 0
if pages > 1:
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{state.LOG_PAGE}_{pages}")
    offset = (int(number) - 1) * PAGE_SIZE
with ui.reading() as session:
    operations = views.list_operations(
        session, actor_name=actor, action=action, operation_id=operation_id, offset=offset, limit=PAGE_SIZE
    ).rows

if not operations:
    st.info("No operation matches these filters.")
    st.stop()

st.caption(f"{offset + 1}–{offset + len(operations)} of {total} operations, newest first")
table = ui.frame(operations, {"at": "At", "actor_kind": "Actor kind", "actor_name": "Actor", "reason": "Reason"})
table["Entries"] = [o.entries for o in operations]
table["Actions"] = [", ".join(f"{name} ×{count}" for name, count in o.actions.items()) for o in operations]
table["Operation"] = [o.operation_id for o in operations]
ui.table(table, key=state.LOG_TABLE, selectable=True)

chosen = ui.selected_row(state.LOG_TABLE)
if chosen is None or chosen >= len(operations):
    st.caption("Choose an operation in the table to see its entries.")
    st.stop()

operation = operations[chosen]
with ui.reading() as session:
    entries = views.operation_entries(session, operation.operation_id)
st.subheader("Operation")
st.text(
    f"{operation.operation_id}\n{ui.when(operation.at)} by {operation.actor_kind} {operation.actor_name}"
    + (f"\nReason: {operation.reason}" if operation.reason else "")
)
detail = ui.frame(entries, {"id": "Entry", "action": "Action", "target_type": "Target", "target_id": "Target id"})
detail["Before"] = [json.dumps(e.before, sort_keys=True) if e.before is not None else "" for e in entries]
detail["After"] = [json.dumps(e.after, sort_keys=True) if e.after is not None else "" for e in entries]
ui.table(detail)
