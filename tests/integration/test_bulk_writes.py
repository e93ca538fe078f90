"""What makes a large report or revert quick must not change what it writes or leave anything behind.

Audit entries written in bulk keep their order among those recorded one by one, with the operation's
attribution; the cycle collector a report or a revert pauses is left as it was found, whatever happens.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

import core.misfire
from core.audit import Actor, Operation, new_entry, record, record_many
from core.config import Policy
from core.errors import NotAllowed
from core.misfire import report_misfire, revert_misfire
from core.models import ActorKind, AuditEntry
from tests.factories import add_booking, add_mentee, add_mentor

ADMIN = Actor(ActorKind.ADMIN, "root-admin")


def test_entries_written_in_bulk_keep_their_place_among_those_recorded_one_by_one(
    factory: sessionmaker[Session], now: datetime
):
    op = Operation(ADMIN, now, "why it was done")
    with factory.begin() as s:
        record(s, op, "first", "booking", 1, None, {"n": 1})
        record_many(
            s,
            [
                new_entry(op, "second", "booking", 2, {"n": 1}, {"n": 2}),
                new_entry(op, "third", "warning", 3, {"revoked_at": None}, None),
            ],
        )
        record(s, op, "fourth", "booking", 4, None, None)
        record_many(s, [])
    with factory() as s:
        rows = s.execute(
            sa.select(
                AuditEntry.action,
                AuditEntry.target_type,
                AuditEntry.target_id,
                AuditEntry.before,
                AuditEntry.after,
                AuditEntry.operation_id,
                AuditEntry.actor_kind,
                AuditEntry.actor_name,
                AuditEntry.reason,
                AuditEntry.at,
            ).order_by(AuditEntry.id)
        ).all()
    assert [tuple(r[:5]) for r in rows] == [
        ("first", "booking", 1, None, {"n": 1}),
        ("second", "booking", 2, {"n": 1}, {"n": 2}),
        ("third", "warning", 3, {"revoked_at": None}, None),
        ("fourth", "booking", 4, None, None),
    ]
    assert {tuple(r[5:]) for r in rows} == {(op.id, ActorKind.ADMIN, "root-admin", "why it was done", now)}


@pytest.fixture(params=[True, False], ids=["collector on", "collector off"])
def collector(request: pytest.FixtureRequest) -> Iterator[bool]:
    was = gc.isenabled()
    (gc.enable if request.param else gc.disable)()
    try:
        yield request.param
    finally:
        (gc.enable if was else gc.disable)()


def test_a_report_and_a_revert_leave_the_cycle_collector_as_they_found_it(
    sqlite_factory: sessionmaker[Session],
    now: datetime,
    policy: Policy,
    collector: bool,
    monkeypatch: pytest.MonkeyPatch,
):
    with sqlite_factory.begin() as s:
        maria, ana = add_mentor(s), add_mentee(s)
        add_booking(s, maria, ana, now - timedelta(days=2), attended=False, marked_by=ActorKind.SYSTEM)
    seen: list[bool] = []
    plan = core.misfire.plan_policies

    def planning(*args, **kwargs):
        seen.append(gc.isenabled())
        return plan(*args, **kwargs)

    monkeypatch.setattr(core.misfire, "plan_policies", planning)

    with sqlite_factory() as s:
        assert len(report_misfire(s, now=now).absences.system) == 1
    assert gc.isenabled() is collector
    with pytest.raises(NotAllowed), sqlite_factory.begin() as s:
        revert_misfire(s, actor=Actor(ActorKind.MENTOR, "maria", maria), now=now, reason="no", policy=policy)
    assert gc.isenabled() is collector
    with sqlite_factory.begin() as s:
        done = revert_misfire(s, actor=ADMIN, now=now, reason="misfire", policy=policy, apply=True)
    assert done.absences_reset and gc.isenabled() is collector
    assert seen == [False]  # paused while the revert worked
