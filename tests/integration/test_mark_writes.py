"""What a mark writes, now that it writes with set-based statements: the rows, their audit trail, and the
objects a caller already holds, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.attendance import mark_no_show, preview_no_show, reset_attendance
from core.audit import Actor
from core.config import Policy
from core.discipline import CANCELLED_BY_REPROBATION
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Reprobation
from tests.factories import add_booking, add_mentee, add_mentor

DAY = timedelta(days=1)


def test_a_booking_loaded_before_the_mark_shows_the_mark_and_then_the_reset(
    factory: sessionmaker[Session], now: datetime, policy: Policy
) -> None:
    with factory.begin() as s:
        mentor, ana = add_mentor(s), add_mentee(s)
        booking_id = add_booking(s, mentor, ana, now - 2 * DAY)
    maria = Actor(ActorKind.MENTOR, "maria", mentor)
    with factory.begin() as s:
        booking = s.get_one(Booking, booking_id)
        mark_no_show(s, booking_id, actor=maria, now=now, policy=policy)
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_by_name) == (
            False,
            ActorKind.MENTOR,
            "maria",
        )
        assert booking.attendance_marked_at == now
        reset_attendance(s, booking_id, actor=maria, now=now + DAY, policy=policy)
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_at) == (None, None, None)
    with factory() as s:
        assert s.get_one(Booking, booking_id).attended is None


def test_a_reprobation_that_replaces_a_lifted_one_cancels_again_what_it_restored(
    factory: sessionmaker[Session], now: datetime, policy: Policy
) -> None:
    """The automated reprobation no longer holds (its cause is a System absence) but the person's marks reach
    a reprobation of their own: the old one is lifted, its session restored, then cancelled by the new one,
    and the audit log tells each step with the state before and after."""
    with factory.begin() as s:
        mentor, ana = add_mentor(s), add_mentee(s)
        add_booking(s, mentor, ana, now - 20 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        system_absence = add_booking(s, mentor, ana, now - 15 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        second = add_booking(s, mentor, ana, now - 2 * DAY)
        cancelled = add_booking(s, mentor, ana, now + 3 * DAY, status=BookingStatus.CANCELLED)
        scheduled = add_booking(s, mentor, ana, now + 6 * DAY)
        automated = Reprobation(
            mentee_id=ana,
            booking_id=system_absence,
            issued_at=now - 15 * DAY,
            issued_by=ActorKind.SYSTEM,
            issued_by_name="mentorship:process-absences",
        )
        s.add(automated)
        s.flush()
        booking = s.get_one(Booking, cancelled)
        booking.cancelled_at, booking.cancelled_by = now - 15 * DAY, ActorKind.SYSTEM
        booking.cancelled_by_name = "mentorship:process-absences"
        booking.cancellation_reason, booking.reprobation_id = CANCELLED_BY_REPROBATION, automated.id
        automated_id = automated.id

    with factory.begin() as s:
        done = mark_no_show(
            s, second, actor=Actor(ActorKind.MENTOR, "maria", mentor), now=now, policy=policy
        ).consequences
    assert done.reprobations_lifted == [automated_id]
    assert done.bookings_restored == [cancelled]
    assert sorted(done.bookings_cancelled) == [cancelled, scheduled]
    (new_id,) = done.reprobations_issued

    with factory() as s:
        for booking_id in (cancelled, scheduled):
            booking = s.get_one(Booking, booking_id)
            assert (booking.status, booking.reprobation_id, booking.cancelled_by, booking.cancelled_by_name) == (
                BookingStatus.CANCELLED,
                new_id,
                ActorKind.MENTOR,
                "maria",
            )
            assert (booking.restored_at, booking.restored_by, booking.restored_by_name) == (None, None, None)
        assert s.get_one(Reprobation, automated_id).lifted_by is ActorKind.MENTOR
        trail = s.execute(
            sa.select(AuditEntry.action, AuditEntry.target_id, AuditEntry.before, AuditEntry.after)
            .where(
                AuditEntry.action.in_(["reprobation.lift", "reprobation.issue", "booking.restore", "booking.cancel"])
            )
            .order_by(AuditEntry.id)
        ).all()
    was_cancelled = {
        "status": "cancelled",
        "cancelled_by": "System",
        "cancelled_by_name": "mentorship:process-absences",
        "reprobation_id": automated_id,
    }
    now_cancelled = {
        "status": "cancelled",
        "cancelled_by": "Mentor",
        "cancelled_by_name": "maria",
        "reprobation_id": new_id,
    }
    assert [tuple(entry) for entry in trail] == [
        ("reprobation.lift", automated_id, {"lifted_at": None}, {"lifted_at": now.isoformat()}),
        ("booking.restore", cancelled, was_cancelled, {**was_cancelled, "status": "scheduled"}),
        ("reprobation.issue", new_id, None, {"mentee_id": ana, "booking_id": second}),
        ("booking.cancel", cancelled, {**was_cancelled, "status": "scheduled"}, now_cancelled),
        (
            "booking.cancel",
            scheduled,
            {"status": "scheduled", "cancelled_by": None, "cancelled_by_name": None, "reprobation_id": None},
            now_cancelled,
        ),
    ]


def test_the_preview_of_a_no_show_that_lifts_a_reprobation_names_what_it_restores(
    factory: sessionmaker[Session], now: datetime, policy: Policy
) -> None:
    with factory.begin() as s:
        mentor, ana = add_mentor(s), add_mentee(s, "Ana Ruiz")
        system_absence = add_booking(s, mentor, ana, now - 15 * DAY, attended=False, marked_by=ActorKind.SYSTEM)
        pending = add_booking(s, mentor, ana, now - 2 * DAY)
        cancelled = add_booking(s, mentor, ana, now + 3 * DAY, status=BookingStatus.CANCELLED)
        automated = Reprobation(mentee_id=ana, booking_id=system_absence, issued_at=now - 15 * DAY)
        s.add(automated)
        s.flush()
        s.get_one(Booking, cancelled).reprobation_id = automated.id
    with factory() as s:
        preview = preview_no_show(s, pending, actor=Actor(ActorKind.MENTOR, "maria", mentor), now=now, policy=policy)
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) == 0
    assert preview.message == "a warning to Ana Ruiz"
    assert preview.consequences.reprobations_lifted == [automated.id]
    assert preview.consequences.bookings_restored == [cancelled]
