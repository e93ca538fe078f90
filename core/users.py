"""The people who sign in: admins, and mentor users linked to the mentor whose sessions they mark.

Passwords are stored only as bcrypt hashes, made exactly as streamlit-authenticator's `Hasher` makes them
(the library checks them at sign-in). Every change to a user is recorded in the audit log, never with the password or
its hash. The command line acts as System "mentorship-cli"; an admin page passes the admin's actor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bcrypt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.audit import Actor, Operation, record
from core.errors import InvalidAction, InvalidInput, NotAllowed, NotFound
from core.models import ActorKind, Mentor, Role, User

CLI_ACTOR = Actor(ActorKind.SYSTEM, "mentorship-cli")
# streamlit-authenticator lowercases what is typed at sign-in, so a username must be lowercase to match.
USERNAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{1,63}")
USERNAME_RULE = "2 to 64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter"
PASSWORD_MIN_CHARS = 8
# bcrypt reads at most 72 bytes; bcrypt 5 refuses longer input rather than silently ignoring the rest.
PASSWORD_MAX_BYTES = 72


@dataclass(frozen=True)
class UserInfo:
    """What a list of users shows; never the password hash."""

    id: int
    username: str
    name: str
    email: str | None
    role: Role
    mentor_id: int | None
    mentor_name: str | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class UserChange:
    """The user after a change, and the operation that wrote it (None when there was nothing to change)."""

    user: UserInfo
    operation_id: str | None


def check_username(username: str) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(f"username {username!r} is not valid: use {USERNAME_RULE}")


def check_password(password: str) -> None:
    """Refuse a password bcrypt cannot hold whole, or one too short to be worth a hash."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidInput(
            f"the password is too short: it needs at least {PASSWORD_MIN_CHARS} characters (got {len(password)})"
        )
    size = len(password.encode("utf-8"))
    if size > PASSWORD_MAX_BYTES:
        raise InvalidInput(
            f"the password is too long: at most {PASSWORD_MAX_BYTES} bytes in UTF-8 (got {size} bytes; "
            "accented letters and other non-ASCII characters take 2 to 4 bytes each)"
        )


def _bcrypt(password: str) -> str:
    # Exactly what streamlit_authenticator.Hasher.hash does (bcrypt, a fresh salt, the default cost), written
    # here so the domain does not import the UI library (which imports Streamlit). Tests check that the
    # library's Hasher.check_pw accepts these hashes.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def hash_password(password: str) -> str:
    """A bcrypt hash that streamlit-authenticator's sign-in checks against; refuses a password that breaks the rules."""
    check_password(password)
    return _bcrypt(password)


def _info(user: User, mentor_name: str | None) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        name=user.name,
        email=user.email,
        role=user.role,
        mentor_id=user.mentor_id,
        mentor_name=mentor_name,
        disabled=user.disabled,
        created_at=user.created_at,
    )


def _public(user: User) -> dict[str, Any]:
    # What the audit log may hold about a user: never the password or its hash.
    return {
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "mentor_id": user.mentor_id,
        "disabled": user.disabled,
    }


def _get_user(session: Session, username: str) -> User:
    user = session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def _mentor_name(session: Session, mentor_id: int | None) -> str | None:
    if mentor_id is None:
        return None
    return session.scalar(sa.select(Mentor.name).where(Mentor.id == mentor_id))


