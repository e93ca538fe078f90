"""Applying the policy to what a mentee already has: only the difference is written."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from core.audit import Actor, Operation
from core.discipline import apply_policy
from core.models import ActorKind, AuditEntry, Reprobation
from tests.factories import add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)
ADMIN = Actor(ActorKind.ADMIN, "root-admin")


def test_applying_twice_writes_nothing_the_second_time(factory, now, policy):
    with factory.begin() as s:
        mentor, ana = add_mentor(s), add_mentee(s)
        add_booking(s, mentor, ana, now - 9 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        add_booking(s, mentor, ana, now - 4 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        add_booking(s, mentor, ana, now + 3 * DAY)
    with factory.begin() as s:
        first = apply_policy(s, ana, policy, Operation(ADMIN, now, "catch up"))
    assert first.counts() == {
        "warnings_issued": 1,
        "warnings_revoked": 0,
        "reprobations_issued": 1,
        "reprobations_lifted": 0,
        "bookings_cancelled": 1,
        "bookings_restored": 0,
    }
    with factory() as s:
        entries = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
    with factory.begin() as s:
        second = apply_policy(s, ana, policy, Operation(ADMIN, now + DAY, "again"))
    assert set(second.counts().values()) == {0}
    with factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == entries


def test_only_one_reprobation_survives_imported_duplicates(factory, now, policy):
    """Legacy history can hold two active reprobations; the one a counted absence supports is kept."""
    with factory.begin() as s:
        mentor, ana = add_mentor(s), add_mentee(s)
        add_booking(s, mentor, ana, now - 9 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        human_cause = add_booking(s, mentor, ana, now - 4 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        system_cause = add_booking(s, mentor, ana, now - 2 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        for cause, kind in ((system_cause, ActorKind.SYSTEM), (human_cause, ActorKind.MENTOR)):
            s.add(Reprobation(mentee_id=ana, booking_id=cause, issued_at=now - DAY, issued_by=kind))
    with factory.begin() as s:
        done = apply_policy(s, ana, policy, Operation(ADMIN, now, "tidy"))
    with factory() as s:
        active = s.scalars(sa.select(Reprobation).where(Reprobation.lifted_at.is_(None))).all()
    assert [r.booking_id for r in active] == [human_cause]
    assert len(done.reprobations_lifted) == 1
    assert done.reprobations_issued == []
