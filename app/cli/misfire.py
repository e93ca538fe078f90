"""`mentorship misfire`: the automated damage, reported as a chain, and its revert (dry run unless --apply)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from app.cli.common import DbOption, JsonOption, emit_json, fail, now, open_db, policy, refusals
from core.audit import actor_for_user
from core.db import in_transaction
from core.discipline import Conflict
from core.misfire import MisfireReport, RevertResult, report_misfire, revert_misfire

app = typer.Typer(
    help="The automated damage: what `mentorship:process-absences` caused, and its revert.",
    no_args_is_help=True,
)

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="T",
        help="Only absences marked at or after T (ISO 8601; without an offset, UTC). "
        "Where the mark's time is unknown, the session's end is used.",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", metavar="T", help="Only absences marked before T (ISO 8601).", show_default=False),
]
UnattributedOption = Annotated[
    bool,
    typer.Option(
        "--include-unattributed",
        help="Also the absences nobody is recorded as marking (suspected), besides those stamped System.",
    ),
]
SHOWN_IDS = 20


def parse_time(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 time from the command line; a time without an offset is taken as UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 time (for example 2026-05-01 or 2026-05-01T08:00:00Z)")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(map(str, ids[:SHOWN_IDS]))
    return shown + (f", … ({len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else "")


def _conflicts(conflicts: Sequence[Conflict]) -> str:
    shown = ", ".join(f"{c.booking_id} ({c.reason.value})" for c in conflicts[:SHOWN_IDS])
    return shown + (f", … ({len(conflicts) - SHOWN_IDS} more)" if len(conflicts) > SHOWN_IDS else "")


def _scope(since: datetime | None, until: datetime | None, include_unattributed: bool) -> str:
    kinds = "stamped System or with no attribution" if include_unattributed else "stamped System"
    if since and until:
        when = f"marked from {since.isoformat()} until {until.isoformat()}"
    elif since:
        when = f"marked from {since.isoformat()}"
    elif until:
        when = f"marked before {until.isoformat()}"
    else:
        when = "marked at any time"
    return f"absences {kinds}, {when}"


def _print_report(report: MisfireReport) -> None:
    typer.echo(f"Automated damage: {_scope(report.since, report.until, report.include_unattributed)}")
    if not report.mentees:
        typer.echo("  nothing found")
        return
    restorable = sum(len(m.restorable_booking_ids) for m in report.mentees)
    in_conflict = sum(len(m.conflicts) for m in report.mentees)
    unattributed = (
        f", {len(report.absences.unattributed)} unattributed"
        if report.include_unattributed
        else " (--include-unattributed adds those with no attribution)"
    )
    typer.echo(f"  absences: {len(report.absences.system)} stamped System{unattributed}")
    typer.echo(
        f"  warnings: {len(report.warnings)}   reprobations: {len(report.reprobations)}   "
        f"cancelled bookings: {len(report.cancelled_bookings)} ({restorable} restorable, {in_conflict} in conflict)"
    )
    for m in report.mentees:
        n = len(m.absence_booking_ids)
        parts = [f"{n} absence{'s' if n != 1 else ''} ({_ids(m.absence_booking_ids)})"]
        if m.warning_ids:
            parts.append(f"warnings {_ids(m.warning_ids)}")
        if m.reprobation_ids:
            parts.append(f"reprobation {_ids(m.reprobation_ids)}")
        if m.cancelled_booking_ids:
            parts.append(f"{len(m.cancelled_booking_ids)} cancelled, {len(m.restorable_booking_ids)} restorable")
        typer.echo(f"  mentee {m.mentee_id} {m.mentee}: " + "; ".join(parts))
        if m.conflicts:
            typer.echo(f"    in conflict: {_conflicts(m.conflicts)}")


@app.command()
def report(
    since: SinceOption = None,
    until: UntilOption = None,
    include_unattributed: UnattributedOption = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """The automated absences and what followed from them (warnings, reprobations, cancelled bookings)."""
    since_t, until_t = parse_time("--since", since), parse_time("--until", until)
    factory = open_db(db, read_only=True)
    with refusals(), factory() as session:
        result = report_misfire(
            session, now=now(), since=since_t, until=until_t, include_unattributed=include_unattributed
        )
    if json:
        emit_json(result)
    else:
        _print_report(result)


def _print_revert(result: RevertResult, admin: str, reason: str) -> None:
    if result.is_empty and not result.conflicts:
        typer.echo("Nothing to revert: no automated absence in scope is left, and every mentee's discipline holds.")
        return
    if result.applied:
        typer.echo(f"Reverted by {admin}, operation {result.operation_id} (reason: {reason}):")
    else:
        typer.echo("Dry run, nothing was written. With --apply, this revert would do exactly this:")
    typer.echo(f"  mentees: {len(result.mentee_ids)}")
    lines = [
        ("absences back to pending", result.absences_reset),
        ("warnings revoked", result.warnings_revoked),
        ("reprobations lifted", result.reprobations_lifted),
        ("cancelled bookings restored", result.bookings_restored),
        ("warnings issued by the policy, for absences", result.warnings_issued_for),
        ("reprobations issued by the policy, for absences", result.reprobations_issued_for),
        ("bookings cancelled by the policy", result.bookings_cancelled),
    ]
    for label, ids in lines:
        if ids or label in ("absences back to pending", "reprobations lifted", "cancelled bookings restored"):
            typer.echo(f"  {label}: {len(ids)}" + (f" ({_ids(ids)})" if ids else ""))
    if result.conflicts:
        typer.echo(f"  left cancelled, in conflict: {len(result.conflicts)} ({_conflicts(result.conflicts)})")


@app.command()
def revert(
    as_user: Annotated[
        str, typer.Option("--as", metavar="ADMIN_USERNAME", help="The admin who reverts.", show_default=False)
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why the damage is undone (recorded in the audit log).", show_default=False)
    ],
    mentee: Annotated[
        list[int] | None,
        typer.Option("--mentee", metavar="ID", help="Only this mentee (repeat for more).", show_default=False),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    include_unattributed: UnattributedOption = False,
    apply: Annotated[bool, typer.Option("--apply", help="Write the revert; without it, a dry run.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Undo the automated damage: absences back to pending, the policy re-applied from counted absences alone.

    Without --apply, a dry run that prints exactly what --apply would do. What a person issued is never touched.
    """
    since_t, until_t = parse_time("--since", since), parse_time("--until", until)
    factory = open_db(db)

    def revert(session: Session) -> RevertResult:
        return revert_misfire(
            session,
            actor=actor_for_user(session, as_user),
            now=now(),
            reason=reason,
            policy=policy(),
            mentee_ids=mentee,
            since=since_t,
            until=until_t,
            include_unattributed=include_unattributed,
            apply=apply,
        )

    with refusals():
        if apply:
            result = in_transaction(factory, revert)
        else:
            # A dry run only reads: it needs no write transaction.
            with factory() as session:
                result = revert(session)
    if json:
        emit_json({**asdict(result), "counts": result.counts()})
    else:
        _print_revert(result, as_user, reason)
