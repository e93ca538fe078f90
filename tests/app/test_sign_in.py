"""Signing in, what each role may reach, and the app's refusal to start without a proper cookie key."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ENTRYPOINT, PASSWORDS, sign_in, signed_in_as, texts

MENTOR_PAGES = ["../pages/my_sessions.py"]
ADMIN_PAGES = [
    "../pages/audit.py",
    "../pages/automated_damage.py",
    "../pages/audit_log.py",
    "../pages/mark_on_behalf.py",
]
PAGE_TITLES = {
    "../pages/my_sessions.py": "My sessions",
    "../pages/audit.py": "Audit",
    "../pages/automated_damage.py": "Automated damage",
    "../pages/audit_log.py": "Audit log",
    "../pages/mark_on_behalf.py": "Mark on behalf of a mentor",
}


@pytest.mark.parametrize(
    ("username", "landing", "own", "others"),
    [
        ("mentor", "My sessions", MENTOR_PAGES, ADMIN_PAGES),
        ("admin", "Audit", ADMIN_PAGES, MENTOR_PAGES),
    ],
)
def test_a_demo_user_signs_in_and_reaches_only_the_pages_of_their_role(world, app, username, landing, own, others):
    at = sign_in(app, username, PASSWORDS[username])
    assert not at.exception
    assert [t.value for t in at.title] == [landing]
    assert f"Signed in as {username.title()} ({username})" in [t.value for t in at.sidebar.text]
    for page in own:
        at.switch_page(page).run()
        assert not at.exception
        assert [t.value for t in at.title] == [PAGE_TITLES[page]]
    for page in others:
        # Not in this role's navigation: the router does not know the page at all.
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


def test_a_wrong_password_is_refused_and_shows_no_page(world, app):
    at = sign_in(app, "admin", "not-the-password")
    assert "Username or password is incorrect (or the account is disabled)." in [e.value for e in at.error]
    assert not at.title or [t.value for t in at.title] == ["Attendance Desk"]
    assert not at.dataframe
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/audit.py")


def test_a_disabled_user_cannot_sign_in(world, app):
    at = sign_in(app, "ghost", "ghost-password")
    assert "Username or password is incorrect (or the account is disabled)." in [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Attendance Desk"]


def test_a_user_disabled_while_signed_in_is_signed_out(world, app):
    at = signed_in_as(app, "mentor")
    assert [t.value for t in at.title] == ["My sessions"]
    with world.factory.begin() as s:
        from core.models import User

        s.query(User).filter_by(username="mentor").update({"disabled": True})
    at.run()
    assert [t.value for t in at.title] == ["Attendance Desk"]
    assert not at.dataframe


def test_an_admin_page_refuses_a_mentor_even_when_reached_directly(world):
    # The second guard: the page itself, run without the router's role-based list.
    page = AppTest.from_file(str(Path(ENTRYPOINT).parents[1] / "pages" / "audit.py"), default_timeout=30)
    page.session_state["authentication_status"] = True
    page.session_state["username"] = "mentor"
    page.session_state["desk_role"] = "mentor"
    page.run()
    assert texts(page.error) == ["This page is for admins only."]
    assert not page.dataframe
    assert not page.title


def test_a_mentor_page_refuses_a_visitor_who_is_not_signed_in(world):
    page = AppTest.from_file(str(Path(ENTRYPOINT).parents[1] / "pages" / "my_sessions.py"), default_timeout=30)
    page.run()
    assert texts(page.error) == ["Please sign in first."]
    assert not page.dataframe


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "No cookie key is set."),
        ("too-short", "The cookie key is too short (9 bytes; at least 32 are needed)."),
    ],
)
def test_the_app_refuses_to_start_without_a_long_enough_cookie_key(world, app, monkeypatch, key, problem):
    monkeypatch.delenv("MENTORSHIP_COOKIE_KEY")
    app.secrets["cookie_key"] = key or ""
    at = app.run()
    assert not at.exception
    [message] = texts(at.error)
    assert message.startswith(problem)
    assert "MENTORSHIP_COOKIE_KEY" in message and "secrets.toml" in message
    assert not at.text_input  # no sign-in form


def test_the_app_says_how_to_initialise_a_database_that_is_not_ready(app, tmp_path, monkeypatch):
    monkeypatch.setenv("MENTORSHIP_DB_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("MENTORSHIP_COOKIE_KEY", "k" * 48)
    at = app.run()
    assert not at.exception
    [message] = texts(at.error)
    assert "is not initialised or is out of date: run `mentorship init`" in message
    assert not at.text_input
