"""The admins' audit queries on every backend: attribution, status, filters, paging, a reprobation's chain,
and the audit log grouped by operation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core import audit_views as views
from core.attendance import mark_no_show, reset_attendance
from core.audit import Actor
from core.audit_views import AuditFilter, Status
from core.errors import InvalidInput
from core.misfire import revert_misfire
from core.models import ActorKind, Booking, BookingStatus, Reprobation, Warning
from tests.factories import add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)
LEGACY = "mentorship:process-absences"
ADMIN = Actor(ActorKind.ADMIN, "root-admin")


@pytest.fixture
def world(factory: sessionmaker[Session], now: datetime, policy) -> dict[str, int]:
    """Ben: the legacy command's warning and reprobation, which cancelled two of his sessions.
    Ana: a warning from her mentor's no-show mark."""
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        otto = add_mentor(s, "Otto Other")
        ana = add_mentee(s, "Ana Ruiz")
        ben = add_mentee(s, "Ben Stone")
        first = add_booking(s, otto, ben, now - 12 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        second = add_booking(s, otto, ben, now - 8 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        at = now - 5 * DAY
        s.add(Warning(mentee_id=ben, booking_id=first, issued_at=at, issued_by=ActorKind.SYSTEM, issued_by_name=LEGACY))
        reprobation = Reprobation(
            mentee_id=ben, booking_id=second, issued_at=at, issued_by=ActorKind.SYSTEM, issued_by_name=LEGACY
        )
        s.add(reprobation)
        s.flush()
        cancelled = []
        for days in (3, 6):
            booking = s.get_one(Booking, add_booking(s, otto, ben, now + days * DAY))
            booking.status = BookingStatus.CANCELLED
            booking.cancelled_at, booking.cancelled_by, booking.cancelled_by_name = at, ActorKind.SYSTEM, LEGACY
            booking.reprobation_id = reprobation.id
            cancelled.append(booking.id)
        ana_absence = add_booking(s, maria, ana, now - 2 * DAY)
    with factory.begin() as s:
        mark_no_show(s, ana_absence, actor=Actor(ActorKind.MENTOR, "maria", maria), now=now, policy=policy)
    return {
        "maria": maria,
        "otto": otto,
        "ana": ana,
        "ben": ben,
        "reprobation": reprobation.id,
        "ben_absence": second,
        "ana_absence": ana_absence,
        "cancelled1": cancelled[0],
        "cancelled2": cancelled[1],
    }


def test_each_list_carries_attribution_cause_and_status(factory, world):
    with factory() as s:
        [reprobation] = views.list_reprobations(s).rows
        cancellations = views.list_cancellations(s).rows
        warnings = views.list_warnings(s).rows
    assert (reprobation.attributed_kind, reprobation.attributed_name, reprobation.cause_booking_id) == (
        "System",
        LEGACY,
        world["ben_absence"],
    )
    assert (reprobation.mentee, reprobation.mentor, reprobation.status, reprobation.sessions_cancelled) == (
        "Ben Stone",
        "Otto Other",
        Status.ACTIVE,
        2,
    )
    assert {(c.id, c.cause_reprobation_id, c.attributed_kind, c.status) for c in cancellations} == {
        (world["cancelled1"], world["reprobation"], "System", Status.ACTIVE),
        (world["cancelled2"], world["reprobation"], "System", Status.ACTIVE),
    }
    assert {(w.mentee, w.attributed_kind, w.attributed_name) for w in warnings} == {
        ("Ben Stone", "System", LEGACY),
        ("Ana Ruiz", "Mentor", "maria"),
    }


def test_filters_by_attribution_mentor_mentee_and_dates(factory, world, now):
    with factory() as s:
        assert [w.mentee for w in views.list_warnings(s, AuditFilter(frozenset({"Mentor"}))).rows] == ["Ana Ruiz"]
        assert views.list_warnings(s, AuditFilter(frozenset({views.UNATTRIBUTED}))).total == 0
        assert views.list_warnings(s, AuditFilter(mentor_id=world["otto"])).total == 1
        assert views.list_cancellations(s, AuditFilter(mentee_id=world["ana"])).total == 0
        # The legacy rows were written 5 days ago, Ana's warning now.
        recent = AuditFilter(since=now - DAY)
        assert [w.mentee for w in views.list_warnings(s, recent).rows] == ["Ana Ruiz"]
        assert views.list_reprobations(s, recent).total == 0
        assert views.list_reprobations(s, AuditFilter(until=now - DAY)).total == 1
        assert [c.name for c in views.mentee_choices(s)] == ["Ana Ruiz", "Ben Stone"]
    with pytest.raises(InvalidInput, match="unknown attribution Robot"):
        AuditFilter(frozenset({"Robot"}))
    with pytest.raises(InvalidInput, match="the date range is empty"):
        AuditFilter(since=now, until=now - DAY)


def test_pages_hold_the_rows_newest_first_and_count_them_all(factory, world):
    with factory() as s:
        first = views.list_cancellations(s, limit=1)
        second = views.list_cancellations(s, offset=1, limit=1)
    assert (first.total, second.total) == (2, 2)
    assert [first.rows[0].id, second.rows[0].id] == [world["cancelled2"], world["cancelled1"]]


def test_the_chain_of_a_reprobation_and_the_status_after_a_revert(factory, world, now, policy):
    with factory.begin() as s:
        revert_misfire(s, actor=ADMIN, now=now, reason="legacy misfire", policy=policy, apply=True)
    with factory() as s:
        chain = views.reprobation_chain(s, world["reprobation"])
    assert (chain.absence.booking_id, chain.absence.attended, chain.absence.reverted_at) == (
        world["ben_absence"],
        None,  # the revert sent the absence back to pending
        now,
    )
    assert chain.reprobation.status is Status.LIFTED
    assert (chain.reprobation.status_by_kind, chain.reprobation.status_by_name) == ("Admin", "root-admin")
    assert [w.status for w in chain.warnings] == [Status.REVOKED]
    assert [(b.booking_id, b.status, b.restored_by) for b in chain.cancelled] == [
        (world["cancelled1"], "scheduled", "Admin"),
        (world["cancelled2"], "scheduled", "Admin"),
    ]
    with factory() as s:
        assert {c.status for c in views.list_cancellations(s).rows} == {Status.RESTORED}


def test_the_audit_log_grouped_by_operation_with_actor_and_action_filters(factory, world, now, policy):
    maria = Actor(ActorKind.MENTOR, "maria", world["maria"])
    with factory.begin() as s:
        reset_attendance(s, world["ana_absence"], actor=maria, now=now + DAY, policy=policy)
    with factory() as s:
        everything = views.list_operations(s)
        resets = views.list_operations(s, action="attendance.reset")
        by_maria = views.list_operations(s, actor_name="maria")
        nobody = views.list_operations(s, actor_name="root-admin")
        [reset] = resets.rows
        entries = views.operation_entries(s, reset.operation_id)
        assert views.audit_actions(s) == ["attendance.mark", "attendance.reset", "warning.issue", "warning.revoke"]
        assert views.audit_actors(s) == ["maria"]
    assert everything.total == 2
    assert [o.actions for o in everything.rows] == [
        {"attendance.reset": 1, "warning.revoke": 1},  # newest first
        {"attendance.mark": 1, "warning.issue": 1},
    ]
    assert (reset.actor_kind, reset.actor_name, reset.entries, reset.at) == ("Mentor", "maria", 2, now + DAY)
    assert by_maria.total == 2 and nobody.total == 0
    assert [e.action for e in entries] == ["attendance.reset", "warning.revoke"]
    assert entries[0].before is not None and entries[0].before["attended"] is False
