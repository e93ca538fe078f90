"""The admin's Notifications page: the outbox with what caused each message, and the retry of a failed one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.attendance import mark_no_show
from core.audit import Actor
from core.config import Policy
from core.misfire import revert_misfire
from core.models import ActorKind, AuditEntry, Mentee, Notification, NotificationStatus
from core.notifications import SmtpSettings, send_queued
from tests.app.conftest import choose_row, signed_in_as
from tests.smtp_server import free_port

PAGE = "../pages/notifications.py"
TABLE = "notify_table_0"


def notifications_page(app):
    at = signed_in_as(app, "admin")
    return at.switch_page(PAGE).run()


def test_an_admin_reads_a_failed_message_with_its_cause_and_retries_it(world, app):
    with world.factory.begin() as s:
        s.get_one(Mentee, world.ids["ana"]).email = None
    with world.factory.begin() as s:
        mentor = Actor(ActorKind.MENTOR, "mentor", world.ids["maria"])
        mark_no_show(s, world.ids["oldest_pending"], actor=mentor, now=world.now, policy=Policy())
    # Ana has no address: the send fails it without reaching any server.
    send_queued(world.factory, SmtpSettings("127.0.0.1", free_port()), clock=lambda: world.now, sleep=lambda _: None)

    at = notifications_page(app)

    assert not at.exception
    assert [m.value for m in at.metric] == ["0", "0", "1"]
    table = at.dataframe(key=TABLE).value
    assert list(table["Status"]) == ["failed"]
    assert list(table["Recipient"]) == ["Ana Ruiz"]
    assert list(table["Kind"]) == ["warning_issued"]
    assert list(table["Caused by"]) == ["attendance.mark"]
    assert list(table["Actor"]) == ["Mentor mentor"]
    assert list(table["Last error"]) == ["no email address on record for the recipient"]

    at = choose_row(at, TABLE, 0)
    assert any("You have received a warning" in t.value for t in at.text)
    at.button(key="notify_retry_button").click().run()

    assert not at.exception
    assert any("is queued again" in s.value for s in at.success)
    assert [m.value for m in at.metric] == ["1", "0", "0"]
    with world.factory() as s:
        assert s.scalars(sa.select(Notification.status)).one() is NotificationStatus.QUEUED
        retry = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "notification.retry")).one()
    assert retry.actor_name == "admin"


def test_names_and_bodies_are_shown_as_typed(world, app):
    with world.factory.begin() as s:
        admin = Actor(ActorKind.ADMIN, "admin")
        revert_misfire(s, actor=admin, now=world.now, reason="legacy job", policy=Policy(), apply=True)

    at = notifications_page(app)
    at.selectbox(key="notify_kind").select("revert_correction").run()

    table = at.dataframe(key=TABLE).value
    assert sorted(table["Recipient"]) == ["Ben *Stone*", "Cy Ng"]
    row = list(table["Recipient"]).index("Ben *Stone*")
    at = choose_row(at, TABLE, row)
    assert any(t.value.startswith("Hello Ben *Stone*,") for t in at.text)


def test_a_mentor_cannot_reach_the_notifications_page(world, app):
    at = signed_in_as(app, "mentor")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)
