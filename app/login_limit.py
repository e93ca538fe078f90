"""The limit on wrong passwords: after MAX_LOGIN_ATTEMPTS in a row for one username, signing in with that
username is refused until LOCKOUT has passed since the last wrong one.

streamlit-authenticator 0.4.2 does the counting and the refusing (`login(max_login_attempts=...)`), but keeps
the count in the credentials dict it was given, and the app builds that dict from the database on every run:
on its own the count would start again at 0 on each attempt. So the counts are kept here, once for the whole
server (a new tab or a new browser does not start afresh), handed to the dict before the library reads it,
and taken back after it has counted. A right password before the limit clears the count (the library's rule).
The counts live in memory: restarting the app clears them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import streamlit as st

MAX_LOGIN_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
# The text of the LoginError that streamlit-authenticator 0.4.2 raises once the limit is reached.
LIMIT_REACHED = "Maximum number of login attempts exceeded"
REFUSED = (
    f"Too many wrong passwords for this username: signing in with it is refused for "
    f"{int(LOCKOUT.total_seconds() // 60)} minutes after the last attempt. Try again later."
)
COUNT = "failed_login_attempts"  # the library's key in each user's credentials


@dataclass
class _Counts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    # username -> (wrong passwords in a row, when the last one was typed)
    wrong: dict[str, tuple[int, datetime]] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _counts() -> _Counts:
    # One for the server process, shared by every browser session.
    return _Counts()


def hand_over(credentials: dict[str, Any], now: datetime) -> None:
    """Put the counts still in force into `credentials` (call before building `Authenticate`)."""
    counts = _counts()
    with counts.lock:
        for username, (count, last) in list(counts.wrong.items()):
            if now - last >= LOCKOUT:
                del counts.wrong[username]
            elif username in credentials["usernames"]:
                credentials["usernames"][username][COUNT] = count


def take_back(credentials: dict[str, Any], now: datetime) -> None:
    """Keep the counts the library left in `credentials` (call after its `login`)."""
    counts = _counts()
    with counts.lock:
        for username, user in credentials["usernames"].items():
            count = int(user.get(COUNT, 0))
            kept = counts.wrong.get(username)
            if count == 0:
                counts.wrong.pop(username, None)
            elif kept is None or kept[0] != count:
                counts.wrong[username] = (count, now)


def explain(error: Exception) -> str:
    """The message a person reads for the library's sign-in error."""
    return REFUSED if str(error) == LIMIT_REACHED else str(error)
