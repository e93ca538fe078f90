"""Several requests on one mentee at the same moment, on real parallel connections.

Each request runs in a thread of its own with its own session and connection, and all of them start
together behind a barrier. PostgreSQL and MariaDB serialise them with the mentee's row lock; SQLite with
BEGIN IMMEDIATE and its busy timeout. Either way the outcome must be the one of running them one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_no_show, reset_attendance
from core.audit import Actor
from core.config import Policy
from core.db import in_transaction, is_deadlock, make_engine, make_session_factory
from core.discipline import ConflictReason
from core.errors import AlreadyMarked
from core.misfire import revert_misfire
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation, Warning
from tests.databases import empty_tables
from tests.factories import HOUR, add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)
ADMIN = Actor(ActorKind.ADMIN, "root-admin")
COMMAND = "mentorship:process-absences"
REQUESTS = 8
# Long enough for every request to get through a queue of lock waits; only reached when something hangs.
JOIN_TIMEOUT_S = 60

on_servers = pytest.mark.parametrize("server_engine", ["postgresql", "mariadb"], indirect=True)


@pytest.fixture
def pooled(server_engine: sa.Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on an empty server database whose pool holds a connection for every request."""
    empty_tables(server_engine)
    engine = make_engine(server_engine.url.render_as_string(hide_password=False), pool_size=REQUESTS + 2)
    yield make_session_factory(engine)
    engine.dispose()


Request = Callable[[Session], Any]


def run_together(factory: sessionmaker[Session], requests: list[Request]) -> list[Any]:
    """Run each request in its own thread and transaction, all released at once; return results or errors.
    A request the database rolls back to break a deadlock runs again, as the product runs it (in_transaction).

    On the servers each thread holds its connection before the barrier, so the requests really overlap.
    On SQLite the connection is taken after it: BEGIN IMMEDIATE would otherwise hold the write lock while
    waiting at the barrier for threads that wait for that lock.
    """
    connect_first = factory.kw["bind"].dialect.name != "sqlite"
    barrier = threading.Barrier(len(requests))
    outcomes: list[Any] = [None] * len(requests)

    def run(index: int, request: Request) -> None:
        try:
            with factory() as session:
                if connect_first:
                    session.connection()
                barrier.wait()
                try:
                    outcomes[index] = request(session)
                    session.commit()
                    return
                except sa.exc.OperationalError as error:
                    session.rollback()
                    if not is_deadlock(error):
                        raise
            # The database rolled this one back to break a deadlock: the product runs it again, as here.
            outcomes[index] = in_transaction(factory, request)
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i, r), daemon=True) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a request is still waiting: a lock is never released"
    return outcomes


def count(session: Session, statement: sa.Select[Any]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(statement.subquery())) or 0


def marked_by_eight_requests_at_once(factory: sessionmaker[Session], now: datetime, policy: Policy) -> None:
    with factory.begin() as s:
        mentor = add_mentor(s, "Maria Mentor")
        booking = add_booking(s, mentor, add_mentee(s, "Ana Ruiz"), now - 3 * DAY)
    maria = Actor(ActorKind.MENTOR, "maria", mentor)

    def mark(session: Session) -> Any:
        return mark_no_show(session, booking, actor=maria, now=now, policy=policy)

    outcomes = run_together(factory, [mark] * REQUESTS)

    marked = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(marked) == 1
    assert len(refused) == REQUESTS - 1
    for error in refused:
        assert isinstance(error, AlreadyMarked), repr(error)
        assert "already marked no-show (marked by Mentor maria)" in str(error)
    with factory() as s:
        row = s.get_one(Booking, booking)
        assert (row.attended, row.attendance_marked_by, row.attendance_marked_by_name) == (
            False,
            ActorKind.MENTOR,
            "maria",
        )
        assert count(s, sa.select(AuditEntry).where(AuditEntry.action == "attendance.mark")) == 1
        assert set(s.scalars(sa.select(AuditEntry.operation_id))) == {marked[0].operation_id}
        assert count(s, sa.select(Warning)) == 1


@pytest.mark.servers
@on_servers
def test_eight_requests_marking_one_booking_leave_one_mark(pooled, now, policy):
    marked_by_eight_requests_at_once(pooled, now, policy)


def test_eight_requests_marking_one_booking_leave_one_mark_on_sqlite(sqlite_factory, now, policy):
    # Each thread's session takes a connection of its own from the engine's pool.
    marked_by_eight_requests_at_once(sqlite_factory, now, policy)


