"""Attendance Desk, the Streamlit entrypoint: refuse to start without a cookie key or a database, sign the
user in, then route to the pages of the user's role.

Run it with `make run` (or `streamlit run app/main.py`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities.exceptions import LoginError

from app import login_limit, state, ui
from core.errors import DomainError
from core.models import Role
from core.users import authenticator_credentials

COOKIE_NAME = "attendance_desk_auth"
COOKIE_EXPIRY_DAYS = 30

# The pages of each role, in the order the navigation lists them. To add a page, add one line here.
# Paths are relative to this file; the pages live in the top-level pages/ folder (see pages/).
PAGES: dict[Role, list[tuple[str, str, str]]] = {
    Role.MENTOR: [
        ("../pages/my_sessions.py", "My sessions", ":material/event_available:"),
        ("../pages/analytics.py", "Analytics", ":material/monitoring:"),
    ],
    Role.ADMIN: [
        ("../pages/audit.py", "Audit", ":material/policy:"),
        ("../pages/automated_damage.py", "Automated damage", ":material/healing:"),
        ("../pages/audit_log.py", "Audit log", ":material/history:"),
        ("../pages/mark_on_behalf.py", "Mark on behalf", ":material/edit_calendar:"),
        ("../pages/notifications.py", "Notifications", ":material/mail:"),
        ("../pages/analytics.py", "Analytics", ":material/monitoring:"),
    ],
}


def refuse(message: str) -> None:
    """Stop the app with a message that says what to do (no traceback)."""
    st.error(ui.md_escape(message), icon=":material/block:")
    st.stop()


def sign_in_page() -> None:
    st.title("Attendance Desk")
    st.write("Sign in with your Attendance Desk username and password.")
    try:
        authenticator.login(location="main", key=state.LOGIN_FORM, max_login_attempts=login_limit.MAX_LOGIN_ATTEMPTS)
    except LoginError as error:
        st.error(ui.md_escape(login_limit.explain(error)))
        return
    finally:
        login_limit.take_back(credentials, ui.now())
    if st.session_state.get("authentication_status") is False:
        st.error("Username or password is incorrect (or the account is disabled).")
    elif st.session_state.get("authentication_status"):
        # The library writes its cookie on this run; the next run (which its cookie component triggers)
        # shows the user's pages. Re-running here would lose the cookie.
        st.info("Signed in. Loading your pages…")


st.set_page_config(page_title="Attendance Desk", page_icon=":material/fact_check:", layout="wide")

key_problem = ui.cookie_key_problem(ui.cookie_key())
if key_problem:
    refuse(f"{key_problem} {ui.COOKIE_KEY_HELP}")
db_problem = ui.database_problem()
if db_problem:
    refuse(db_problem)
try:
    ui.policy()
    with ui.reading() as session:
        credentials = authenticator_credentials(session)
except DomainError as error:
    refuse(str(error))

login_limit.hand_over(credentials, ui.now())  # the library counts wrong passwords in this dict
authenticator = stauth.Authenticate(
    credentials,
    COOKIE_NAME,
    ui.cookie_key(),
    COOKIE_EXPIRY_DAYS,
    auto_hash=False,
    login_sleep_time=0,
)
try:
    # Re-authenticate from the signed cookie before the navigation is built, so a deep link survives a reload.
    authenticator.login(location="unrendered")
except LoginError:
    # The cookie names a user who is no longer enabled: ignore the cookie (the library's own flag) and drop it.
    st.session_state["logout"] = True
    authenticator.cookie_controller.delete_cookie()

username = str(st.session_state.get("username") or "")
if st.session_state.get("authentication_status") and username not in credentials["usernames"]:
    # Disabled or removed while signed in: end the session.
    authenticator.logout(location="unrendered")

user_roles = credentials["usernames"].get(username, {}).get("roles", [])
role = Role(user_roles[0]) if st.session_state.get("authentication_status") and user_roles else None
st.session_state[state.ROLE] = role.value if role else None

if role is not None:
    with st.sidebar:
        st.text(f"Signed in as {credentials['usernames'][username]['name']} ({role.value})")
        authenticator.logout("Sign out", location="sidebar", key=state.LOGOUT_BUTTON)
    if not st.session_state.get("authentication_status"):  # signed out just now
        role = None
        st.session_state[state.ROLE] = None

if role is None:
    # Every page's address shows the sign-in form while signed out (rather than "page not found"), and stays
    # in the address bar: after signing in, the user lands on the page they asked for, if their role has it.
    addresses = sorted({Path(path).stem for pages in PAGES.values() for path, _, _ in pages})
    sign_in = [st.Page(sign_in_page, title="Sign in", icon=":material/login:", default=True)]
    sign_in += [st.Page(sign_in_page, title="Sign in", url_path=a, visibility="hidden") for a in addresses]
    st.navigation(sign_in, position="hidden").run()
else:
    pages = [st.Page(path, title=title, icon=icon) for path, title, icon in PAGES[role]]
    st.navigation(pages).run()
