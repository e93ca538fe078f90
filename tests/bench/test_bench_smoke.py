"""The benchmark's code path on a tiny history, so it cannot rot. Timings are never asserted here:
`make bench` judges them; this checks that every operation runs and is reported with its target."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench.generate import generate
from bench.run import ANALYTICS, OPERATIONS, PEAK_RSS, main
from core.config import Policy
from core.discipline import plan_policy
from core.models import ActorKind, Booking, BookingStatus, Mentee, Reprobation, Warning


def test_the_results_name_every_operation_with_its_figures_and_verdict(tmp_path: Path):
    out = tmp_path / "results.json"
    # The exit status depends on how fast this machine is right now: not asserted.
    main(["--size", "2000", "--samples", "3", "--out", str(out)])

    document = json.loads(out.read_text())
    operations = {o["operation"]: o for o in document["operations"]}
    assert list(operations) == list(OPERATIONS)
    for name, o in operations.items():
        assert "error" not in o, f"{name} failed: {o.get('error')}"
        assert {"n", "p50_ms", "p95_ms", "target", "met"} <= o.keys()
        assert isinstance(o["met"], bool)
        if name == PEAK_RSS:
            assert o["value"] > 0
        else:
            assert o["n"] >= 3
            assert 0 < o["p50_ms"] <= o["p95_ms"]
            assert 0 <= o["cpu_p50_ms"] <= o["cpu_p95_ms"]
    for name in ANALYTICS.values():
        assert operations[name]["baseline_ms"] > 0
        assert operations[name]["ratio"] > 0
        assert operations[name]["baseline_agrees"] is True, operations[name].get("note")
    assert document["all_met"] == all(o["met"] for o in operations.values())
    assert len(document["missed"]) == sum(not o["met"] for o in operations.values())
    assert document["machine"]["cpus"] >= 1
    assert "/" not in json.dumps(document["machine"]["cpu_model"])  # no local path slips into the results


def test_the_generated_history_is_what_the_policy_would_have_written(
    factory: sessionmaker[Session], now: datetime, policy: Policy
):
    engine = factory.kw["bind"]
    history = generate(engine, 1000, now=now, seed=3)

    with factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Booking)) == 1000
        assert history.pending and history.mentor_no_shows and history.system_absences and history.warnings
        double_booked = (
            sa.select(Booking.mentor_id, Booking.start_time)
            .group_by(Booking.mentor_id, Booking.start_time)
            .having(sa.func.count() > 1)
        )
        assert s.execute(double_booked).all() == []
        # The legacy command's marks are stamped System and only ever gave System discipline.
        assert s.scalar(sa.select(sa.func.count()).where(Booking.attendance_marked_by == ActorKind.SYSTEM))
        system_mentees = set(
            s.scalars(sa.select(Booking.mentee_id).where(Booking.attendance_marked_by == ActorKind.SYSTEM))
        )
        # Every mentee untouched by it holds exactly what applying the policy to their counted absences gives.
        for mentee_id in s.scalars(sa.select(Mentee.id).order_by(Mentee.id)):
            if mentee_id in system_mentees:
                continue
            plan = plan_policy(s, mentee_id, policy, now)
            assert plan.is_empty and not plan.cancel_bookings, plan
        # A reprobation in force left no future session of its mentee scheduled.
        for reprobation in s.scalars(sa.select(Reprobation).where(Reprobation.lifted_at.is_(None))):
            assert not s.scalar(
                sa.select(sa.func.count()).where(
                    Booking.mentee_id == reprobation.mentee_id,
                    Booking.status == BookingStatus.SCHEDULED,
                    Booking.start_time > reprobation.issued_at,
                )
            )
        # Discipline is attributed to the mentor who marked its cause, or to the legacy command.
        kinds = set(s.scalars(sa.select(Warning.issued_by).distinct()))
        assert kinds <= {ActorKind.MENTOR, ActorKind.SYSTEM}


def test_the_ratio_to_pandas_is_judged_from_a_million_bookings_on():
    from bench.run import Measurement, Target

    quick = Measurement("analytics: x", Target(150, min_ratio=20), samples=[10.0] * 20, baseline_ms=50.0, agrees=True)
    assert not quick.met  # 5x at a million bookings is a miss
    assert "only 5.0x faster than pandas" in quick.why_missed()
    quick.judge_ratio = False  # a smaller history: reported, not judged
    assert quick.met
    quick.agrees = False  # but the same figure is always required
    assert not quick.met
