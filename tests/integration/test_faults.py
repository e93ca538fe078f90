"""A connection lost in the middle of an action leaves nothing half-written, and the action can be retried.

The no-show below reprobates its mentee and cancels her future sessions. It is paused once the mark, the
reprobation and the first cancellation are written in its (open) transaction; a second connection then kills
the server process that serves it, as a crash, a restart or a network cut would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

import core.discipline
from core.attendance import mark_no_show
from core.audit import Actor
from core.db import make_session_factory
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Notification, Reprobation, Warning
from tests.databases import empty_tables
from tests.factories import add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)
WAIT_S = 30  # only reached when the action never gets to the pause

# How each server names the process behind a connection, ends it, and tells it is still in a transaction.
# (SQLAlchemy names the MariaDB dialect "mysql" when it is reached through a mysql:// URL.)
SERVER_PID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
TERMINATE = {"postgresql": "SELECT pg_terminate_backend({pid})", "mysql": "KILL CONNECTION {pid}"}
IN_TRANSACTION = {
    "postgresql": "SELECT state = 'idle in transaction' FROM pg_stat_activity WHERE pid = {pid}",
    "mysql": "SELECT COUNT(*) = 1 FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = {pid}",
}


@pytest.fixture
def server(server_engine: sa.Engine) -> Iterator[sa.Engine]:
    empty_tables(server_engine)
    yield server_engine


@pytest.mark.servers
@pytest.mark.parametrize("server_engine", ["postgresql", "mariadb"], indirect=True)
def test_a_connection_killed_mid_cascade_leaves_nothing_and_the_mark_can_be_retried(
    server: sa.Engine, now: datetime, policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = "mysql" if server.dialect.name == "mariadb" else server.dialect.name
    factory: sessionmaker[Session] = make_session_factory(server)
    with factory.begin() as s:
        mentor = add_mentor(s, "Maria Mentor")
        ana = add_mentee(s, "Ana Ruiz")
        first = add_booking(s, mentor, ana, now - 10 * DAY)
        second = add_booking(s, mentor, ana, now - 3 * DAY)
        future = [add_booking(s, mentor, ana, now + d * DAY) for d in (2, 5, 9)]
    maria = Actor(ActorKind.MENTOR, "maria", mentor)
    with factory.begin() as s:
        mark_no_show(s, first, actor=maria, now=now, policy=policy)
    with factory() as s:
        entries_before = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
        messages_before = s.scalar(sa.select(sa.func.count()).select_from(Notification))

    paused, resume = threading.Event(), threading.Event()
    victim: dict[str, Any] = {}
    real_record = core.discipline.record

    def record_then_pause(session: Session, op: Any, action: str, *args: Any) -> None:
        real_record(session, op, action, *args)
        if action == "booking.cancel" and not paused.is_set():
            session.flush()  # the mark, the reprobation and this cancellation are now on the server
            victim["pid"] = session.scalar(sa.text(SERVER_PID[backend]))
            paused.set()
            resume.wait(WAIT_S)

    monkeypatch.setattr(core.discipline, "record", record_then_pause)

    def mark_second() -> None:
        try:
            with factory.begin() as s:
                mark_no_show(s, second, actor=maria, now=now, policy=policy)
        except Exception as error:
            victim["error"] = error
        finally:
            paused.set()  # also when it failed before the pause

    thread = threading.Thread(target=mark_second, daemon=True)
    thread.start()
    assert paused.wait(WAIT_S)
    assert "pid" in victim, f"the no-show never reached its cascade: {victim}"
    with server.connect() as other:
        assert other.scalar(sa.text(IN_TRANSACTION[backend].format(pid=int(victim["pid"]))))
        other.execute(sa.text(TERMINATE[backend].format(pid=int(victim["pid"]))))
        other.commit()
    resume.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()

    # The action failed with the lost connection, not with a domain refusal.
    assert isinstance(victim.get("error"), sa.exc.OperationalError), repr(victim.get("error"))
    with factory() as s:
        assert s.get_one(Booking, second).attended is None
        assert s.scalar(sa.select(sa.func.count()).select_from(Reprobation)) == 0
        assert s.scalar(sa.select(sa.func.count()).where(Booking.status == BookingStatus.CANCELLED)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == entries_before
        assert s.scalar(sa.select(sa.func.count()).select_from(Notification)) == messages_before

    monkeypatch.setattr(core.discipline, "record", real_record)
    with factory.begin() as s:
        result = mark_no_show(s, second, actor=maria, now=now, policy=policy)
    assert sorted(result.consequences.bookings_cancelled) == sorted(future)
    with factory() as s:
        assert s.scalars(sa.select(Reprobation.booking_id)).one() == second
        assert s.scalar(sa.select(sa.func.count()).select_from(Warning)) == 1
