"""AppTest support: a small world on a fresh SQLite file per test, the app pointed at it, and sign-in helpers.

The world is built with tests/factories.py (loading the whole demo takes far longer than these tests may):
the demo's two users with the demo's passwords, a mentor with pending, marked, reverted and upcoming sessions,
and the automated incident as the legacy command left it (System absences, warning, reprobations and the
sessions they cancelled), all relative to the real clock, which is what the app reads.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core.db import init_db, make_engine, make_session_factory
from core.demo import DEMO_USERS
from core.discipline import CANCELLED_BY_REPROBATION
from core.models import ActorKind, Booking, BookingStatus, Reprobation, Role, Warning
from tests.factories import add_booking, add_mentee, add_mentor, add_user

ENTRYPOINT = str(Path(__file__).parents[2] / "app" / "main.py")
TEST_COOKIE_KEY = "test-cookie-key-" + "x" * 32  # 48 bytes
LEGACY = "mentorship:process-absences"
DAY = timedelta(days=1)
PASSWORDS = {u.username: u.password for u in DEMO_USERS}


@dataclass(frozen=True)
class World:
    factory: sessionmaker[Session]
    now: datetime
    ids: dict[str, int]


def _system_incident(session: Session, mentor_id: int, mentee_id: int, now: datetime, ids: dict[str, int], tag: str):
    """Two absences stamped System, the warning and reprobation the legacy command gave, and two later
    sessions of the mentee cancelled by that reprobation."""
    at = now - 5 * DAY
    first = add_booking(session, mentor_id, mentee_id, now - 12 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
    second = add_booking(session, mentor_id, mentee_id, now - 8 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
    for booking_id in (first, second):
        session.get_one(Booking, booking_id).attendance_marked_by_name = LEGACY
    session.add(
        Warning(mentee_id=mentee_id, booking_id=first, issued_at=at, issued_by=ActorKind.SYSTEM, issued_by_name=LEGACY)
    )
    reprobation = Reprobation(
        mentee_id=mentee_id, booking_id=second, issued_at=at, issued_by=ActorKind.SYSTEM, issued_by_name=LEGACY
    )
    session.add(reprobation)
    session.flush()
    ids[f"{tag}_reprobation"] = reprobation.id
    ids[f"{tag}_absence"] = second
    for n, days in enumerate((6, 13)):
        booking_id = add_booking(session, mentor_id, mentee_id, now + days * DAY + n * timedelta(hours=3))
        booking = session.get_one(Booking, booking_id)
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at, booking.cancelled_by, booking.cancelled_by_name = at, ActorKind.SYSTEM, LEGACY
        booking.cancellation_reason = CANCELLED_BY_REPROBATION
        booking.reprobation_id = reprobation.id


def build_world(factory: sessionmaker[Session], now: datetime) -> World:
    ids: dict[str, int] = {}
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        otto = add_mentor(s, "Otto Other")
        ana = add_mentee(s, "Ana Ruiz")
        ben = add_mentee(s, "Ben *Stone*")  # Markdown in a name must show as typed
        cy = add_mentee(s, "Cy Ng")
        ids |= {"maria": maria, "otto": otto, "ana": ana, "ben": ben, "cy": cy}
        ids["oldest_pending"] = add_booking(s, maria, ana, now - 10 * DAY)
        ids["second_pending"] = add_booking(s, maria, ana, now - 3 * DAY)
        ids["reverted"] = add_booking(s, maria, cy, now - 20 * DAY)
        s.get_one(Booking, ids["reverted"]).attendance_reverted_at = now - DAY
        ids["marked"] = add_booking(
            s, maria, cy, now - 30 * DAY, attended=True, marked_by=ActorKind.MENTOR, marked_by_name="mentor"
        )
        add_booking(s, maria, ana, now + 2 * DAY)
        add_booking(s, maria, ana, now + 9 * DAY)
        _system_incident(s, otto, ben, now, ids, "ben")
        _system_incident(s, otto, cy, now - timedelta(hours=1), ids, "cy")
        for username, password in PASSWORDS.items():
            add_user(
                s,
                username,
                Role(next(u.role for u in DEMO_USERS if u.username == username)),
                mentor_id=maria if username == "mentor" else None,
                password=password,
                created_at=now - 60 * DAY,
            )
        add_user(s, "ghost", Role.MENTOR, mentor_id=otto, password="ghost-password", disabled=True, created_at=now)
    return World(factory, now, ids)


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime, dict[str, int]]:
    """The world built once per run (migrations and bcrypt take their time); each test gets a copy."""
    path = tmp_path_factory.mktemp("app_world") / "world.db"
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    world = build_world(make_session_factory(engine), datetime.now(UTC))
    engine.dispose()  # closes the last connection, which folds the WAL into the file
    return path, world.now, world.ids


@pytest.fixture
def world(
    world_template: tuple[Path, datetime, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A fresh copy of the world, and the app pointed at it with a valid cookie key."""
    template, now, ids = world_template
    path = tmp_path / "world.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("MENTORSHIP_DB_URL", url)
    monkeypatch.setenv("MENTORSHIP_COOKIE_KEY", TEST_COOKIE_KEY)
    engine = make_engine(url)
    yield World(make_session_factory(engine), now, dict(ids))
    engine.dispose()


@pytest.fixture(autouse=True)
def _release_cached_engines() -> Iterator[None]:
    """Each test has its own database: dispose of the app's cached engines after it."""
    yield
    st.cache_resource.clear()


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(ENTRYPOINT, default_timeout=30)


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    """Sign in through the form, as a person would."""
    at.run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    # In a browser the cookie component triggers this run.
    return at.run()


def signed_in_as(at: AppTest, username: str) -> AppTest:
    """Start signed in (what the sign-in form leaves in session state), without a password check."""
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["name"] = username.title()
    return at.run()


def choose_row(at: AppTest, key: str, row: int) -> AppTest:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def texts(elements: Any) -> list[str]:
    """Element values as a person reads them (the app escapes Markdown in what it shows)."""
    return [str(e.value).replace("\\", "") for e in elements]


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], Any]]:
    """The data of every deferred download button drawn, by file name (AppTest cannot click to download)."""
    seen: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self: MediaFileManager, data: Callable[[], Any], *args: Any, **kwargs: Any) -> str:
        seen[kwargs.get("file_name") or ""] = data
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return seen
