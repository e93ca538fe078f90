"""The main journeys, in a real browser: what AppTest cannot do (click table rows, draw charts, download)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from app import state
from core.attendance import preview_no_show
from core.audit import actor_for_user
from core.config import Policy
from core.db import make_engine, make_session_factory
from core.misfire import RevertResult, revert_misfire
from core.queries import pending_bookings
from tests.e2e.conftest import Server, choose_row, go, screenshot, sign_in, sign_out, wait_until_idle

pytestmark = pytest.mark.e2e


def oldest_pending(db: Path, username: str) -> tuple[int, str]:
    """The booking id of the mentor's oldest pending session and what marking it no-show would cause."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_session_factory(engine)() as session:
            actor = actor_for_user(session, username)
            now = datetime.now(UTC)
            assert actor.mentor_id is not None
            row = pending_bookings(session, now=now, mentor_id=actor.mentor_id, limit=1)[0]
            preview = preview_no_show(session, row.booking_id, actor=actor, now=now, policy=Policy())
            return row.booking_id, preview.message
    finally:
        engine.dispose()


def metric(page: Page, label: str) -> Locator:
    """The value of the metric with this label."""
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def test_a_mentor_marks_a_no_show_after_reading_its_consequence_then_resets_it(
    app: Server, demo_db: Path, page: Page
) -> None:
    booking_id, consequence = oldest_pending(demo_db, "mentor")
    assert re.fullmatch(r"a warning to .+|.+ will be reprobated and \d+ future sessions? cancelled", consequence)

    go(page, app)
    sign_in(page, "mentor", landing="My sessions")
    screenshot(page, "my_sessions")
    pending = metric(page, "Pending sessions")
    waiting = int(pending.inner_text())

    choose_row(page, state.MENTOR_PENDING_TABLE, 0)  # the pending sessions, oldest first
    expect(page.get_by_text(f"(booking {booking_id})")).to_be_visible()
    page.get_by_role("button", name="No-show").click()
    expect(page.get_by_text(f"Marking this session no-show means {consequence}. Confirm?")).to_be_visible()
    # Nothing is marked before the confirmation.
    expect(page.get_by_test_id("stAlertContentSuccess")).to_have_count(0)
    expect(pending).to_have_text(str(waiting))
    page.get_by_role("button", name="Confirm no-show").click()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text("marked no-show")
    expect(pending).to_have_text(str(waiting - 1))

    choose_row(page, state.MENTOR_MARKED_TABLE, 0)  # recently marked, the latest mark first
    reset = page.get_by_role("button", name=f"Reset booking {booking_id} to pending")
    expect(reset).to_be_visible()
    reset.click()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text("reset to pending")
    expect(pending).to_have_text(str(waiting))
    choose_row(page, state.MENTOR_PENDING_TABLE, 0)  # the session waits for a decision again, the oldest as before
    expect(page.get_by_text(f"(booking {booking_id})")).to_be_visible()

    sign_out(page)


