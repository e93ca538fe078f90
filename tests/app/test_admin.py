"""The admin pages: the audit lists and their CSV, a reprobation's chain, the revert from dry run to result,
the audit log, and marking on behalf of a mentor."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import sqlalchemy as sa

from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation
from tests.app.conftest import choose_row, signed_in_as, texts

DAY = timedelta(days=1)


def audit_page(app):
    return signed_in_as(app, "admin")  # the admin's first page


def test_the_audit_lists_the_system_reprobations_and_their_cancellations(world, app):
    at = audit_page(app)
    at.multiselect(key="audit_attribution").select("System").run()
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Reprobations (2)", "Cancellations (4)", "Warnings (2)"]
    reprobations = at.dataframe(key="audit_reprobation_table").value
    assert set(reprobations["Mentee"]) == {"Ben *Stone*", "Cy Ng"}  # names shown as typed
    assert set(reprobations["Issued by"]) == {"System"}
    assert set(reprobations["Issued by (name)"]) == {"mentorship:process-absences"}
    assert list(reprobations["Sessions cancelled"]) == [2, 2]
    assert set(reprobations["Status"]) == {"active"}

    # The legacy rows were written 5 days ago: a window that starts 2 days ago holds none of them.
    at.date_input(key="audit_since").set_value((world.now - 2 * DAY).date()).run()
    assert [t.label for t in at.tabs] == ["Reprobations (0)", "Cancellations (0)", "Warnings (0)"]
    at.date_input(key="audit_since").set_value(None).run()
    at.multiselect(key="audit_attribution").unselect("System").select("Mentor").run()
    assert [t.label for t in at.tabs] == ["Reprobations (0)", "Cancellations (0)", "Warnings (0)"]


def test_a_reprobations_chain_shows_the_absence_who_marked_it_and_the_cancelled_sessions(world, app):
    at = audit_page(app)
    reprobations = at.dataframe(key="audit_reprobation_table").value
    row = list(reprobations["Reprobation"]).index(world.ids["ben_reprobation"])
    at = choose_row(at, "audit_reprobation_table", row)
    assert not at.exception
    assert f"Reprobation {world.ids['ben_reprobation']}: Ben *Stone*" in texts(at.subheader)
    # Below the reprobations table, in its tab: the absence, the warnings, the cancelled sessions.
    absence, warnings, cancelled = (df.value for df in at.dataframe[1:4])
    assert list(absence["Booking"]) == [world.ids["ben_absence"]]
    assert list(absence["Attendance"]) == ["no-show"]
    assert list(absence["Marked by"]) == ["System"]
    assert list(absence["Marked by (name)"]) == ["mentorship:process-absences"]
    assert len(warnings) == 1
    assert list(cancelled["Status"]) == ["cancelled", "cancelled"]
    assert set(cancelled["Cancelled by"]) == {"System"}


def test_the_csv_download_holds_the_filtered_rows(world, app, downloads):
    at = audit_page(app)
    at.multiselect(key="audit_attribution").select("System").run()
    at.selectbox(key="audit_mentee").select(world.ids["ben"]).run()
    assert at.download_button(key="audit_csv_buttoncancellations").label == "Download all 2 as CSV"
    rows = list(csv.DictReader(io.StringIO(downloads["cancellations.csv"]().decode())))
    assert [r["Mentee"] for r in rows] == ["Ben *Stone*", "Ben *Stone*"]
    assert {r["Cancelled by"] for r in rows} == {"System"}
    assert {int(r["Cause (reprobation)"]) for r in rows} == {world.ids["ben_reprobation"]}
    header = next(csv.reader(io.StringIO(downloads["reprobations.csv"]().decode())))
    assert header[:4] == ["Reprobation", "Mentee", "Mentor", "Absence (booking)"]


def test_the_revert_goes_from_dry_run_to_result_with_its_operation_id(world, app):
    at = audit_page(app)
    at.switch_page("../pages/automated_damage.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["System absences"], metrics["Reprobations"], metrics["Cancelled sessions"]) == ("4", "2", "4")
    plan = [m for m in texts(at.markdown) if m.startswith(("**Absences", "**Warnings", "**Reprobations", "**Sessions"))]
    assert plan == [
        "**Absences to reset to pending (4)**",
        "**Warnings to revoke (2)**",
        "**Reprobations to lift (2)**",
        "**Sessions to restore (4)**",
    ]
    tables = {df.value.columns[0]: df.value for df in at.dataframe}
    for label in ("Warning", "Reprobation"):
        assert list(tables[label].columns) == [label, "Mentee", "Absence (booking)", "Issued by", "Issued at"]
        assert len(tables[label]) == 2
        assert set(tables[label]["Issued by"]) == {"System"}
    with world.factory() as s:  # the dry run wrote nothing
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0

    at.button(key="damage_revert_button").click().run()
    assert texts(at.error) == ["A revert needs a reason: say why the automated damage is being undone."]
    at.text_input(key="damage_reason").input("legacy absences job misfired").run()
    at.button(key="damage_revert_button").click().run()
    assert any(w.startswith("Revert for every affected mentee: reset 4 absence(s)") for w in texts(at.warning))
    at.button(key="damage_confirm_button").click().run()
    assert not at.exception

    with world.factory() as s:
        [operation_id] = s.scalars(sa.select(AuditEntry.operation_id).distinct())
        reasons = set(s.scalars(sa.select(AuditEntry.reason)))
        lifted = s.scalars(sa.select(Reprobation.lifted_by)).all()
        restored = s.scalar(
            sa.select(sa.func.count()).where(
                Booking.restored_by == ActorKind.ADMIN, Booking.status == BookingStatus.SCHEDULED
            )
        )
    assert reasons == {"legacy absences job misfired"}
    assert lifted == [ActorKind.ADMIN, ActorKind.ADMIN]
    assert restored == 4
    assert f"Reverted. Operation id: {operation_id}" in texts(at.success)
    assert {m.label: m.value for m in at.metric}["Reprobations lifted"] == "2"
    assert "No automated damage in this scope: nothing to revert." in texts(at.info)

    # The audit log finds the operation, with the admin and the reason.
    at.switch_page("../pages/audit_log.py").run()
    at.text_input(key="log_operation").input(operation_id).run()
    operations = at.dataframe(key="log_table").value
    assert list(operations["Operation"]) == [operation_id]
    assert list(operations["Actor"]) == ["admin"]
    assert list(operations["Reason"]) == ["legacy absences job misfired"]
    assert "reprobation.lift ×2" in operations["Actions"][0]


def test_an_admin_marks_on_behalf_of_a_mentor_with_a_reason(world, app):
    at = audit_page(app)
    at.switch_page("../pages/mark_on_behalf.py").run()
    at.number_input(key="behalf_booking").set_value(world.ids["oldest_pending"])
    at.radio(key="behalf_action").set_value("no-show")
    at.text_input(key="behalf_reason").input("mentor on leave, confirmed by email")
    at.button[0].click().run()  # Review
    assert not at.exception
    assert texts(at.warning) == ["Consequence: a warning to Ana Ruiz"]
    at.button(key="behalf_confirm_button").click().run()
    assert texts(at.success)[0].startswith(f"Booking {world.ids['oldest_pending']} marked no-show")
    with world.factory() as s:
        booking = s.get_one(Booking, world.ids["oldest_pending"])
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_by_name) == (
            False,
            ActorKind.ADMIN,
            "admin",
        )
        entry = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "attendance.mark")).one()
        assert entry.reason == "mentor on leave, confirmed by email"
