"""The promises a sign-in app makes, each checked in a real browser on a freshly started server."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import BrowserContext, Page, expect

from app import login_limit, state
from core.attendance import mark_no_show
from core.audit import actor_for_user
from core.config import Policy
from core.db import make_engine, make_session_factory
from core.models import Mentee, Mentor, User
from core.queries import pending_bookings
from tests.e2e.conftest import (
    COOKIE_NAME,
    PASSWORDS,
    ROOT,
    Server,
    Watch,
    auth_cookies,
    choose_row,
    go,
    screenshot,
    sign_in,
    sign_in_form,
    sign_out,
    wait_until_idle,
)
from tests.factories import add_booking, add_mentee

pytestmark = pytest.mark.e2e

# Every page file is a URL of the app (its file name without .py); these are the ones there must be.
PAGE_URLS = sorted(p.stem for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
ADMIN_PAGES = {
    "audit": "Audit",
    "automated_damage": "Automated damage",
    "audit_log": "Audit log",
    "mark_on_behalf": "Mark on behalf of a mentor",
    "notifications": "Notifications",
}
MENTOR_PAGES = {"my_sessions": "My sessions"}
SHARED_PAGES = {"analytics": "Analytics"}
LEGACY_COMMAND = "mentorship:process-absences"  # appears on every admin page that shows the incident
SCRIPT_NAME = "<img src=x onerror=alert(1)>"
DAY = timedelta(days=1)

# Records every text and test id the page ever showed (a flash of data before the sign-in form counts too).
_RECORD_EVERYTHING_SHOWN = """
window.__shown = [];
new MutationObserver((mutations) => {
  for (const m of mutations) {
    if (m.type === 'characterData') window.__shown.push(m.target.textContent);
    for (const node of m.addedNodes) {
      if (node.nodeType === Node.TEXT_NODE) window.__shown.push(node.textContent);
      if (!(node instanceof Element)) continue;
      window.__shown.push(node.textContent || '');
      for (const e of [node, ...node.querySelectorAll('[data-testid]')]) window.__shown.push('@' + e.dataset.testid);
    }
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""
DATA_ELEMENTS = {"@stDataFrame", "@stMetric", "@stVegaLiteChart", "@stDownloadButton", "@stSidebarNav", "@stTable"}


def names_in(db: Path, *models: type[Mentor] | type[Mentee]) -> list[str]:
    """Every name of these kinds (mentors, mentees) in the database."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as connection:
            return list(connection.scalars(sa.union(*(sa.select(model.name) for model in models))))
    finally:
        engine.dispose()


def shown_since_load(page: Page) -> tuple[set[str], str]:
    """The test ids and the texts of everything the page has shown since it was loaded."""
    shown: list[str] = page.evaluate("window.__shown")
    return {s for s in shown if s.startswith("@")}, " ".join(s for s in shown if not s.startswith("@"))


def test_the_app_has_the_pages_these_tests_know() -> None:
    assert set(PAGE_URLS) >= {*ADMIN_PAGES, *MENTOR_PAGES, *SHARED_PAGES}


def test_every_page_url_opened_without_signing_in_shows_only_the_sign_in_form(
    app: Server, demo_db: Path, page: Page, context: BrowserContext
) -> None:
    context.add_init_script(_RECORD_EVERYTHING_SHOWN)
    names = names_in(demo_db, Mentor, Mentee)
    for path in ["", *PAGE_URLS]:
        go(page, app, path)
        sign_in_form(page)
        wait_until_idle(page)
        test_ids, text = shown_since_load(page)
        assert not DATA_ELEMENTS & test_ids, f"/{path} showed {DATA_ELEMENTS & test_ids}"
        assert LEGACY_COMMAND not in text, f"/{path} showed the incident"
        assert not [n for n in names if n in text], f"/{path} showed names of mentors or mentees"
        expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
        if path == "":
            screenshot(page, "sign_in")


def test_a_mentor_who_opens_an_admin_page_url_sees_no_admin_data(
    app: Server, demo_db: Path, page: Page, context: BrowserContext
) -> None:
    context.add_init_script(_RECORD_EVERYTHING_SHOWN)
    go(page, app)
    sign_in(page, "mentor", landing="My sessions")
    mentor_pages = [re.compile("My sessions$"), re.compile("Analytics$")]
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link")).to_have_text(mentor_pages)
    own = page.get_by_text(re.compile(r"^Signed in as (.+) \(mentor\)$")).inner_text()
    others = [n for n in names_in(demo_db, Mentor) if n not in own]
    for path, title in ADMIN_PAGES.items():
        go(page, app, path)  # the signed cookie signs the mentor in again: still a mentor
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        wait_until_idle(page)
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link")).to_have_text(mentor_pages)
        expect(page.get_by_role("heading", name=title, exact=True)).to_have_count(0)
        _, text = shown_since_load(page)
        assert LEGACY_COMMAND not in text, f"/{path} showed the incident"
        assert not [n for n in others if n in text], f"/{path} showed other mentors' names"


def put_script_into_names(db: Path) -> tuple[str, str]:
    """Rename the demo mentor (and their user) to a script, and give them a mentee so named, with a counted
    absence and, before every other pending session of the mentor, a pending one whose no-show reprobates."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        with make_session_factory(engine).begin() as session:
            actor = actor_for_user(session, "mentor")
            assert actor.mentor_id is not None
            now = datetime.now(UTC)
            oldest = pending_bookings(session, now=now, mentor_id=actor.mentor_id, limit=1)
            # At 03:00 UTC, when the demo's mentors have no sessions; 5 days apart, well inside the policy window.
            start = min([now - 45 * DAY, *(row.start_time - DAY for row in oldest)]).replace(hour=3, minute=0)
            mentee_id = add_mentee(session, f"Mentee {SCRIPT_NAME}")
            absence = add_booking(session, actor.mentor_id, mentee_id, start - 5 * DAY)
            mark_no_show(session, absence, actor=actor, now=now, policy=Policy())
            add_booking(session, actor.mentor_id, mentee_id, start)
            add_booking(session, actor.mentor_id, mentee_id, (now + 5 * DAY).replace(hour=3, minute=0))
            user = session.scalars(sa.select(User).where(User.username == "mentor")).one()
            mentor = session.get_one(Mentor, actor.mentor_id)
            mentor.name = user.name = f"Mentor {SCRIPT_NAME}"
            return mentor.name, f"Mentee {SCRIPT_NAME}"
    finally:
        engine.dispose()


def no_script_ran(page: Page, watch: Watch) -> None:
    assert not watch.dialogs, f"a script ran: {watch.dialogs}"
    expect(page.locator('img[src="x"]')).to_have_count(0)


def test_a_name_holding_html_is_shown_as_text_and_runs_nothing(
    serve: Callable[..., Server], demo_db: Path, page: Page, another_page: Callable[[], Page], watch: Watch
) -> None:
    mentor_name, mentee_name = put_script_into_names(demo_db)
    app = serve(demo_db)
    go(page, app)
    sign_in(page, "mentor", landing="My sessions")
    expect(page.get_by_text(f"Signed in as {mentor_name} (mentor)")).to_be_visible()

    choose_row(page, state.MENTOR_PENDING_TABLE, 0)
    expect(page.get_by_text(f"Chosen: {mentee_name}'s session")).to_be_visible()
    page.get_by_role("button", name="No-show").click()
    # The consequence is Markdown: the name must come out as typed, not as an element.
    expect(page.get_by_test_id("stAlertContentWarning")).to_contain_text(mentee_name)
    no_script_ran(page, watch)
    page.get_by_role("button", name="Confirm no-show").click()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(f"{mentee_name}'s session")
    expect(page.get_by_test_id("stToast")).to_contain_text(mentee_name)
    no_script_ran(page, watch)
    sign_out(page)

    # An admin reads the reprobation: the name in a filter's options and in the chain's heading.
    page = another_page()
    go(page, app)
    sign_in(page, "admin", landing="Audit")
    page.get_by_test_id("stSelectbox").filter(has_text="Mentee").click()
    page.keyboard.type(mentee_name)  # the list is long: narrow it as a person would
    page.get_by_role("option", name=mentee_name, exact=True).click()
    expect(page.get_by_role("tab", name="Reprobations (1)")).to_be_visible()
    no_script_ran(page, watch)
    choose_row(page, state.AUDIT_REPROBATION_TABLE, 0)
    expect(
        page.get_by_role("heading", name=re.compile(rf"^Reprobation \d+: {re.escape(mentee_name)}$"))
    ).to_be_visible()
    no_script_ran(page, watch)


def test_after_sign_out_the_cookie_is_gone_and_a_reload_shows_the_sign_in_form(
    app: Server, page: Page, context: BrowserContext
) -> None:
    go(page, app, "my_sessions")
    sign_in(page, "mentor", landing="My sessions")
    assert auth_cookies(context) == [COOKIE_NAME]
    page.reload()  # the cookie keeps the mentor signed in
    expect(page.get_by_role("heading", name="My sessions", exact=True)).to_be_visible()

    sign_out(page)  # waits until the cookie is gone (and fails if it stays)
    page.reload()
    sign_in_form(page)
    wait_until_idle(page)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    expect(page.get_by_role("heading", name="My sessions", exact=True)).to_have_count(0)


def test_repeated_wrong_passwords_are_limited_with_a_clear_message(
    app: Server, page: Page, another_page: Callable[[], Page]
) -> None:
    go(page, app)
    for attempt in range(login_limit.MAX_LOGIN_ATTEMPTS):
        sign_in(page, "mentor", f"not-the-password-{attempt}")
        expect(page.get_by_text("Username or password is incorrect")).to_be_visible()
    sign_in(page, "mentor", "not-the-password-either")
    expect(page.get_by_text(re.compile("Too many wrong passwords"))).to_be_visible()
    # While the limit holds, the right password is refused too, also in another browser.
    elsewhere = another_page()
    go(elsewhere, app)
    sign_in(elsewhere, "mentor", PASSWORDS["mentor"])
    expect(elsewhere.get_by_text(re.compile("Too many wrong passwords"))).to_be_visible()
    expect(elsewhere.get_by_role("button", name="Sign out")).to_have_count(0)


@pytest.mark.parametrize(
    ("key", "problem"),
    [(None, "No cookie key is set."), (secrets.token_hex(8), "The cookie key is too short (16 bytes")],
    ids=["no key", "16-byte key"],
)
def test_the_app_refuses_to_start_without_a_cookie_key_of_at_least_32_bytes(
    serve: Callable[..., Server], demo_db: Path, page: Page, key: str | None, problem: str
) -> None:
    app = serve(demo_db, cookie_key=key)
    for path in ("", "audit"):
        go(page, app, path)
        refusal = page.get_by_test_id("stAlertContentError")
        expect(refusal).to_contain_text(problem)
        expect(refusal).to_contain_text("MENTORSHIP_COOKIE_KEY")
        expect(refusal).to_contain_text("secrets.toml")
        wait_until_idle(page)
        expect(page.get_by_role("textbox", name="Password")).to_have_count(0)
        expect(page.get_by_role("button", name="Login")).to_have_count(0)