def revert_plan(db: Path) -> RevertResult:
    """What reverting all the System damage would do now (a dry run: nothing is written)."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_session_factory(engine)() as session:
            return revert_misfire(
                session,
                actor=actor_for_user(session, "admin"),
                now=datetime.now(UTC),
                reason="dry run",
                policy=Policy(),
            )
    finally:
        engine.dispose()


def test_an_admin_finds_the_system_reprobations_and_reverts_them_with_a_reason(
    app: Server, demo_db: Path, page: Page
) -> None:
    plan = revert_plan(demo_db)
    restored, conflicts = len(plan.bookings_restored), len(plan.conflicts)
    # The demo's incident: 26 sessions cancelled, some restorable, some in conflict.
    assert restored + conflicts == 26 and restored and conflicts

    go(page, app)
    sign_in(page, "admin", landing="Audit")
    attribution = page.get_by_test_id("stMultiSelect").filter(has_text="Attribution")
    attribution.click()
    page.get_by_role("option", name="System", exact=True).click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("tab", name="Reprobations (2)")).to_be_visible()
    expect(page.get_by_role("tab", name="Cancellations (26)")).to_be_visible()

    choose_row(page, state.AUDIT_REPROBATION_TABLE, 0)
    expect(page.get_by_text("The absence that triggered it")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Sessions it cancelled \(\d+\)$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Issued .* by System mentorship:process-absences"))).to_be_visible()
    screenshot(page, "audit", height=1600)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Automated damage").click()
    expect(page.get_by_role("heading", name="Dry run: what the revert will do")).to_be_visible()
    expect(page.get_by_text(f"Sessions to restore ({restored})")).to_be_visible()
    expect(page.get_by_text(f"Conflicts: sessions left cancelled ({conflicts})")).to_be_visible()
    screenshot(page, "automated_damage", height=3600)

    reason = "The hourly job marked absences nobody decided"
    page.get_by_role("textbox", name="Reason (required, recorded with every change)").fill(reason)
    page.get_by_role("button", name="Revert…").click()
    expect(page.get_by_text(f"restore {restored} session(s), leave {conflicts} in conflict")).to_be_visible()
    page.get_by_role("button", name="Confirm revert").click()

    done = page.get_by_test_id("stAlertContentSuccess").filter(has_text="Reverted. Operation id:")
    expect(done).to_be_visible()
    found = re.search(r"Operation id:\s*([0-9a-f-]{32,36})", done.inner_text())
    assert found, done.inner_text()
    operation_id = found.group(1)
    expect(metric(page, "Sessions restored")).to_have_text(str(restored))
    expect(metric(page, "Conflicts (left cancelled)")).to_have_text(str(conflicts))

    # The audit log holds the operation, with the reason.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Audit log").click()
    page.get_by_role("textbox", name="Operation id").fill(operation_id)
    page.keyboard.press("Enter")
    expect(page.get_by_text("1–1 of 1 operations")).to_be_visible()
    choose_row(page, state.LOG_TABLE, 0)
    expect(page.get_by_text(f"Reason: {reason}")).to_be_visible()
    screenshot(page, "audit_log")

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Mark on behalf").click()
    expect(page.get_by_role("heading", name="Mark on behalf of a mentor")).to_be_visible()
    # One of the absences the revert sent back to pending, reviewed as a no-show (not confirmed).
    booking_id = plan.absences_reset[0]
    page.get_by_role("spinbutton", name="Booking id").fill(str(booking_id))
    page.get_by_test_id("stRadio").get_by_text("No-show", exact=True).click()
    page.get_by_role("textbox", name="Reason (required)").fill("The mentor told us by phone")
    page.get_by_role("button", name="Review").click()
    expect(page.get_by_role("heading", name=f"No-show: booking {booking_id}")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Consequence: (a warning to|.+ will be reprobated)"))).to_be_visible()
    screenshot(page, "mark_on_behalf")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    screenshot(page, "notifications")
    sign_out(page)


def percent(page: Page, label: str) -> float:
    return float(metric(page, label).inner_text().rstrip("%"))


def test_analytics_draws_its_charts_and_downloads_each_table_as_csv(app: Server, page: Page, tmp_path: Path) -> None:
    go(page, app)
    sign_in(page, "admin", landing="Audit")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()

    charts = page.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(4)
    for i in range(4):
        # Vega has drawn the chart (an svg or a canvas of marks), not only its placeholder.
        expect(charts.nth(i).locator("svg.marks, canvas.marks").first).to_be_visible()
    expect(charts.first.locator(".role-mark path, .role-mark line").first).to_be_attached()
    # What the automated marks claimed is visibly higher than what people counted.
    assert percent(page, "Automated rate") > percent(page, "Counted no-show rate")
    screenshot(page, "analytics", height=2000)

    for button, header, at_least in (
        (
            "Download per-mentor CSV",
            "Mentor,Sessions,Marked by a person,Attended,No-shows,No-show rate,Automated marks,Pending,"
            "Median hours to mark",
            12,  # the demo's mentors
        ),
        (
            "Download per-mentee CSV",
            "Mentee,Sessions,Marked by a person,No-shows,No-show rate,Pending,Active warnings,Reprobated",
            100,
        ),
    ):
        # A download button's file belongs to the run that drew it: click only once the last run is drawn.
        wait_until_idle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name=button).click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[0] == header
        assert len(lines) - 1 >= at_least
    sign_out(page)