def add_user(
    session: Session,
    username: str,
    *,
    role: Role | str,
    password: str,
    now: datetime,
    mentor_id: int | None = None,
    name: str | None = None,
    email: str | None = None,
    actor: Actor = CLI_ACTOR,
) -> UserInfo:
    """Create a user who can sign in, with the password stored as a bcrypt hash.

    A mentor user is linked to an existing mentor that no other user is linked to; an admin to none.
    The name and email default to the mentor's for a mentor user, to the username for an admin.
    """
    check_username(username)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}") from None
    check_password(password)
    if session.scalar(sa.select(User.id).where(User.username == username)) is not None:
        raise InvalidAction(f"a user named {username!r} already exists")
    mentor: Mentor | None = None
    if role is Role.MENTOR:
        if mentor_id is None:
            raise InvalidInput(f"mentor user {username!r} needs the id of the mentor whose sessions they mark")
        mentor = session.get(Mentor, mentor_id)
        if mentor is None:
            raise NotFound(f"no mentor with id {mentor_id}")
        linked = session.scalar(sa.select(User.username).where(User.mentor_id == mentor_id))
        if linked is not None:
            raise InvalidAction(f"mentor {mentor_id} ({mentor.name}) is already linked to user {linked!r}")
    elif mentor_id is not None:
        raise InvalidInput(f"admin user {username!r} cannot be linked to a mentor")
    name = (name or "").strip() or (mentor.name if mentor else username)
    email = (email or "").strip() or (mentor.email if mentor else None)
    user = User(
        username=username,
        name=name,
        email=email,
        role=role,
        mentor_id=mentor_id,
        password_hash=hash_password(password),
        disabled=False,
        created_at=now,
    )
    session.add(user)
    session.flush()
    record(session, Operation(actor, now), "user.add", "user", user.id, None, _public(user))
    return _info(user, mentor.name if mentor else None)


def set_password(
    session: Session, username: str, *, password: str, now: datetime, actor: Actor = CLI_ACTOR
) -> UserChange:
    """Replace a user's password hash. The audit log records that it changed, never what to."""
    check_password(password)
    user = _get_user(session, username)
    user.password_hash = hash_password(password)
    op = Operation(actor, now)
    record(session, op, "user.set_password", "user", user.id, None, {"password": "changed"})
    session.flush()
    return UserChange(_info(user, _mentor_name(session, user.mentor_id)), op.id)


def disable_user(session: Session, username: str, *, now: datetime, actor: Actor = CLI_ACTOR) -> UserChange:
    """Stop a user from signing in or acting. Disabling a disabled user changes nothing."""
    user = _get_user(session, username)
    if actor.kind is ActorKind.ADMIN and actor.name == username:
        raise NotAllowed(f"user {username!r} cannot disable themselves; ask another admin")
    if user.disabled:
        return UserChange(_info(user, _mentor_name(session, user.mentor_id)), None)
    user.disabled = True
    op = Operation(actor, now)
    record(session, op, "user.disable", "user", user.id, {"disabled": False}, {"disabled": True})
    session.flush()
    return UserChange(_info(user, _mentor_name(session, user.mentor_id)), op.id)


def get_user(session: Session, username: str) -> UserInfo:
    """One user by username; refuses an unknown one."""
    user = _get_user(session, username)
    return _info(user, _mentor_name(session, user.mentor_id))


def list_users(session: Session) -> list[UserInfo]:
    """Every user, by username, with the name of the mentor each mentor user is linked to."""
    rows = session.execute(
        sa.select(User, Mentor.name).outerjoin(Mentor, Mentor.id == User.mentor_id).order_by(User.username)
    ).all()
    return [_info(user, mentor_name) for user, mentor_name in rows]


def authenticator_credentials(session: Session) -> dict[str, dict[str, dict[str, Any]]]:
    """The credentials streamlit-authenticator 0.4.2 takes (with `auto_hash=False`), enabled users only.

    `{"usernames": {username: {"email", "name", "password": <bcrypt hash>, "roles": [role]}}}`;
    a disabled user is absent, so they cannot sign in.
    """
    # Columns, not User objects: every page run reads this, and loading entities took most of its time.
    users = session.execute(
        sa.select(User.username, User.email, User.name, User.password_hash, User.role)
        .where(User.disabled.is_(False))
        .order_by(User.username)
    )
    return {
        "usernames": {
            username: {"email": email or "", "name": name, "password": password_hash, "roles": [role.value]}
            for username, email, name, password_hash, role in users
        }
    }
