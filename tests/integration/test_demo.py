"""The demo's promises: its size, its mentor-made discipline, the legacy incident exactly as told, its users,
determinism for a seed, and that it never overwrites a database that holds data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import streamlit_authenticator as stauth
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_no_show, preview_no_show
from core.audit import Actor, actor_for_user
from core.config import Policy
from core.db import make_session_factory, schema_is_current
from core.demo import DEMO_USERS, LEGACY_COMMAND, load_demo, reset_database
from core.discipline import ConflictReason, restorable_bookings
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Mentee, Mentor, Reprobation, User, Warning
from core.queries import pending_bookings
from core.users import authenticator_credentials
from tests.conftest import NOW
from tests.databases import migrated_engine
from tests.factories import add_booking, add_mentee, add_mentor

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def demo_pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session]]]:
    """The demo loaded twice, with the same seed and the same `now`, into two SQLite files."""
    with (
        migrated_engine("sqlite", tmp_path_factory.mktemp("demo_a")) as a,
        migrated_engine("sqlite", tmp_path_factory.mktemp("demo_b")) as b,
    ):
        factories = make_session_factory(a), make_session_factory(b)
        for factory in factories:
            with factory.begin() as s:
                load_demo(s, now=NOW, seed=7)
        yield factories


@pytest.fixture(scope="module")
def demo(demo_pair: tuple[sessionmaker[Session], sessionmaker[Session]]) -> sessionmaker[Session]:
    return demo_pair[0]


def count(s: Session, model: type[Any], *where: Any) -> int:
    return s.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def test_the_demo_keeps_its_promises_on_every_backend(factory, now):
    with factory.begin() as s:
        summary = load_demo(s, now=now, seed=7)
    assert summary.loaded
    with factory() as s:
        system_reprobations = s.scalars(
            sa.select(Reprobation).where(Reprobation.issued_by == ActorKind.SYSTEM, Reprobation.lifted_at.is_(None))
        ).all()
        cancelled = s.scalars(sa.select(Booking).where(Booking.cancelled_by == ActorKind.SYSTEM)).all()
        assert count(s, Reprobation, Reprobation.issued_by == ActorKind.MENTOR) >= 1
    assert (summary.system_reprobations, summary.system_cancellations, summary.users) == (2, 26, DEMO_USERS)
    assert len({r.mentee_id for r in system_reprobations}) == len(system_reprobations) == 2
    assert len(cancelled) == 26
    assert {b.reprobation_id for b in cancelled} == {r.id for r in system_reprobations}
    assert {(b.status, b.cancellation_reason, b.cancelled_by_name) for b in cancelled} == {
        (BookingStatus.CANCELLED, "reprobation", LEGACY_COMMAND)
    }


def test_the_demo_has_the_size_and_shape_it_announces(demo):
    with demo() as s:
        assert count(s, Mentor) == 12
        assert count(s, Mentee) == 150
        assert 2_700 <= count(s, Booking) <= 3_300
        first, last = s.execute(sa.select(sa.func.min(Booking.start_time), sa.func.max(Booking.start_time))).one()
        assert NOW - timedelta(days=121) < first and last < NOW + timedelta(days=61)
        assert {end - start for start, end in s.execute(sa.select(Booking.start_time, Booking.end_time))} == {HOUR}
        # No mentor is booked twice at once (1-hour sessions on the hour: one scheduled booking per slot).
        doubled = s.execute(
            sa.select(Booking.mentor_id, Booking.start_time)
            .where(Booking.status == BookingStatus.SCHEDULED)
            .group_by(Booking.mentor_id, Booking.start_time)
            .having(sa.func.count() > 1)
        ).all()
        assert doubled == []
        past = count(s, Booking, Booking.end_time <= NOW, Booking.status == BookingStatus.SCHEDULED)
        by_mentors = count(s, Booking, Booking.attendance_marked_by == ActorKind.MENTOR)
        pending = len(pending_bookings(s, now=NOW))
        assert by_mentors > 0.85 * past
        assert 5 <= pending < 0.05 * past


def test_mentors_marks_went_through_the_policy_and_are_audited_as_theirs(demo):
    with demo() as s:
        reprobation = s.scalars(sa.select(Reprobation).where(Reprobation.issued_by == ActorKind.MENTOR)).one()
        cause = s.get_one(Booking, reprobation.booking_id)
        assert (cause.attended, cause.attendance_marked_by) == (False, ActorKind.MENTOR)
        assert reprobation.issued_at == cause.attendance_marked_at > cause.end_time
        cancelled = s.scalars(sa.select(Booking).where(Booking.reprobation_id == reprobation.id)).all()
        assert cancelled and all(b.start_time > reprobation.issued_at for b in cancelled)
        assert {b.cancelled_by for b in cancelled} == {ActorKind.MENTOR}
        assert count(s, Warning, Warning.issued_by == ActorKind.MENTOR) >= 10
        # Every mark by a mentor has exactly one audit entry, as that mentor, at the moment of the mark.
        marks = s.execute(
            sa.select(Booking.id, Booking.attendance_marked_by_name, Booking.attendance_marked_at).where(
                Booking.attendance_marked_by == ActorKind.MENTOR
            )
        ).all()
        audited = {
            e.target_id: (e.actor_kind, e.actor_name, e.at, e.after["attended"])
            for e in s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "attendance.mark"))
        }
        assert count(s, AuditEntry, AuditEntry.action == "attendance.mark") == len(marks) == len(audited)
        for booking_id, name, at in marks:
            assert audited[booking_id][:3] == (ActorKind.MENTOR, name, at)
        # The legacy command and the mentees wrote outside Attendance Desk: the audit log holds only what was
        # done here (the mentors' marks and the two demo users, added by the command line).
        assert count(s, AuditEntry, AuditEntry.actor_name == LEGACY_COMMAND) == 0
        assert count(s, AuditEntry, AuditEntry.actor_kind == ActorKind.MENTEE) == 0
        assert count(s, AuditEntry, AuditEntry.action == "user.add", AuditEntry.actor_name == "mentorship-cli") == 2


def test_the_incident_is_as_the_legacy_command_left_it(demo):
    with demo() as s:
        reprobations = s.scalars(sa.select(Reprobation).where(Reprobation.issued_by == ActorKind.SYSTEM)).all()
        restorable, conflicts = restorable_bookings(s, [r.id for r in reprobations], NOW)
        assert len(restorable) + len(conflicts) == 26
        assert {c.reason for c in conflicts} == {ConflictReason.IN_PAST, ConflictReason.SLOT_TAKEN}
        for reprobation in reprobations:
            cause = s.get_one(Booking, reprobation.booking_id)
            assert (cause.attendance_marked_by, cause.attendance_marked_by_name) == (ActorKind.SYSTEM, LEGACY_COMMAND)
            assert reprobation.issued_by_name == LEGACY_COMMAND
        # Every System absence was a session nobody had marked; each gave its mentee a System warning or
        # (the second one within the window) a reprobation.
        system_absences = count(s, Booking, Booking.attendance_marked_by == ActorKind.SYSTEM)
        system_warnings = count(s, Warning, Warning.issued_by == ActorKind.SYSTEM)
        assert system_absences >= 12 and system_warnings >= 10
        # One reprobated mentee also has a mentor's no-show, and the mentor's warning for it: a revert keeps it.
        mixed = [
            r.mentee_id
            for r in reprobations
            if count(
                s,
                Booking,
                Booking.mentee_id == r.mentee_id,
                Booking.attended.is_(False),
                Booking.attendance_marked_by == ActorKind.MENTOR,
            )
            == 1
        ]
        assert len(mixed) == 1
        assert count(s, Warning, Warning.mentee_id == mixed[0], Warning.issued_by == ActorKind.MENTOR) == 1
        # The suspected damage: absences with no attribution at all.
        assert count(s, Booking, Booking.attended.is_(False), Booking.attendance_marked_by.is_(None)) >= 3


def test_the_demo_users_sign_in_and_the_mentor_sees_both_kinds_of_consequence(demo):
    with demo() as s:
        credentials = authenticator_credentials(s)["usernames"]
        mentor = actor_for_user(s, "mentor")
        messages = [
            preview_no_show(s, row.booking_id, actor=mentor, now=NOW, policy=Policy()).message
            for row in pending_bookings(s, now=NOW, mentor_id=mentor.mentor_id)
        ]
        assert actor_for_user(s, "admin").kind is ActorKind.ADMIN
    for user in DEMO_USERS:
        assert credentials[user.username]["roles"] == [user.role.value]
        assert stauth.Hasher.check_pw(user.password, credentials[user.username]["password"])
    assert any("will be reprobated and" in m for m in messages), messages
    assert any(m.startswith("a warning to") for m in messages), messages


def test_the_same_seed_and_moment_give_the_same_history(demo_pair):
    def snapshot(factory: sessionmaker[Session]) -> list[Any]:
        with factory() as s:
            tables: list[Any] = []
            for model in (Mentor, Mentee, Booking, Warning, Reprobation):
                tables.append([tuple(row) for row in s.execute(sa.select(model.__table__).order_by(model.id))])
            tables.append(
                s.execute(
                    sa.select(AuditEntry.at, AuditEntry.actor_name, AuditEntry.action, AuditEntry.target_id).order_by(
                        AuditEntry.id
                    )
                ).all()
            )
            tables.append(s.execute(sa.select(User.username, User.mentor_id).order_by(User.id)).all())
            return tables

    assert snapshot(demo_pair[0]) == snapshot(demo_pair[1])


def test_another_seed_gives_another_history_with_the_same_incident(demo, sqlite_factory):
    with sqlite_factory.begin() as s:
        summary = load_demo(s, now=NOW, seed=8)
    with sqlite_factory() as s, demo() as s7:
        assert set(s.scalars(sa.select(Mentor.name))) != set(s7.scalars(sa.select(Mentor.name)))
    assert (summary.system_reprobations, summary.system_cancellations, summary.mentor_reprobations) == (2, 26, 1)


def test_a_database_that_holds_data_is_left_alone(factory, now):
    with factory.begin() as s:
        mentor, mentee = add_mentor(s), add_mentee(s)
        add_booking(s, mentor, mentee, now - HOUR)
    with factory.begin() as s:
        summary = load_demo(s, now=now)
    assert not summary.loaded
    assert "--reset" in summary.message
    with factory() as s:
        assert (count(s, Mentor), count(s, Mentee), count(s, Booking), count(s, User)) == (1, 1, 1, 0)


def test_a_reset_empties_everything_even_the_append_only_audit_log(engine, factory, now):
    with factory.begin() as s:
        mentor, mentee = add_mentor(s), add_mentee(s)
        first = add_booking(s, mentor, mentee, now - 50 * HOUR)
        second = add_booking(s, mentor, mentee, now - 2 * HOUR)
        add_booking(s, mentor, mentee, now + 2 * HOUR)
    actor = Actor(ActorKind.MENTOR, "maria", mentor)
    for booking in (first, second):  # a warning, then a reprobation that cancels the future session
        with factory.begin() as s:
            mark_no_show(s, booking, actor=actor, now=now, policy=Policy())
    reset_database(engine)
    assert schema_is_current(engine)
    with factory() as s:
        for model in (Mentor, Mentee, Booking, Warning, Reprobation, AuditEntry):
            assert count(s, model) == 0, model.__name__
