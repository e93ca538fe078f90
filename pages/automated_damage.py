"""Admin: what the automated absences command caused, the dry run of its revert, and the revert itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st
from sqlalchemy.orm import Session

from app import state, ui
from core import audit_views as views
from core.audit import Actor
from core.errors import DomainError
from core.misfire import IssuedRow, MisfireReport, RevertResult, report_misfire, revert_misfire
from core.models import ActorKind, Role

DRY_RUN_REASON = "dry run"  # never written: a dry run writes nothing

user = ui.require_role(Role.ADMIN)
st.title("Automated damage")
st.write(
    "Absences stamped System by the automated command (certain) and, if you include them, absences with no "
    "attribution (suspected), with everything that followed from them. A revert sends those absences back to "
    "pending (the mentor decides later), re-applies the policy to counted absences alone, and restores the "
    "sessions cancelled by reprobations that no longer hold, unless they are in conflict."
)
ui.show_flash()

# --- the result of the last revert, until dismissed -----------------------------------------------------------
done: dict[str, Any] | None = st.session_state.get(state.DAMAGE_RESULT)
if done:
    with st.container(border=True):
        st.success(f"Reverted. Operation id: {done['operation_id']}", icon=":material/check_circle:")
        st.text(f"Operation id: {done['operation_id']}\nReason: {done['reason']}")
        cols = st.columns(5)
        for col, (label, name) in zip(
            cols,
            [
                ("Absences reset", "absences_reset"),
                ("Warnings revoked", "warnings_revoked"),
                ("Reprobations lifted", "reprobations_lifted"),
                ("Sessions restored", "bookings_restored"),
                ("Conflicts (left cancelled)", "conflicts"),
            ],
            strict=True,
        ):
            col.metric(label, done[name])
        st.caption("Every change is in the Audit log under this operation id.")
        if st.button("Dismiss", key=state.DAMAGE_DISMISS_BUTTON):
            st.session_state.pop(state.DAMAGE_RESULT, None)
            st.rerun()

# --- scope ----------------------------------------------------------------------------------------------------
with st.container(border=True):
    since, until = ui.date_window(
        state.DAMAGE_SINCE, state.DAMAGE_UNTIL, since_label="Absences marked from", until_label="until (inclusive)"
    )
    include_unattributed = st.checkbox(
        "Include absences with no attribution (suspected automated)", key=state.DAMAGE_UNATTRIBUTED
    )

now = ui.now()
try:
    with ui.reading() as session:
        report = report_misfire(session, now=now, since=since, until=until, include_unattributed=include_unattributed)
except DomainError as error:
    st.error(ui.md_escape(str(error)))
    st.stop()


def show_report(report: MisfireReport) -> None:
    cols = st.columns(6)
    cols[0].metric("System absences", len(report.absences.system))
    cols[1].metric("Unattributed absences", len(report.absences.unattributed))
    cols[2].metric("Warnings", len(report.warnings))
    cols[3].metric("Reprobations", len(report.reprobations))
    cols[4].metric("Cancelled sessions", len(report.cancelled_bookings))
    cols[5].metric("Mentees affected", len(report.mentees))
    table = ui.frame(report.mentees, {"mentee_id": "Mentee id", "mentee": "Mentee"})
    table["Absences"] = [len(m.absence_booking_ids) for m in report.mentees]
    table["Warnings"] = [len(m.warning_ids) for m in report.mentees]
    table["Reprobations"] = [len(m.reprobation_ids) for m in report.mentees]
    table["Cancelled sessions"] = [len(m.cancelled_booking_ids) for m in report.mentees]
    table["Restorable"] = [len(m.restorable_booking_ids) for m in report.mentees]
    table["Conflicts"] = [len(m.conflicts) for m in report.mentees]
    ui.table(table)


st.subheader("In scope")
if not report.mentees:
    st.info("No automated damage in this scope: nothing to revert.")
    st.stop()
show_report(report)

# --- who to revert --------------------------------------------------------------------------------------------
mentee_names = {m.mentee_id: m.mentee for m in report.mentees}
scope = st.radio(
    "Revert for",
    ["all", "chosen"],
    format_func={"all": "every affected mentee", "chosen": "the mentees I choose"}.__getitem__,
    horizontal=True,
    key=state.DAMAGE_SCOPE,
)
chosen: list[int] | None = None
if scope == "chosen":
    chosen = st.multiselect(
        "Mentees",
        list(mentee_names),
        format_func=lambda i: f"{mentee_names[i]} (#{i})",
        key=state.DAMAGE_MENTEES,
    )
    if not chosen:
        st.info("Choose at least one mentee to see the plan.")
        st.stop()

admin = ui.require_actor(user)
reason = (st.session_state.get(state.DAMAGE_REASON) or "").strip()
try:
    with ui.reading() as session:
        plan = revert_misfire(
            session,
            actor=admin,
            now=now,
            reason=reason or DRY_RUN_REASON,
            policy=ui.policy(),
            mentee_ids=chosen,
            since=since,
            until=until,
            include_unattributed=include_unattributed,
            apply=False,
        )
        mentor_names = views.names_of_mentors(
            session, [a.mentor_id for a in (*report.absences.system, *report.absences.unattributed)]
        )
        mentor_names |= views.names_of_mentors(session, [c.mentor_id for c in report.cancelled_bookings])
except DomainError as error:
    st.error(ui.md_escape(str(error)))
    st.stop()


def attribution(kind: ActorKind | None) -> str:
    return kind.value if kind else "(no attribution)"


def show_plan(plan: RevertResult) -> None:
    """The dry run as tables: what the revert will reset, revoke, lift, restore, and leave in conflict."""
    absences = {a.booking_id: a for a in (*report.absences.system, *report.absences.unattributed)}
    warnings = {w.id: w for w in report.warnings}
    reprobations = {r.id: r for r in report.reprobations}
    cancelled = {c.booking_id: c for c in report.cancelled_bookings}

    def named(rows: list[dict[str, Any]]) -> Any:
        return ui.frame(rows) if rows else None

    def issued(label: str, ids: list[int], found: dict[int, IssuedRow]) -> Any:
        """The warnings or reprobations `ids`, as rows of a table whose first column is `label`."""
        return named(
            [
                {
                    label: i,
                    "Mentee": mentee_names.get(found[i].mentee_id, ""),
                    "Absence (booking)": found[i].booking_id,
                    "Issued by": attribution(found[i].issued_by),
                    "Issued at": found[i].issued_at,
                }
                for i in ids
                if i in found
            ]
        )

    sections: list[tuple[str, Any]] = [
        (
            f"Absences to reset to pending ({len(plan.absences_reset)})",
            named(
                [
                    {
                        "Booking": b,
                        "Mentee": mentee_names.get(absences[b].mentee_id, ""),
                        "Mentor": mentor_names.get(absences[b].mentor_id, ""),
                        "Session": absences[b].start_time,
                        "Marked by": attribution(absences[b].marked_by),
                        "Marked by (name)": absences[b].marked_by_name,
                        "Marked at": absences[b].marked_at,
                    }
                    for b in plan.absences_reset
                    if b in absences
                ]
            ),
        ),
        (
            f"Warnings to revoke ({len(plan.warnings_revoked)})",
            issued("Warning", list(plan.warnings_revoked), warnings),
        ),
        (
            f"Reprobations to lift ({len(plan.reprobations_lifted)})",
            issued("Reprobation", list(plan.reprobations_lifted), reprobations),
        ),
        (
            f"Sessions to restore ({len(plan.bookings_restored)})",
            named(
                [
                    {
                        "Booking": b,
                        "Mentee": mentee_names.get(cancelled[b].mentee_id, ""),
                        "Mentor": mentor_names.get(cancelled[b].mentor_id, ""),
                        "Session": cancelled[b].start_time,
                        "Cancelled by reprobation": cancelled[b].reprobation_id,
                    }
                    for b in plan.bookings_restored
                    if b in cancelled
                ]
            ),
        ),
        (
            f"Conflicts: sessions left cancelled ({len(plan.conflicts)})",
            named(
                [
                    {
                        "Booking": c.booking_id,
                        "Mentee": mentee_names.get(cancelled[c.booking_id].mentee_id, "")
                        if c.booking_id in cancelled
                        else "",
                        "Session": cancelled[c.booking_id].start_time if c.booking_id in cancelled else None,
                        "Why": {
                            "slot_taken": "the mentor has another session at that time",
                            "in_past": "the session has already started",
                            "mentor_inactive": "the mentor is no longer active",
                        }.get(c.reason.value, c.reason.value),
                    }
                    for c in plan.conflicts
                ]
            ),
        ),
    ]
    if plan.warnings_issued_for or plan.reprobations_issued_for:
        sections.append(
            (
                "Also, counted absences that lack what the policy gives them: "
                f"{len(plan.warnings_issued_for)} warning(s) and {len(plan.reprobations_issued_for)} "
                f"reprobation(s) will be issued, {len(plan.bookings_cancelled)} session(s) cancelled",
                named([{"Absence (booking)": b} for b in (*plan.warnings_issued_for, *plan.reprobations_issued_for)]),
            )
        )
    for title, table in sections:
        st.markdown(f"**{title}**")
        if table is None:
            st.caption("None.")
        else:
            ui.table(table)


st.subheader("Dry run: what the revert will do")
show_plan(plan)
if plan.is_empty:
    st.info("The revert would change nothing in this scope.")
    st.stop()

# --- the revert: a reason, then a confirmation ---------------------------------------------------------------
scope_now = {
    "since": since.isoformat() if since else None,
    "until": until.isoformat() if until else None,
    "include_unattributed": include_unattributed,
    "mentee_ids": sorted(chosen) if chosen is not None else None,
    "reason": reason,
}


def ask_confirmation() -> None:
    typed = (st.session_state.get(state.DAMAGE_REASON) or "").strip()
    if not typed:
        ui.flash("error", "A revert needs a reason: say why the automated damage is being undone.")
        return
    # The reason may have been typed just before the click: take it as it is now.
    st.session_state[state.DAMAGE_CONFIRM] = scope_now | {"reason": typed}


def cancel() -> None:
    st.session_state.pop(state.DAMAGE_CONFIRM, None)


def apply(scope: dict[str, Any]) -> None:
    st.session_state.pop(state.DAMAGE_CONFIRM, None)

    def run(session: Session, actor: Actor, now: datetime) -> RevertResult:
        return revert_misfire(
            session,
            actor=actor,
            now=now,
            reason=scope["reason"],
            policy=ui.policy(),
            mentee_ids=scope["mentee_ids"],
            since=datetime.fromisoformat(scope["since"]) if scope["since"] else None,
            until=datetime.fromisoformat(scope["until"]) if scope["until"] else None,
            include_unattributed=scope["include_unattributed"],
            apply=True,
        )

    def describe(result: RevertResult) -> str | None:
        if result.operation_id is None:
            return "Nothing to revert: the damage in this scope was already undone."
        return None  # the result panel at the top says it, with the operation id

    result = ui.act(run, describe)
    if result is not None and result.operation_id is not None:
        st.session_state[state.DAMAGE_RESULT] = {
            "operation_id": result.operation_id,
            "reason": scope["reason"],
            **result.counts(),
        }


st.subheader("Revert")
st.text_input("Reason (required, recorded with every change)", key=state.DAMAGE_REASON, max_chars=500)
pending = st.session_state.get(state.DAMAGE_CONFIRM)
if pending and pending != scope_now:
    # The scope or the reason changed since the confirmation was asked for: ask again.
    st.session_state.pop(state.DAMAGE_CONFIRM, None)
    pending = None
if not pending:
    st.button("Revert…", type="primary", key=state.DAMAGE_REVERT_BUTTON, on_click=ask_confirmation)
else:
    who = "every affected mentee" if chosen is None else f"{len(chosen)} chosen mentee(s)"
    st.warning(
        f"Revert for {who}: reset {len(plan.absences_reset)} absence(s), revoke {len(plan.warnings_revoked)} "
        f"warning(s), lift {len(plan.reprobations_lifted)} reprobation(s), restore {len(plan.bookings_restored)} "
        f"session(s), leave {len(plan.conflicts)} in conflict. This is recorded with your name and reason.",
        icon=":material/warning:",
    )
    left, right = st.columns(2)
    left.button("Confirm revert", type="primary", key=state.DAMAGE_CONFIRM_BUTTON, on_click=apply, args=(pending,))
    right.button("Cancel", key=state.DAMAGE_CANCEL_BUTTON, on_click=cancel)
