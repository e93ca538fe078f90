"""Who did what: actors, operations and the append-only audit log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotAllowed, NotFound
from core.models import ActorKind, AuditEntry, Role, User


@dataclass(frozen=True)
class Actor:
    """The one who acts: a mentor (with the mentor they are), an admin, or a command (System)."""

    kind: ActorKind
    name: str
    mentor_id: int | None = None

    @property
    def is_person(self) -> bool:
        return self.kind in (ActorKind.MENTOR, ActorKind.ADMIN)


def actor_for_user(session: Session, username: str) -> Actor:
    """The actor a signed-in (or `--as`) user acts as; refuses unknown and disabled users."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    if user.disabled:
        raise NotAllowed(f"user {username!r} is disabled")
    if user.role is Role.ADMIN:
        return Actor(ActorKind.ADMIN, user.username)
    if user.mentor_id is None:
        raise NotAllowed(f"user {username!r} is a mentor user linked to no mentor")
    return Actor(ActorKind.MENTOR, user.username, user.mentor_id)


@dataclass(frozen=True)
class Operation:
    """One user action: every row it writes carries its id, its actor, its time and its reason."""

    actor: Actor
    now: datetime
    reason: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise InvalidInput("now must be timezone-aware")


def record(
    session: Session,
    op: Operation,
    action: str,
    target_type: str,
    target_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    session.add(
        AuditEntry(
            operation_id=op.id,
            at=op.now,
            actor_kind=op.actor.kind,
            actor_name=op.actor.name,
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=before,
            after=after,
            reason=op.reason,
        )
    )


def new_entry(
    op: Operation,
    action: str,
    target_type: str,
    target_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    """One entry of the audit log, as a row for `record_many`."""
    return {
        "operation_id": op.id,
        "at": op.now,
        "actor_kind": op.actor.kind,
        "actor_name": op.actor.name,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "before": before,
        "after": after,
        "reason": op.reason,
    }


def record_many(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Append entries (made by `new_entry`) to the audit log in one statement, in the caller's transaction, in
    their order and after every entry `record` added before.

    A Core insert of the table: a large revert writes tens of thousands of entries, and the ORM's bulk path
    would add per-row bookkeeping that plain rows do not need.
    """
    if entries:
        session.flush()  # what `record` added goes first, as it came first
        session.execute(sa.insert(cast(sa.Table, AuditEntry.__table__)), entries)


@event.listens_for(Session, "before_flush")
def _audit_log_is_append_only(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry) and (obj in session.deleted or session.is_modified(obj)):
            raise NotAllowed("the audit log is append-only: an entry cannot be changed or deleted")
