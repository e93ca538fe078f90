"""`mentorship demo`: fill the database with the demo history and its two sign-ins."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import DbOption, engine_for, now, open_db, policy, refusals
from core.demo import load_demo, reset_database


def demo(
    seed: Annotated[int, typer.Option("--seed", help="The same seed gives the same history.")] = 7,
    reset: Annotated[
        bool, typer.Option("--reset", help="Empty the database first (everything in it is lost, audit log included).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Load a realistic demo history relative to now, the legacy command's incident included."""
    if reset:
        engine = engine_for(db)
        with refusals():
            reset_database(engine)
        engine.dispose()
        typer.echo("database emptied")
    factory = open_db(db)
    with refusals(), factory.begin() as session:
        summary = load_demo(session, now=now(), seed=seed, policy=policy())
    if not summary.loaded:
        typer.echo(f"{summary.message}; nothing changed")
        return
    typer.echo(
        f"demo loaded (seed {seed}): {summary.mentors} mentors, {summary.mentees} mentees, "
        f"{summary.bookings} bookings, {summary.pending} pending"
    )
    typer.echo(
        f"  marked by mentors: {summary.marked_by_mentors} sessions, {summary.mentor_warnings} warnings, "
        f"{summary.mentor_reprobations} reprobation{'s' if summary.mentor_reprobations != 1 else ''}"
    )
    typer.echo(
        f"  left by mentorship:process-absences (System): {summary.system_absences} absences, "
        f"{summary.system_warnings} warnings, {summary.system_reprobations} reprobations, "
        f"{summary.system_cancellations} sessions cancelled"
    )
    typer.echo(f"  absences with no attribution (suspected): {summary.unattributed_absences}")
    typer.echo("")
    typer.echo("Demo sign-ins (FOR DEMOS ONLY: anyone who reads this can sign in; never keep them on real data):")
    for user in summary.users:
        typer.echo(f"  {user.role.value:<6}  username {user.username:<8}  password {user.password}")
