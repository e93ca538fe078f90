"""The mentor's page: the pending sessions, a no-show through its confirmation, a reset."""

from __future__ import annotations

import sqlalchemy as sa

from core.models import ActorKind, AuditEntry, Booking, Warning
from tests.app.conftest import choose_row, signed_in_as, texts

PENDING = "mentor_pending_table_0"


def test_the_pending_sessions_oldest_first_with_the_reverted_one_flagged(world, app):
    at = signed_in_as(app, "mentor")
    assert at.metric[0].value == "3"  # pending sessions
    assert at.metric[1].value == "19 d 23 h"  # the oldest ended 20 days ago, after its hour
    pending = at.dataframe(key=PENDING).value
    assert list(pending["Booking"]) == [world.ids["reverted"], world.ids["oldest_pending"], world.ids["second_pending"]]
    assert list(pending["Reverted"]) == [True, False, False]
    assert list(pending["Mentee"]) == ["Cy Ng", "Ana Ruiz", "Ana Ruiz"]


def test_a_no_show_shows_its_consequence_and_waits_for_confirmation(world, app):
    at = choose_row(signed_in_as(app, "mentor"), PENDING, 1)  # Ana's oldest pending session
    at.button(key="mentor_no_show_button").click().run()
    assert texts(at.warning) == ["Marking this session no-show means a warning to Ana Ruiz. Confirm?"]
    with world.factory() as s:
        assert s.get_one(Booking, world.ids["oldest_pending"]).attended is None  # nothing written yet

    at.button(key="mentor_confirm_no_show_button").click().run()
    assert not at.exception
    [message] = texts(at.success)
    assert message.endswith(": marked no-show. 1 warning issued.")
    assert message.startswith("Ana Ruiz's session of ")
    assert at.metric[0].value == "2"
    assert world.ids["oldest_pending"] not in list(at.dataframe(key=PENDING.replace("_0", "_1")).value["Booking"])
    with world.factory() as s:
        booking = s.get_one(Booking, world.ids["oldest_pending"])
        assert (booking.attended, booking.attendance_marked_by, booking.attendance_marked_by_name) == (
            False,
            ActorKind.MENTOR,
            "mentor",
        )
        assert s.scalar(sa.select(sa.func.count()).select_from(Warning).where(Warning.mentee_id == world.ids["ana"]))

    # The second absence would reprobate Ana and cancel her two future sessions: the preview says so.
    at = choose_row(at, PENDING.replace("_0", "_1"), 1)
    at.button(key="mentor_no_show_button").click().run()
    assert texts(at.warning) == [
        "Marking this session no-show means Ana Ruiz will be reprobated and 2 future sessions cancelled. Confirm?"
    ]
    at.button(key="mentor_cancel_no_show_button").click().run()
    assert not at.warning
    with world.factory() as s:
        assert s.get_one(Booking, world.ids["second_pending"]).attended is None


def test_a_reset_sends_the_session_back_to_pending(world, app):
    at = choose_row(signed_in_as(app, "mentor"), "mentor_marked_table_0", 0)
    at.button(key="mentor_reset_button").click().run()
    assert not at.exception
    [message] = texts(at.success)
    assert message.endswith(": reset to pending.")
    assert at.metric[0].value == "4"
    assert world.ids["marked"] in list(at.dataframe(key=PENDING.replace("_0", "_1")).value["Booking"])
    with world.factory() as s:
        booking = s.get_one(Booking, world.ids["marked"])
        assert (booking.attended, booking.attendance_marked_by) == (None, None)
        assert (
            s.scalar(
                sa.select(AuditEntry.actor_name).where(
                    AuditEntry.action == "attendance.reset", AuditEntry.target_id == world.ids["marked"]
                )
            )
            == "mentor"
        )


def test_a_refusal_from_the_core_is_shown_as_an_error(world, app):
    at = choose_row(signed_in_as(app, "mentor"), PENDING, 1)
    # Someone else marks the session between the page being drawn and the click.
    with world.factory.begin() as s:
        s.get_one(Booking, world.ids["oldest_pending"]).attended = True
        s.get_one(Booking, world.ids["oldest_pending"]).attendance_marked_by = ActorKind.ADMIN
    at.button(key="mentor_attended_button").click().run()
    assert not at.exception
    [error] = texts(at.error)
    assert "already marked attended" in error and "reset it first" in error


def test_a_database_failure_mid_action_is_shown_as_an_error_and_saves_nothing(world, app, monkeypatch):
    import core.attendance

    def deadlock(*args, **kwargs):
        raise sa.exc.OperationalError("UPDATE bookings ...", {}, Exception("deadlock detected"))

    monkeypatch.setattr(core.attendance, "write_plan", deadlock)
    at = choose_row(signed_in_as(app, "mentor"), PENDING, 1)
    at.button(key="mentor_no_show_button").click().run()
    at.button(key="mentor_confirm_no_show_button").click().run()
    assert not at.exception
    assert texts(at.error) == [
        "the database did not complete the action (deadlock detected); nothing was saved, try again"
    ]
    with world.factory() as s:
        assert s.get_one(Booking, world.ids["oldest_pending"]).attended is None
