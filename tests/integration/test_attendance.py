"""Marking, resetting and previewing attendance on a real database, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_attended, mark_no_show, preview_no_show, reset_attendance
from core.audit import Actor
from core.config import Policy
from core.errors import AlreadyMarked, InvalidAction, InvalidInput, NotAllowed, NotFound
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation, Warning
from tests.factories import add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)


@pytest.fixture
def world(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """One mentor with two past pending sessions of Ana, three future ones, and another mentor's session."""
    with factory.begin() as s:
        mentor = add_mentor(s, "Maria Mentor")
        other = add_mentor(s, "Otto Other")
        ana = add_mentee(s, "Ana Ruiz")
        return {
            "mentor": mentor,
            "other": other,
            "ana": ana,
            "past1": add_booking(s, mentor, ana, now - 10 * DAY),
            "past2": add_booking(s, mentor, ana, now - 3 * DAY),
            "future1": add_booking(s, mentor, ana, now + 2 * DAY),
            "future2": add_booking(s, mentor, ana, now + 9 * DAY),
            "future3": add_booking(s, other, ana, now + 4 * DAY),
            "others": add_booking(s, other, ana, now - 5 * DAY),
        }


def mentor_actor(world: dict[str, int]) -> Actor:
    return Actor(ActorKind.MENTOR, "maria", world["mentor"])


ADMIN = Actor(ActorKind.ADMIN, "root-admin")


def audit_count(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0


def test_first_no_show_warns_and_records_who_marked_it(factory, world, now, policy):
    with factory.begin() as s:
        result = mark_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    assert result.consequences.counts()["warnings_issued"] == 1
    with factory() as s:
        booking = s.get_one(Booking, world["past1"])
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_by_name) == (
            False,
            ActorKind.MENTOR,
            "maria",
        )
        warning = s.scalars(sa.select(Warning)).one()
        assert (warning.booking_id, warning.issued_by, warning.issued_by_name) == (
            world["past1"],
            ActorKind.MENTOR,
            "maria",
        )
        ops = set(s.scalars(sa.select(AuditEntry.operation_id)))
        assert ops == {result.operation_id}


def test_second_no_show_reprobates_and_cancels_every_future_session(factory, world, now, policy):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    with factory.begin() as s:
        result = mark_no_show(s, world["past2"], actor=mentor_actor(world), now=now, policy=policy)
    counts = result.consequences.counts()
    assert counts["reprobations_issued"] == 1
    assert sorted(result.consequences.bookings_cancelled) == sorted(
        [world["future1"], world["future2"], world["future3"]]
    )
    with factory() as s:
        reprobation = s.scalars(sa.select(Reprobation)).one()
        assert reprobation.booking_id == world["past2"]
        cancelled = s.scalars(sa.select(Booking).where(Booking.status == BookingStatus.CANCELLED)).all()
        assert {b.reprobation_id for b in cancelled} == {reprobation.id}
        assert {b.cancelled_by_name for b in cancelled} == {"maria"}


def test_preview_tells_the_consequence_and_writes_nothing(factory, world, now, policy):
    with factory() as s:
        first = preview_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    assert first.message == "a warning to Ana Ruiz"
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    before = audit_count(factory)
    with factory() as s:
        second = preview_no_show(s, world["past2"], actor=mentor_actor(world), now=now, policy=policy)
    assert second.message == "Ana Ruiz will be reprobated and 3 future sessions cancelled"
    assert audit_count(factory) == before


def test_reset_withdraws_the_reprobation_and_restores_the_sessions(factory, world, now, policy):
    actor = mentor_actor(world)
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=actor, now=now, policy=policy)
    with factory.begin() as s:
        mark_no_show(s, world["past2"], actor=actor, now=now, policy=policy)
    later = now + timedelta(minutes=5)
    with factory.begin() as s:
        result = reset_attendance(s, world["past2"], actor=actor, now=later, policy=policy)
    counts = result.consequences.counts()
    assert counts["reprobations_lifted"] == 1
    assert counts["bookings_restored"] == 3
    with factory() as s:
        booking = s.get_one(Booking, world["past2"])
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_by_name) == (
            None,
            None,
            None,
        )
        assert s.scalar(sa.select(sa.func.count()).where(Booking.status == BookingStatus.CANCELLED)) == 0
        # The first absence still stands: its warning stays.
        assert s.scalar(sa.select(sa.func.count()).select_from(Warning).where(Warning.revoked_at.is_(None))) == 1


