"""The wrong-password counts the app keeps between runs for streamlit-authenticator (the browser test shows the
refusal itself; these show how long it lasts and what clears it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import login_limit
from app.login_limit import COUNT, LOCKOUT, MAX_LOGIN_ATTEMPTS, hand_over, take_back

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    login_limit._counts.clear()
    yield
    login_limit._counts.clear()


def credentials() -> dict[str, Any]:
    """What the app builds from the database on every run: no counts."""
    return {"usernames": {"ana": {"name": "Ana"}, "ben": {"name": "Ben"}}}


def after_wrong_passwords(username: str, count: int, at: datetime) -> None:
    """A run in which the library counted `count` wrong passwords in a row for `username`."""
    run = credentials()
    hand_over(run, at)
    run["usernames"][username][COUNT] = count
    take_back(run, at)


def test_the_count_is_handed_to_the_next_run_for_that_username_only() -> None:
    after_wrong_passwords("ana", MAX_LOGIN_ATTEMPTS, NOW)
    run = credentials()
    hand_over(run, NOW + timedelta(minutes=1))
    assert run["usernames"]["ana"][COUNT] == MAX_LOGIN_ATTEMPTS
    assert COUNT not in run["usernames"]["ben"]


def test_the_lock_ends_after_the_lockout_since_the_last_wrong_password() -> None:
    after_wrong_passwords("ana", MAX_LOGIN_ATTEMPTS - 1, NOW)
    after_wrong_passwords("ana", MAX_LOGIN_ATTEMPTS, NOW + timedelta(minutes=10))
    still = credentials()
    hand_over(still, NOW + timedelta(minutes=10) + LOCKOUT - timedelta(seconds=1))
    assert still["usernames"]["ana"][COUNT] == MAX_LOGIN_ATTEMPTS
    later = credentials()
    hand_over(later, NOW + timedelta(minutes=10) + LOCKOUT)
    assert COUNT not in later["usernames"]["ana"]


def test_a_right_password_before_the_limit_clears_the_count() -> None:
    after_wrong_passwords("ana", 3, NOW)
    after_wrong_passwords("ana", 0, NOW + timedelta(minutes=1))  # the library resets it on success
    run = credentials()
    hand_over(run, NOW + timedelta(minutes=2))
    assert COUNT not in run["usernames"]["ana"]


def test_the_limit_reached_is_explained_in_words() -> None:
    assert login_limit.explain(Exception(login_limit.LIMIT_REACHED)).startswith("Too many wrong passwords")
    assert login_limit.explain(Exception("User not authorized")) == "User not authorized"
