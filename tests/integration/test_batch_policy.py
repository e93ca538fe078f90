"""Planning and writing the policy for many mentees at once (a revert) gives what doing it mentee by mentee gives.

`plan_policies` / `write_plans` are the set-based forms of `plan_policy` / `write_plan` that keep a revert of a
large misfire quick. They are checked against the one-by-one forms on a generated history that holds every kind
of discipline: mentor and System warnings, mentor and System reprobations, and the sessions they cancelled.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench.generate import generate
from core.audit import Actor, Operation
from core.config import Policy
from core.discipline import PolicyPlan, plan_policies, plan_policy, write_plan, write_plans
from core.models import ActorKind, AuditEntry, Booking, Mentee, Reprobation, Warning

ADMIN = Actor(ActorKind.ADMIN, "root-admin")


def _normalised(plans: list[PolicyPlan]) -> list[PolicyPlan]:
    # Which of a mentee's warnings comes first is the database's choice in the one-by-one query.
    return [replace(p, revoke_warnings=tuple(sorted(p.revoke_warnings))) for p in plans]


def test_the_plans_made_together_are_the_plans_made_one_by_one(
    factory: sessionmaker[Session], now: datetime, policy: Policy
):
    generate(factory.kw["bind"], 1000, now=now, seed=5)
    with factory() as s:
        mentees = list(s.scalars(sa.select(Mentee.id).order_by(Mentee.id)))
        for protect in (True, False):
            together = plan_policies(s, mentees, policy, now, protect_person_issued=protect)
            one_by_one = [plan_policy(s, m, policy, now, protect_person_issued=protect) for m in mentees]
            assert _normalised(together) == _normalised(one_by_one)
        # The history holds what a revert undoes, so the comparison above compared something.
        reverting = [p for p in plan_policies(s, mentees, policy, now, protect_person_issued=True) if not p.is_empty]
        assert any(p.revoke_warnings for p in reverting)
        assert any(p.lift_reprobations and p.restore_bookings for p in reverting)
        assert any(p.conflicts for p in reverting)


def _written(s: Session, op_id: str) -> dict[str, Any]:
    return {
        "warnings": s.execute(
            sa.select(Warning.id, Warning.revoked_at, Warning.revoked_by, Warning.revoked_by_name).order_by(Warning.id)
        ).all(),
        "reprobations": s.execute(
            sa.select(
                Reprobation.id, Reprobation.lifted_at, Reprobation.lifted_by, Reprobation.lifted_by_name
            ).order_by(Reprobation.id)
        ).all(),
        "bookings": s.execute(
            sa.select(
                Booking.id,
                Booking.status,
                Booking.restored_at,
                Booking.restored_by,
                Booking.restored_by_name,
                Booking.cancelled_at,
                Booking.reprobation_id,
            ).order_by(Booking.id)
        ).all(),
        "audit": s.execute(
            sa.select(
                AuditEntry.action, AuditEntry.target_type, AuditEntry.target_id, AuditEntry.before, AuditEntry.after
            )
            .where(AuditEntry.operation_id == op_id)
            .order_by(AuditEntry.id)
        ).all(),
    }


def test_the_plans_written_together_write_what_writing_them_one_by_one_writes(
    factory: sessionmaker[Session], now: datetime, policy: Policy
):
    generate(factory.kw["bind"], 1000, now=now, seed=5)
    written = []
    for together in (True, False):
        with factory() as s:
            mentees = list(s.scalars(sa.select(Mentee.id).order_by(Mentee.id)))
            plans = plan_policies(s, mentees, policy, now, protect_person_issued=True)
            op = Operation(ADMIN, now, "undo the automated damage", id="same-operation")
            if together:
                done = write_plans(s, plans, op)
            else:
                for plan in plans:
                    write_plan(s, plan, op)
            s.flush()
            written.append(_written(s, op.id))
            s.rollback()
    assert written[0] == written[1]
    assert done.warnings_revoked and done.reprobations_lifted and done.bookings_restored
    assert len(written[0]["audit"]) == len(done.warnings_revoked) + len(done.reprobations_lifted) + len(
        done.bookings_restored
    ) + len(done.warnings_issued) + len(done.reprobations_issued) + len(done.bookings_cancelled)