@pytest.mark.servers
@on_servers
def test_two_mentors_reaching_the_threshold_together_reprobate_once(pooled, now, policy):
    with pooled.begin() as s:
        maria_id, otto_id = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other")
        ana = add_mentee(s, "Ana Ruiz")
        earlier = add_booking(s, maria_id, ana, now - 5 * DAY)
        later = add_booking(s, otto_id, ana, now - 2 * DAY)
        future = [
            add_booking(s, maria_id, ana, now + 2 * DAY),
            add_booking(s, otto_id, ana, now + 3 * DAY),
            add_booking(s, maria_id, ana, now + 9 * DAY),
        ]
    maria = Actor(ActorKind.MENTOR, "maria", maria_id)
    otto = Actor(ActorKind.MENTOR, "otto", otto_id)

    outcomes = run_together(
        pooled,
        [
            lambda s: mark_no_show(s, earlier, actor=maria, now=now, policy=policy),
            lambda s: mark_no_show(s, later, actor=otto, now=now, policy=policy),
        ],
    )

    assert not [o for o in outcomes if isinstance(o, Exception)]
    with pooled() as s:
        # Whichever mark came first, the end state is the policy's: the earlier absence warns, the
        # later one reprobates.
        reprobation = s.scalars(sa.select(Reprobation)).one()
        assert (reprobation.booking_id, reprobation.lifted_at) == (later, None)
        warning = s.scalars(sa.select(Warning).where(Warning.revoked_at.is_(None))).one()
        assert warning.booking_id == earlier
        cancelled = s.scalars(sa.select(Booking).where(Booking.status == BookingStatus.CANCELLED)).all()
        assert sorted(b.id for b in cancelled) == sorted(future)
        assert {b.reprobation_id for b in cancelled} == {reprobation.id}
        cancels = s.scalars(sa.select(AuditEntry.target_id).where(AuditEntry.action == "booking.cancel")).all()
        assert sorted(cancels) == sorted(future)
        assert count(s, sa.select(AuditEntry).where(AuditEntry.action == "reprobation.issue")) == 1
        assert count(s, sa.select(AuditEntry).where(AuditEntry.action == "attendance.mark")) == 2