def test_marking_twice_leaves_one_mark_and_one_audit_entry(factory, world, now, policy):
    with factory.begin() as s:
        mark_attended(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    entries = audit_count(factory)
    with pytest.raises(AlreadyMarked, match="already marked attended"), factory.begin() as s:
        mark_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    assert audit_count(factory) == entries == 1
    with factory() as s:
        assert s.get_one(Booking, world["past1"]).attended is True


@pytest.mark.parametrize(
    ("booking", "error", "message"),
    [
        ("future1", InvalidAction, "has not ended yet"),
        ("others", NotAllowed, "not one of your sessions"),
    ],
)
def test_refusals_write_nothing(factory, world, now, policy, booking, error, message):
    with pytest.raises(error, match=message), factory.begin() as s:
        mark_no_show(s, world[booking], actor=mentor_actor(world), now=now, policy=policy)
    assert audit_count(factory) == 0


def test_cancelled_and_missing_bookings_are_refused(factory, world, now, policy):
    with factory.begin() as s:
        cancelled = add_booking(s, world["mentor"], world["ana"], now - 2 * DAY, status=BookingStatus.CANCELLED)
    with pytest.raises(InvalidAction, match="cancelled"), factory.begin() as s:
        mark_no_show(s, cancelled, actor=mentor_actor(world), now=now, policy=policy)
    with pytest.raises(NotFound, match="booking 9999 does not exist"), factory.begin() as s:
        mark_no_show(s, 9999, actor=mentor_actor(world), now=now, policy=policy)


def test_system_can_never_mark_an_absence(factory, world, now, policy):
    system = Actor(ActorKind.SYSTEM, "mentorship:process-absences")
    with pytest.raises(NotAllowed, match="only a mentor or an admin"), factory.begin() as s:
        mark_no_show(s, world["past1"], actor=system, now=now, policy=policy)
    with factory() as s:
        assert s.get_one(Booking, world["past1"]).attended is None


def test_admin_marks_on_behalf_of_a_mentor_only_with_a_reason(factory, world, now, policy):
    with pytest.raises(InvalidInput, match="must give a reason"), factory.begin() as s:
        mark_no_show(s, world["others"], actor=ADMIN, now=now, policy=policy)
    with factory.begin() as s:
        mark_no_show(s, world["others"], actor=ADMIN, now=now, policy=policy, reason="mentor on leave")
    with factory() as s:
        entry = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "attendance.mark")).one()
        assert (entry.actor_kind, entry.actor_name, entry.reason) == (
            ActorKind.ADMIN,
            "root-admin",
            "mentor on leave",
        )
        assert entry.before == {
            "attended": None,
            "attendance_marked_by": None,
            "attendance_marked_by_name": None,
            "attendance_marked_at": None,
        }


def test_a_mentor_cannot_reset_a_system_mark(factory, world, now, policy):
    with factory.begin() as s:
        system_absence = add_booking(
            s, world["mentor"], world["ana"], now - 20 * DAY, attended=False, marked_by=ActorKind.SYSTEM
        )
    with pytest.raises(NotAllowed, match="only an admin can reset"), factory.begin() as s:
        reset_attendance(s, system_absence, actor=mentor_actor(world), now=now, policy=policy)


def test_a_failure_in_the_middle_of_the_cascade_leaves_nothing(factory, world, now, policy, monkeypatch):
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=mentor_actor(world), now=now, policy=policy)
    entries = audit_count(factory)

    import core.discipline

    real_record = core.discipline.record
    calls = {"n": 0}

    def failing_record(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the reprobation and the first cancellation
            raise RuntimeError("connection lost")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(core.discipline, "record", failing_record)
    with pytest.raises(RuntimeError), factory.begin() as s:
        mark_no_show(s, world["past2"], actor=mentor_actor(world), now=now, policy=policy)
    assert calls["n"] == 3
    with factory() as s:
        assert s.get_one(Booking, world["past2"]).attended is None
        assert s.scalar(sa.select(sa.func.count()).select_from(Reprobation)) == 0
        assert s.scalar(sa.select(sa.func.count()).where(Booking.status == BookingStatus.CANCELLED)) == 0
    assert audit_count(factory) == entries


def test_policy_numbers_are_configurable(factory, world, now):
    lenient = Policy(window_days=60, warning_at=1, reprobation_at=3)
    actor = mentor_actor(world)
    with factory.begin() as s:
        mark_no_show(s, world["past1"], actor=actor, now=now, policy=lenient)
    with factory.begin() as s:
        result = mark_no_show(s, world["past2"], actor=actor, now=now, policy=lenient)
    assert result.consequences.counts()["reprobations_issued"] == 0
    assert result.consequences.counts()["warnings_issued"] == 1
