"""`mentorship pending` and `mentorship mark`: the sessions waiting for a decision, and deciding one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from app.cli.common import DbOption, JsonOption, emit_json, fail, now, open_db, policy, refusals
from core.attendance import MarkResult, mark_attended, mark_no_show, preview_no_show, reset_attendance
from core.audit import Actor, actor_for_user
from core.config import Policy
from core.db import in_transaction
from core.discipline import Consequences
from core.errors import InvalidInput
from core.models import ActorKind
from core.queries import BookingRow, get_booking, pending_bookings
from core.users import get_user

_DURATION = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def parse_duration(text: str) -> timedelta:
    """'2d', '48h', '90m' or a sum of them ('1d12h')."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise typer.BadParameter(
            f"{text!r} is not a duration: use a number of days, hours or minutes like 2d, 48h, 90m"
        )
    return sum((int(n) * _UNITS[unit] for n, unit in parts), timedelta())


def _waited(hours: float) -> str:
    days, rest = divmod(int(hours), 24)
    return f"{days}d {rest}h" if days else f"{hours:.1f}h"


def _when(row: BookingRow) -> str:
    return f"{row.start_time:%a %Y-%m-%d %H:%M}–{row.end_time:%H:%M} UTC"


def pending(
    mentor: Annotated[
        str | None, typer.Option("--mentor", help="Only this mentor user's sessions (a username).")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Only sessions that ended at least this long ago: 2d, 48h, 90m.")
    ] = None,
    json_output: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The pending sessions (ended, scheduled, nobody has marked them), oldest first."""
    age = parse_duration(older_than) if older_than is not None else None
    factory = open_db(db, read_only=True)
    moment = now()
    with refusals(), factory() as session:
        mentor_id = None
        if mentor is not None:
            user = get_user(session, mentor)
            if user.mentor_id is None:
                fail(f"user {mentor!r} is an admin, not a mentor: --mentor takes a mentor user's username")
            mentor_id = user.mentor_id
        rows = pending_bookings(session, now=moment, mentor_id=mentor_id, older_than=age)
    if json_output:
        emit_json(
            [
                {
                    "booking_id": row.booking_id,
                    "mentor": row.mentor,
                    "mentor_id": row.mentor_id,
                    "mentee_id": row.mentee_id,
                    "mentee": row.mentee,
                    "start_time": row.start_time,
                    "end_time": row.end_time,
                    "pending_hours": row.pending_hours,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        typer.echo("no pending sessions: every past session has been marked")
        return
    typer.echo(f"{len(rows)} pending session{'s' if len(rows) != 1 else ''}, oldest first:")
    mentor_width = max(len(row.mentor) for row in rows)
    mentee_width = max(len(row.mentee) for row in rows)
    for row in rows:
        note = "  (back to pending after a revert)" if row.reverted else ""
        waited = _waited(row.pending_hours or 0.0)
        typer.echo(
            f"  #{row.booking_id:<6} {_when(row)}  {row.mentor:<{mentor_width}}  {row.mentee:<{mentee_width}}"
            f"  waiting {waited}{note}"
        )


class MarkAction(StrEnum):
    ATTENDED = "attended"
    NO_SHOW = "no-show"
    RESET = "reset"


_HANDLERS = {MarkAction.ATTENDED: mark_attended, MarkAction.NO_SHOW: mark_no_show, MarkAction.RESET: reset_attendance}
_CONSEQUENCE_WORDS = {
    "warnings_issued": ("warning issued", "warnings issued"),
    "warnings_revoked": ("warning revoked", "warnings revoked"),
    "reprobations_issued": ("reprobation issued", "reprobations issued"),
    "reprobations_lifted": ("reprobation lifted", "reprobations lifted"),
    "bookings_cancelled": ("future session cancelled", "future sessions cancelled"),
    "bookings_restored": ("session restored", "sessions restored"),
}


def _consequence_lines(consequences: Consequences) -> list[str]:
    lines = []
    for key, count in consequences.counts().items():
        if count:
            one, many = _CONSEQUENCE_WORDS[key]
            lines.append(f"  {count} {one if count == 1 else many}")
    return lines or ["  no warning or reprobation changed"]


def _document(result: MarkResult, operation_id: str | None) -> dict[str, Any]:
    """The JSON of `mark`: the booking's attendance after the action, and the counts of its consequences."""
    return {
        "booking_id": result.booking_id,
        "attended": result.attended,
        "attendance_marked_by": result.attendance_marked_by.value if result.attendance_marked_by else None,
        "operation_id": operation_id,
        "consequences": result.consequences.counts(),
    }


def _preview(
    session: Session,
    booking_id: int,
    action: MarkAction,
    actor: Actor,
    *,
    moment: datetime,
    rules: Policy,
    reason: str | None,
) -> tuple[dict[str, Any], str, list[str]]:
    """What the action would do, with the same refusals, writing nothing."""
    if action is MarkAction.NO_SHOW:
        if actor.kind is ActorKind.ADMIN and not (reason and reason.strip()):
            # The mark itself would refuse this; so does its preview.
            raise InvalidInput(f"booking {booking_id}: an admin acting for a mentor must give a reason")
        preview = preview_no_show(session, booking_id, actor=actor, now=moment, policy=rules)
        would = MarkResult(booking_id, False, actor.kind, None, preview.consequences)
        return (
            _document(would, None),
            f"marking booking {booking_id} no-show would give: {preview.message}",
            _consequence_lines(preview.consequences),
        )
    # Attended and reset have no read-only preview in the core: do it, report, and roll it all back.
    try:
        result = _HANDLERS[action](session, booking_id, actor=actor, now=moment, policy=rules, reason=reason)
    finally:
        session.rollback()
    verb = "marking it attended" if action is MarkAction.ATTENDED else "resetting it to pending"
    return _document(result, None), f"booking {booking_id}: {verb} is allowed", _consequence_lines(result.consequences)


def mark(
    booking_id: Annotated[int, typer.Argument(help="The booking to decide.")],
    action: Annotated[MarkAction, typer.Argument(help="attended, no-show, or reset (back to pending).")],
    as_user: Annotated[str, typer.Option("--as", help="The mentor or admin user acting (an admin needs --reason).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required when an admin acts).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Show what it would do; write nothing.")] = False,
    json_output: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Mark a past session attended or no-show, or reset a mark, as a mentor (or an admin, with a reason)."""
    factory = open_db(db)
    moment, rules = now(), policy()
    if preview:
        with refusals(), factory() as session:
            actor = actor_for_user(session, as_user)
            document, headline, lines = _preview(
                session, booking_id, action, actor, moment=moment, rules=rules, reason=reason
            )
        if json_output:
            emit_json(document)
        else:
            typer.echo(f"preview, nothing written: {headline}")
            for line in lines:
                typer.echo(line)
        return

    def act(session: Session) -> tuple[Actor, MarkResult, str]:
        actor = actor_for_user(session, as_user)
        result = _HANDLERS[action](session, booking_id, actor=actor, now=moment, policy=rules, reason=reason)
        return actor, result, get_booking(session, booking_id, now=moment).mentee

    with refusals():
        actor, result, mentee = in_transaction(factory, act)
    if json_output:
        emit_json(_document(result, result.operation_id))
        return
    if result.attended is None:
        typer.echo(f"booking {booking_id} ({mentee}) is pending again; the mark was reset by {actor.name}")
    else:
        word = "attended" if result.attended else "no-show"
        typer.echo(f"booking {booking_id} ({mentee}) marked {word} by {actor.name} ({actor.kind.value})")
    for line in _consequence_lines(result.consequences):
        typer.echo(line)
    typer.echo(f"  operation {result.operation_id}")