def damaged_world(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """What the legacy command left for Ana and Bea, and a session of Ana's that Maria has yet to mark.

    Ana: Maria's no-show 20 days ago (with its warning), then the command's no-show, which reprobated her
    and cancelled two future sessions. Bea: the command's no-show and its warning.
    """
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        ana, bea = add_mentee(s, "Ana Ruiz"), add_mentee(s, "Bea Lind")
        w = {"maria": maria, "ana": ana, "bea": bea}
        w["ana_counted"] = add_booking(
            s, maria, ana, now - 20 * DAY, attended=False, marked_by=ActorKind.MENTOR, marked_by_name="maria"
        )
        s.add(Warning(mentee_id=ana, booking_id=w["ana_counted"], issued_at=now - 20 * DAY, issued_by=ActorKind.MENTOR))
        w["ana_system"] = add_booking(
            s, maria, ana, now - 10 * DAY, attended=False, marked_by=ActorKind.SYSTEM, marked_by_name=COMMAND
        )
        reprobation = Reprobation(
            mentee_id=ana, booking_id=w["ana_system"], issued_at=now - 10 * DAY + 2 * HOUR, issued_by=ActorKind.SYSTEM
        )
        s.add(reprobation)
        s.flush()
        w["system_reprobation"] = reprobation.id
        for key, start in (("future1", now + 2 * DAY), ("future2", now + 5 * DAY)):
            w[key] = add_booking(s, maria, ana, start, status=BookingStatus.CANCELLED)
            booking = s.get_one(Booking, w[key])
            booking.cancelled_at, booking.cancelled_by = now - 10 * DAY + 2 * HOUR, ActorKind.SYSTEM
            booking.cancellation_reason, booking.reprobation_id = "reprobation", reprobation.id
        w["ana_pending"] = add_booking(s, maria, ana, now - 3 * DAY)
        w["bea_system"] = add_booking(
            s, maria, bea, now - 8 * DAY, attended=False, marked_by=ActorKind.SYSTEM, marked_by_name=COMMAND
        )
        s.add(Warning(mentee_id=bea, booking_id=w["bea_system"], issued_at=now - 8 * DAY, issued_by=ActorKind.SYSTEM))
    return w


def mark_pending(world: dict[str, int], now: datetime, policy: Policy) -> Request:
    maria = Actor(ActorKind.MENTOR, "maria", world["maria"])
    return lambda s: mark_no_show(s, world["ana_pending"], actor=maria, now=now, policy=policy)


def revert_all(now: datetime, policy: Policy) -> Request:
    return lambda s: revert_misfire(
        s, actor=ADMIN, now=now, reason="process-absences misfire", policy=policy, apply=True
    )


def reset_by_admin(booking_id: int, now: datetime, policy: Policy) -> Request:
    return lambda s: reset_attendance(s, booking_id, actor=ADMIN, now=now, policy=policy, reason="marked by mistake")


def assert_marked_and_reverted(factory: sessionmaker[Session], world: dict[str, int]) -> None:
    """The state after Maria's no-show and the revert, in either order.

    The command's absences are pending again and what rested on them is withdrawn (Bea's warning, the
    System reprobation); Maria's two no-shows reprobate Ana, which cancels her two future sessions again.
    """
    with factory() as s:
        bookings = {b.id: b for b in s.scalars(sa.select(Booking))}
        assert {k: bookings[world[k]].attended for k in ("ana_system", "bea_system", "ana_pending")} == {
            "ana_system": None,
            "bea_system": None,
            "ana_pending": False,
        }
        reprobation = s.scalars(sa.select(Reprobation).where(Reprobation.lifted_at.is_(None))).one()
        assert (reprobation.booking_id, reprobation.issued_by_name) == (world["ana_pending"], "maria")
        assert s.get_one(Reprobation, world["system_reprobation"]).lifted_at is not None
        for key in ("future1", "future2"):
            assert (bookings[world[key]].status, bookings[world[key]].reprobation_id) == (
                BookingStatus.CANCELLED,
                reprobation.id,
            )
        active = s.scalars(sa.select(Warning.booking_id).where(Warning.revoked_at.is_(None))).all()
        assert active == [world["ana_counted"]]
        # Nothing lost from the audit log: each change once, whichever request wrote it.
        actions = s.execute(
            sa.select(AuditEntry.action, AuditEntry.target_id).order_by(AuditEntry.action, AuditEntry.target_id)
        ).all()
        assert [tuple(a) for a in actions] == sorted(
            [
                ("attendance.mark", world["ana_pending"]),
                ("attendance.revert", world["ana_system"]),
                ("attendance.revert", world["bea_system"]),
                ("booking.cancel", world["future1"]),
                ("booking.cancel", world["future2"]),
                ("booking.restore", world["future1"]),
                ("booking.restore", world["future2"]),
                ("reprobation.issue", reprobation.id),
                ("reprobation.lift", world["system_reprobation"]),
                ("warning.revoke", s.scalars(sa.select(Warning.id).where(Warning.mentee_id == world["bea"])).one()),
            ]
        )
        assert len(set(s.scalars(sa.select(AuditEntry.operation_id)))) == 2


@pytest.mark.parametrize("mark_first", [True, False], ids=["mark-then-revert", "revert-then-mark"])
def test_a_mark_and_a_revert_one_after_the_other(factory, now, policy, mark_first):
    world = damaged_world(factory, now)
    steps = [mark_pending(world, now, policy), revert_all(now, policy)]
    for step in steps if mark_first else reversed(steps):
        with factory.begin() as s:
            step(s)
    assert_marked_and_reverted(factory, world)


@pytest.mark.servers
@on_servers
def test_a_revert_while_a_mentor_marks_gives_the_same_as_one_after_the_other(pooled, now, policy):
    world = damaged_world(pooled, now)

    outcomes = run_together(pooled, [mark_pending(world, now, policy), revert_all(now, policy)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert_marked_and_reverted(pooled, world)
    with pooled.begin() as s:
        assert revert_all(now, policy)(s).is_empty


def reprobated(s: Session, name: str, mentor: int, by: ActorKind, now: datetime) -> tuple[int, int, int]:
    """A mentee reprobated by `by` for two absences at `mentor`: (mentee, the absence that reprobated, reprobation)."""
    mentee = add_mentee(s, name)
    add_booking(s, mentor, mentee, now - 20 * DAY, attended=False, marked_by=by)
    cause = add_booking(s, mentor, mentee, now - 10 * DAY, attended=False, marked_by=by)
    reprobation = Reprobation(mentee_id=mentee, booking_id=cause, issued_at=now - 9 * DAY, issued_by=by)
    s.add(reprobation)
    s.flush()
    return mentee, cause, reprobation.id


def cancelled_by(s: Session, reprobation: int, mentor: int, mentee: int, start: datetime) -> int:
    booking = add_booking(s, mentor, mentee, start, status=BookingStatus.CANCELLED)
    s.get_one(Booking, booking).reprobation_id = reprobation
    return booking


@pytest.mark.servers
@on_servers
def test_two_resets_restoring_into_one_slot_restore_only_one(pooled, now, policy):
    """Ana's and Bea's reprobations each cancelled a session with Maria; the two sessions overlap (one was
    booked after the other was cancelled). Resetting both marks at once must not double-book Maria."""
    with pooled.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        ana, ana_cause, ana_reprobation = reprobated(s, "Ana Ruiz", maria, ActorKind.MENTOR, now)
        bea, bea_cause, bea_reprobation = reprobated(s, "Bea Lind", maria, ActorKind.MENTOR, now)
        slots = [
            cancelled_by(s, ana_reprobation, maria, ana, now + 2 * DAY),
            cancelled_by(s, bea_reprobation, maria, bea, now + 2 * DAY + HOUR / 2),
        ]

    outcomes = run_together(pooled, [reset_by_admin(ana_cause, now, policy), reset_by_admin(bea_cause, now, policy)])

    assert not [o for o in outcomes if isinstance(o, Exception)]
    restored = [b for o in outcomes for b in o.consequences.bookings_restored]
    conflicts = [c for o in outcomes for c in o.consequences.conflicts]
    assert len(restored) == 1
    assert [(c.booking_id, c.reason) for c in conflicts] == [
        (next(b for b in slots if b not in restored), ConflictReason.SLOT_TAKEN)
    ]
    with pooled() as s:
        scheduled = s.scalars(
            sa.select(Booking.id).where(Booking.id.in_(slots), Booking.status == BookingStatus.SCHEDULED)
        )
        assert list(scheduled) == restored


@pytest.mark.servers
@on_servers
def test_a_revert_and_a_reset_restoring_at_the_same_mentors_both_finish(pooled, now, policy):
    """The revert restores Xavi's session with Otto and then Zoe's with Maria; at the same moment an admin's
    reset restores Yara's sessions with both. Neither may wait for the other in a cycle (a deadlock)."""
    with pooled.begin() as s:
        maria, otto = add_mentor(s, "Maria Mentor"), add_mentor(s, "Otto Other")
        xavi, _, xavi_reprobation = reprobated(s, "Xavi Paz", otto, ActorKind.SYSTEM, now)
        zoe, _, zoe_reprobation = reprobated(s, "Zoe Lee", maria, ActorKind.SYSTEM, now)
        yara, yara_cause, yara_reprobation = reprobated(s, "Yara Diaz", maria, ActorKind.MENTOR, now)
        sessions = [
            cancelled_by(s, xavi_reprobation, otto, xavi, now + 2 * DAY),
            cancelled_by(s, zoe_reprobation, maria, zoe, now + 2 * DAY + 2 * HOUR),
            cancelled_by(s, yara_reprobation, maria, yara, now + 2 * DAY + 4 * HOUR),
            cancelled_by(s, yara_reprobation, otto, yara, now + 2 * DAY + 6 * HOUR),
        ]

    outcomes = run_together(pooled, [revert_all(now, policy), reset_by_admin(yara_cause, now, policy)])

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    with pooled() as s:
        statuses = s.scalars(sa.select(Booking.status).where(Booking.id.in_(sessions))).all()
        assert statuses == [BookingStatus.SCHEDULED] * len(sessions)


@pytest.mark.servers
@on_servers
def test_two_reverts_at_once_undo_the_damage_once(pooled, now, policy):
    world = damaged_world(pooled, now)

    outcomes = run_together(pooled, [revert_all(now, policy), revert_all(now, policy)])

    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sorted(o.is_empty for o in outcomes) == [False, True]
    with pooled() as s:
        reverted = s.scalars(sa.select(AuditEntry.target_id).where(AuditEntry.action == "attendance.revert")).all()
        assert sorted(reverted) == sorted([world["ana_system"], world["bea_system"]])
        assert count(s, sa.select(AuditEntry).where(AuditEntry.action == "reprobation.lift")) == 1
        assert count(s, sa.select(AuditEntry).where(AuditEntry.action == "booking.restore")) == 2
