"""The automated damage, reported as a chain and reverted, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.audit import Actor
from core.discipline import Conflict, ConflictReason
from core.errors import InvalidInput, NotAllowed, NotFound
from core.misfire import report_misfire, revert_misfire
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation, Warning
from tests.factories import HOUR, add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)
ADMIN = Actor(ActorKind.ADMIN, "root-admin")
COMMAND = "mentorship:process-absences"


def absence(s: Session, mentor: int, mentee: int, start: datetime, by: ActorKind | None) -> int:
    name = {ActorKind.SYSTEM: COMMAND, ActorKind.MENTOR: "maria", None: None}[by]
    return add_booking(s, mentor, mentee, start, attended=False, marked_by=by, marked_by_name=name)


def warning(s: Session, mentee: int, cause: int, at: datetime, by: ActorKind) -> int:
    row = Warning(mentee_id=mentee, booking_id=cause, issued_at=at, issued_by=by)
    s.add(row)
    s.flush()
    return row.id


def reprobation(s: Session, mentee: int, cause: int, at: datetime, by: ActorKind) -> int:
    row = Reprobation(mentee_id=mentee, booking_id=cause, issued_at=at, issued_by=by)
    s.add(row)
    s.flush()
    return row.id


def cancelled(s: Session, mentor: int, mentee: int, start: datetime, by_reprobation: int, at: datetime) -> int:
    booking_id = add_booking(s, mentor, mentee, start, status=BookingStatus.CANCELLED)
    booking = s.get_one(Booking, booking_id)
    booking.cancelled_at, booking.cancelled_by, booking.cancelled_by_name = at, ActorKind.SYSTEM, COMMAND
    booking.cancellation_reason, booking.reprobation_id = "reprobation", by_reprobation
    s.flush()
    return booking_id


@pytest.fixture
def world(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """What the legacy command left, mentee by mentee (absences are marked when their session ends)."""
    with factory.begin() as s:
        maria = add_mentor(s, "Maria Mentor")
        gone = add_mentor(s, "Gus Gone", active=False)
        ana, bea, carl, dora, hugo = (add_mentee(s, n) for n in ("Ana R", "Bea L", "Carl U", "Dora S", "Hugo H"))
        w = {"maria": maria, "ana": ana, "bea": bea, "carl": carl, "dora": dora, "hugo": hugo}

        # Ana: a mentor's no-show and its warning, then the command's no-show, which reprobated her.
        w["ana_mentor_absence"] = absence(s, maria, ana, now - 20 * DAY, ActorKind.MENTOR)
        w["ana_mentor_warning"] = warning(s, ana, w["ana_mentor_absence"], now - 20 * DAY, ActorKind.MENTOR)
        w["ana_system_absence"] = absence(s, maria, ana, now - 10 * DAY, ActorKind.SYSTEM)
        at = now - 10 * DAY + 2 * HOUR
        w["ana_reprobation"] = r = reprobation(s, ana, w["ana_system_absence"], at, ActorKind.SYSTEM)
        w["restorable"] = cancelled(s, maria, ana, now + 2 * DAY, r, at)
        w["slot_taken"] = cancelled(s, maria, ana, now + 3 * DAY, r, at)
        w["bea_in_the_slot"] = add_booking(s, maria, bea, now + 3 * DAY + HOUR / 2)
        w["in_past"] = cancelled(s, maria, ana, now - DAY, r, at)
        w["mentor_inactive"] = cancelled(s, gone, ana, now + 4 * DAY, r, at)

        # Bea: an old System absence and its warning (outside a 15-day window).
        w["bea_system_absence"] = absence(s, maria, bea, now - 40 * DAY, ActorKind.SYSTEM)
        w["bea_warning"] = warning(s, bea, w["bea_system_absence"], now - 40 * DAY, ActorKind.SYSTEM)

        # Carl: an absence nobody is recorded as marking (suspected), and its warning.
        w["carl_unattributed_absence"] = absence(s, maria, carl, now - 5 * DAY, None)
        w["carl_warning"] = warning(s, carl, w["carl_unattributed_absence"], now - 5 * DAY, ActorKind.SYSTEM)

        # Dora: the command's no-show first (a warning), then a mentor's no-show the command reprobated.
        w["dora_system_absence"] = absence(s, maria, dora, now - 12 * DAY, ActorKind.SYSTEM)
        w["dora_system_warning"] = warning(s, dora, w["dora_system_absence"], now - 12 * DAY, ActorKind.SYSTEM)
        w["dora_mentor_absence"] = absence(s, maria, dora, now - 6 * DAY, ActorKind.MENTOR)
        at = now - 6 * DAY + 2 * HOUR
        w["dora_reprobation"] = r = reprobation(s, dora, w["dora_mentor_absence"], at, ActorKind.SYSTEM)
        w["dora_restorable"] = cancelled(s, maria, dora, now + 5 * DAY, r, at)

        # Hugo: a System absence, and a reprobation a mentor issued herself: a human decision.
        w["hugo_system_absence"] = absence(s, maria, hugo, now - 30 * DAY, ActorKind.SYSTEM)
        w["hugo_mentor_absence"] = absence(s, maria, hugo, now - 7 * DAY, ActorKind.MENTOR)
        w["hugo_warning"] = warning(s, hugo, w["hugo_mentor_absence"], now - 7 * DAY, ActorKind.MENTOR)
        at = now - 7 * DAY + 2 * HOUR
        w["hugo_reprobation"] = r = reprobation(s, hugo, w["hugo_mentor_absence"], at, ActorKind.MENTOR)
        w["hugo_cancelled"] = cancelled(s, maria, hugo, now + 6 * DAY, r, at)
        return w


def audit_entries(factory: sessionmaker[Session]) -> list[AuditEntry]:
    with factory() as s:
        return list(s.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)))


def revert(factory, now, policy, *, apply=True, actor=ADMIN, reason="process-absences misfire", **scope):
    with factory.begin() as s:
        return revert_misfire(s, actor=actor, now=now, reason=reason, policy=policy, apply=apply, **scope)


def test_the_report_shows_each_mentee_s_chain_without_what_people_issued(factory, world, now):
    with factory() as s:
        report = report_misfire(s, now=now)
    system = [a.booking_id for a in report.absences.system]
    assert system == sorted(world[k] for k in ("ana_system_absence", "bea_system_absence", "dora_system_absence",
                                                "hugo_system_absence"))  # fmt: skip
    assert report.absences.unattributed == ()
    # The mentors' warnings and Hugo's mentor-issued reprobation are not the command's doing.
    assert {w.id for w in report.warnings} == {world["bea_warning"], world["dora_system_warning"]}
    assert {r.id for r in report.reprobations} == {world["ana_reprobation"], world["dora_reprobation"]}
    assert len(report.cancelled_bookings) == 5
    ana = next(m for m in report.mentees if m.mentee_id == world["ana"])
    assert ana.mentee == "Ana R"
    assert ana.absence_booking_ids == (world["ana_system_absence"],)
    assert ana.warning_ids == ()
    assert ana.reprobation_ids == (world["ana_reprobation"],)
    assert set(ana.cancelled_booking_ids) == {world[k] for k in ("restorable", "slot_taken", "in_past",
                                                                  "mentor_inactive")}  # fmt: skip
    assert ana.restorable_booking_ids == (world["restorable"],)
    assert set(ana.conflicts) == {
        Conflict(world["slot_taken"], ConflictReason.SLOT_TAKEN),
        Conflict(world["in_past"], ConflictReason.IN_PAST),
        Conflict(world["mentor_inactive"], ConflictReason.MENTOR_INACTIVE),
    }
    hugo = next(m for m in report.mentees if m.mentee_id == world["hugo"])
    assert (hugo.reprobation_ids, hugo.cancelled_booking_ids) == ((), ())


def test_since_and_until_bound_when_the_absence_was_marked(factory, world, now):
    with factory() as s:
        recent = report_misfire(s, now=now, since=now - 15 * DAY)
        older = report_misfire(s, now=now, until=now - 15 * DAY)
    assert {m.mentee_id for m in recent.mentees} == {world["ana"], world["dora"]}
    assert {m.mentee_id for m in older.mentees} == {world["bea"], world["hugo"]}
    with pytest.raises(InvalidInput, match="must be before"), factory() as s:
        report_misfire(s, now=now, since=now, until=now - DAY)


def test_unattributed_absences_only_with_the_flag(factory, world, now, policy):
    with factory() as s:
        assert world["carl"] not in {m.mentee_id for m in report_misfire(s, now=now).mentees}
        suspected = report_misfire(s, now=now, include_unattributed=True)
    assert [a.booking_id for a in suspected.absences.unattributed] == [world["carl_unattributed_absence"]]
    carl = next(m for m in suspected.mentees if m.mentee_id == world["carl"])
    assert carl.warning_ids == (world["carl_warning"],)

    revert(factory, now, policy)
    with factory() as s:
        assert s.get_one(Booking, world["carl_unattributed_absence"]).attended is False
    result = revert(factory, now, policy, include_unattributed=True)
    assert result.absences_reset == (world["carl_unattributed_absence"],)
    assert result.warnings_revoked == (world["carl_warning"],)


def test_a_mentor_s_absence_keeps_its_warning_and_the_reprobation_is_lifted(factory, world, now, policy):
    result = revert(factory, now, policy)
    assert result.operation_id is not None
    assert set(result.reprobations_lifted) == {world["ana_reprobation"], world["dora_reprobation"]}
    with factory() as s:
        for mentee in ("ana", "dora"):
            active = s.scalars(
                sa.select(Warning).where(Warning.mentee_id == world[mentee], Warning.revoked_at.is_(None))
            ).all()
            # One warning each, for the absence a mentor marked.
            assert [w.booking_id for w in active] == [world[f"{mentee}_mentor_absence"]]
            assert (
                s.scalar(
                    sa.select(sa.func.count())
                    .select_from(Reprobation)
                    .where(Reprobation.mentee_id == world[mentee], Reprobation.lifted_at.is_(None))
                )
                == 0
            )
        lifted = s.get_one(Reprobation, world["ana_reprobation"])
        assert (lifted.lifted_at, lifted.lifted_by, lifted.lifted_by_name) == (now, ActorKind.ADMIN, "root-admin")
        reset = s.get_one(Booking, world["ana_system_absence"])
        assert (reset.attended, reset.attendance_marked_by, reset.attendance_marked_by_name) == (None, None, None)
        assert (reset.attendance_marked_at, reset.attendance_reverted_at) == (None, now)
        # The mentor's own marks stand.
        assert s.get_one(Booking, world["ana_mentor_absence"]).attended is False


def test_cancelled_bookings_are_restored_unless_in_conflict(factory, world, now, policy):
    result = revert(factory, now, policy, mentee_ids=[world["ana"]])
    assert result.bookings_restored == (world["restorable"],)
    assert set(result.conflicts) == {
        Conflict(world["slot_taken"], ConflictReason.SLOT_TAKEN),
        Conflict(world["in_past"], ConflictReason.IN_PAST),
        Conflict(world["mentor_inactive"], ConflictReason.MENTOR_INACTIVE),
    }
    with factory() as s:
        status = {k: s.get_one(Booking, world[k]).status for k in ("restorable", "slot_taken", "in_past",
                                                                    "mentor_inactive", "bea_in_the_slot")}  # fmt: skip
        restored = s.get_one(Booking, world["restorable"])
    assert status == {
        "restorable": BookingStatus.SCHEDULED,
        "slot_taken": BookingStatus.CANCELLED,
        "in_past": BookingStatus.CANCELLED,
        "mentor_inactive": BookingStatus.CANCELLED,
        "bea_in_the_slot": BookingStatus.SCHEDULED,
    }
    assert (restored.restored_by, restored.restored_by_name) == (ActorKind.ADMIN, "root-admin")


def test_the_mentee_option_limits_the_scope(factory, world, now, policy):
    result = revert(factory, now, policy, mentee_ids=[world["dora"]])
    assert result.mentee_ids == (world["dora"],)
    assert result.absences_reset == (world["dora_system_absence"],)
    with factory() as s:
        assert s.get_one(Booking, world["ana_system_absence"]).attended is False
        assert s.get_one(Reprobation, world["ana_reprobation"]).lifted_at is None
    with pytest.raises(NotFound, match="no mentee with id 999"):
        revert(factory, now, policy, mentee_ids=[999])


def test_what_a_person_issued_is_never_touched(factory, world, now, policy):
    result = revert(factory, now, policy)
    assert world["hugo_system_absence"] in result.absences_reset
    with factory() as s:
        human = s.get_one(Reprobation, world["hugo_reprobation"])
        assert (human.lifted_at, human.issued_by) == (None, ActorKind.MENTOR)
        assert s.get_one(Booking, world["hugo_cancelled"]).status is BookingStatus.CANCELLED
        assert s.get_one(Warning, world["hugo_warning"]).revoked_at is None
        assert s.get_one(Warning, world["ana_mentor_warning"]).revoked_at is None


def test_the_dry_run_is_exactly_what_the_apply_does(factory, world, now, policy):
    dry = revert(factory, now, policy, apply=False, include_unattributed=True)
    assert dry.operation_id is None
    assert audit_entries(factory) == []
    with factory() as s:
        assert s.get_one(Booking, world["ana_system_absence"]).attended is False
    applied = revert(factory, now, policy, include_unattributed=True)
    assert applied.operation_id is not None
    assert replace(applied, operation_id=None, applied=False) == dry
    # Dora's mentor-marked absence now has the warning it deserves.
    assert world["dora_mentor_absence"] in dry.warnings_issued_for


def test_a_second_revert_finds_nothing_to_do(factory, world, now, policy):
    revert(factory, now, policy)
    entries = len(audit_entries(factory))
    again = revert(factory, now + HOUR, policy)
    assert again.is_empty
    assert again.operation_id is None
    assert set(again.counts().values()) == {0}
    assert len(audit_entries(factory)) == entries
    with factory() as s:
        assert report_misfire(s, now=now + HOUR).mentees == ()


def test_one_operation_names_the_admin_and_the_reason(factory, world, now, policy):
    result = revert(factory, now, policy, reason="the hourly job marked pending sessions absent")
    entries = audit_entries(factory)
    assert {(e.operation_id, e.actor_kind, e.actor_name, e.reason) for e in entries} == {
        (result.operation_id, ActorKind.ADMIN, "root-admin", "the hourly job marked pending sessions absent")
    }
    resets = [e for e in entries if e.action == "attendance.revert"]
    assert sorted(e.target_id for e in resets) == sorted(result.absences_reset)
    ana = next(e for e in resets if e.target_id == world["ana_system_absence"])
    assert ana.before is not None and ana.after is not None
    assert (ana.before["attended"], ana.before["attendance_marked_by"]) == (False, "System")
    assert (ana.after["attended"], ana.after["attendance_marked_by"]) == (None, None)
    actions = {e.action for e in entries}
    assert {"reprobation.lift", "booking.restore", "warning.revoke"} <= actions


def test_a_failure_in_the_middle_of_a_revert_leaves_nothing(factory, world, now, policy, monkeypatch):
    import core.discipline

    real_record = core.discipline.record
    calls = {"n": 0}

    def failing_record(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the absences were reset and some of the discipline written
            raise RuntimeError("connection lost")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(core.discipline, "record", failing_record)
    with pytest.raises(RuntimeError, match="connection lost"):
        revert(factory, now, policy)
    assert calls["n"] == 3
    assert audit_entries(factory) == []
    with factory() as s:
        assert s.get_one(Booking, world["ana_system_absence"]).attended is False
        assert s.get_one(Reprobation, world["ana_reprobation"]).lifted_at is None
        assert s.get_one(Warning, world["dora_system_warning"]).revoked_at is None
        assert s.get_one(Booking, world["restorable"]).status is BookingStatus.CANCELLED


@pytest.mark.parametrize(
    ("actor", "reason", "error", "message"),
    [
        (Actor(ActorKind.MENTOR, "maria", 1), "misfire", NotAllowed, "only an admin may revert"),
        (Actor(ActorKind.SYSTEM, COMMAND), "misfire", NotAllowed, "only an admin may revert"),
        (ADMIN, "   ", InvalidInput, "needs a reason"),
        (ADMIN, None, InvalidInput, "needs a reason"),
    ],
)
@pytest.mark.parametrize("apply", [False, True])
def test_refusals_write_nothing(factory, world, now, policy, actor, reason, error, message, apply):
    with pytest.raises(error, match=message):
        revert(factory, now, policy, actor=actor, reason=reason, apply=apply)
    assert audit_entries(factory) == []
    with factory() as s:
        assert s.get_one(Booking, world["ana_system_absence"]).attended is False


def test_two_restores_into_one_slot_restore_only_the_first(factory, now, policy):
    """Each cancelled booking alone finds the slot free; restored together they would double-book the mentor."""
    with factory.begin() as s:
        maria = add_mentor(s)
        first, second = add_mentee(s, "Eva One"), add_mentee(s, "Fay Two")
        slot = {}
        for mentee in (first, second):
            cause = absence(s, maria, mentee, now - 3 * DAY, ActorKind.SYSTEM)
            r = reprobation(s, mentee, cause, now - 2 * DAY, ActorKind.SYSTEM)
            slot[mentee] = cancelled(s, maria, mentee, now + 2 * DAY, r, now - 2 * DAY)
    with factory() as s:
        report = report_misfire(s, now=now)
    assert [c.conflict for c in report.cancelled_bookings] == [None, ConflictReason.SLOT_TAKEN]
    result = revert(factory, now, policy)
    assert result.bookings_restored == (slot[first],)
    assert result.conflicts == (Conflict(slot[second], ConflictReason.SLOT_TAKEN),)
