"""Users who sign in: validation, hashing, audit, and the credentials handed to streamlit-authenticator."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
import streamlit_authenticator as stauth
from sqlalchemy.orm import Session, sessionmaker

from core.audit import Actor, actor_for_user
from core.errors import InvalidAction, InvalidInput, NotAllowed, NotFound
from core.models import ActorKind, AuditEntry, Role, User
from core.users import add_user, authenticator_credentials, disable_user, list_users, set_password
from tests.factories import add_mentor

pytestmark = pytest.mark.usefixtures("one_hash_per_password")


def counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s:
        users = s.scalar(sa.select(sa.func.count()).select_from(User)) or 0
        audit = s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0
        return users, audit


@functools.cache
def verifies(password: str, hashed: str) -> bool:
    return bool(stauth.Hasher.check_pw(password, hashed))


@pytest.fixture
def mentor_id(factory: sessionmaker[Session]) -> int:
    with factory.begin() as s:
        return add_mentor(s, "Maria Mentor")


def test_a_mentor_user_signs_in_with_a_hash_and_is_audited_without_it(factory, mentor_id, now):
    with factory.begin() as s:
        user = add_user(s, "maria", role=Role.MENTOR, password="s3cret-pass", now=now, mentor_id=mentor_id)
    assert (user.name, user.email, user.mentor_id, user.mentor_name) == (
        "Maria Mentor",
        "maria@example.org",
        mentor_id,
        "Maria Mentor",
    )
    with factory() as s:
        credentials = authenticator_credentials(s)
        entry = s.scalars(sa.select(AuditEntry)).one()
        stored = s.scalars(sa.select(User.password_hash)).one()
    record = credentials["usernames"]["maria"]
    assert set(record) == {"email", "name", "password", "roles"}
    assert record["roles"] == ["mentor"]
    assert record["password"] == stored != "s3cret-pass"
    assert verifies("s3cret-pass", record["password"])
    assert (entry.action, entry.actor_kind, entry.actor_name) == ("user.add", ActorKind.SYSTEM, "mentorship-cli")
    written = json.dumps([entry.before, entry.after])
    assert "s3cret-pass" not in written and stored not in written


def test_an_admin_defaults_to_its_username_and_is_linked_to_no_mentor(factory, mentor_id, now):
    with factory.begin() as s:
        add_user(s, "root", role="admin", password="s3cret-pass", now=now)
        with pytest.raises(InvalidInput, match="cannot be linked to a mentor"):
            add_user(s, "root2", role=Role.ADMIN, password="s3cret-pass", now=now, mentor_id=mentor_id)
    with factory() as s:
        (user,) = list_users(s)
    assert (user.username, user.name, user.role, user.mentor_id) == ("root", "root", Role.ADMIN, None)


PASSWORD_REFUSALS = [
    ("short-7", "too short: it needs at least 8 characters (got 7)"),
    ("x" * 73, "too long: at most 72 bytes in UTF-8 (got 73 bytes"),
    # 37 characters, but 74 bytes: what counts is bytes.
    ("é" * 37, "too long: at most 72 bytes in UTF-8 (got 74 bytes"),
]


def test_a_password_bcrypt_cannot_hold_whole_is_refused_and_72_bytes_are_accepted(factory, now):
    before = counts(factory)
    for password, message in PASSWORD_REFUSALS:
        with pytest.raises(InvalidInput) as refused, factory.begin() as s:
            add_user(s, "root", role=Role.ADMIN, password=password, now=now)
        assert message in str(refused.value)
    assert counts(factory) == before
    with factory.begin() as s:
        add_user(s, "root", role=Role.ADMIN, password="é" * 36, now=now)
    with factory() as s:
        assert verifies("é" * 36, authenticator_credentials(s)["usernames"]["root"]["password"])


USER_REFUSALS = [
    ("Maria", {}, InvalidInput, "username 'Maria' is not valid: use 2 to 64 characters"),
    ("m", {}, InvalidInput, "username 'm' is not valid"),
    ("ma ria", {}, InvalidInput, "username 'ma ria' is not valid"),
    ("maria", {"mentor_id": None}, InvalidInput, "needs the id of the mentor whose sessions they mark"),
    ("maria", {"mentor_id": 999_999}, NotFound, "no mentor with id 999999"),
    ("maria", {"role": "teacher"}, InvalidInput, "role 'teacher' is not one of: mentor, admin"),
]


def test_a_user_that_cannot_exist_is_refused_and_nothing_is_written(factory, mentor_id, now):
    before = counts(factory)
    for username, kwargs, error, message in USER_REFUSALS:
        args = {"role": Role.MENTOR, "mentor_id": mentor_id} | kwargs
        with pytest.raises(error) as refused, factory.begin() as s:
            add_user(s, username, password="s3cret-pass", now=now, **args)
        assert message in str(refused.value)
    assert counts(factory) == before


def test_a_taken_username_or_an_already_linked_mentor_is_refused(factory, mentor_id, now):
    with factory.begin() as s:
        add_user(s, "maria", role=Role.MENTOR, password="s3cret-pass", now=now, mentor_id=mentor_id)
    before = counts(factory)
    with pytest.raises(InvalidAction, match="a user named 'maria' already exists"), factory.begin() as s:
        add_user(s, "maria", role=Role.ADMIN, password="s3cret-pass", now=now)
    with pytest.raises(InvalidAction, match=r"already linked to user 'maria'"), factory.begin() as s:
        add_user(s, "maria2", role=Role.MENTOR, password="s3cret-pass", now=now, mentor_id=mentor_id)
    assert counts(factory) == before


def test_a_disabled_user_can_no_longer_sign_in_or_act(factory, mentor_id, now):
    with factory.begin() as s:
        add_user(s, "maria", role=Role.MENTOR, password="s3cret-pass", now=now, mentor_id=mentor_id)
        add_user(s, "root", role=Role.ADMIN, password="s3cret-pass", now=now)
    with factory.begin() as s:
        change = disable_user(s, "maria", now=now + timedelta(hours=1))
    assert change.user.disabled and change.operation_id is not None
    with factory() as s:
        assert set(authenticator_credentials(s)["usernames"]) == {"root"}
        with pytest.raises(NotAllowed, match="disabled"):
            actor_for_user(s, "maria")
        assert [u.disabled for u in list_users(s)] == [True, False]
    before = counts(factory)
    with factory.begin() as s:
        again = disable_user(s, "maria", now=now + timedelta(hours=2))
    assert again.operation_id is None
    assert counts(factory) == before


def test_an_admin_cannot_disable_themselves(factory, now):
    with factory.begin() as s:
        add_user(s, "root", role=Role.ADMIN, password="s3cret-pass", now=now)
    with pytest.raises(NotAllowed, match="cannot disable themselves"), factory.begin() as s:
        disable_user(s, "root", now=now, actor=Actor(ActorKind.ADMIN, "root"))


def test_a_new_password_replaces_the_old_one_and_the_audit_log_only_says_it_changed(factory, now: datetime):
    with factory.begin() as s:
        add_user(s, "root", role=Role.ADMIN, password="old-password", now=now)
    with factory.begin() as s:
        set_password(s, "root", password="new-password", now=now, actor=Actor(ActorKind.ADMIN, "other-admin"))
    with factory() as s:
        stored = authenticator_credentials(s)["usernames"]["root"]["password"]
        entry = s.scalars(sa.select(AuditEntry).where(AuditEntry.action == "user.set_password")).one()
    assert verifies("new-password", stored)
    assert not verifies("old-password", stored)
    assert (entry.actor_kind, entry.actor_name, entry.after) == (
        ActorKind.ADMIN,
        "other-admin",
        {"password": "changed"},
    )
    with pytest.raises(NotFound, match="no user named 'ghost'"), factory.begin() as s:
        set_password(s, "ghost", password="new-password", now=now)
