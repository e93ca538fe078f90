"""`mentorship import` and `mentorship export`: the booking system's history as CSV files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOption, JsonOption, emit_json, now, open_db, refusals
from core.csvio import HistoryCounts, export_history, import_history
from core.db import in_transaction

DirectoryArgument = Annotated[
    Path,
    typer.Argument(
        metavar="DIR",
        help="The directory of mentors.csv, mentees.csv, bookings.csv, warnings.csv and reprobations.csv.",
        show_default=False,
    ),
]


def _counts(counts: HistoryCounts) -> str:
    return ", ".join(f"{n} {name}" for name, n in asdict(counts).items())


def import_(
    directory: DirectoryArgument,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every file and write nothing.")] = False,
    db: DbOption = None,
    json: JsonOption = False,
) -> None:
    """Load the history from CSV files into an empty database, as it was (the policy is not re-run).

    Any bad input is refused with every problem listed (file, row, column, reason), and nothing is written.
    """
    factory = open_db(db)
    with refusals():
        result = in_transaction(factory, lambda session: import_history(session, directory, now=now(), dry_run=dry_run))
    if json:
        emit_json(result)
    elif dry_run:
        typer.echo(f"Dry run, nothing was written: {directory} holds {_counts(result.counts)}; all of it is valid.")
    else:
        typer.echo(f"Imported {_counts(result.counts)} from {directory} (operation {result.operation_id}).")


def export(directory: DirectoryArgument, db: DbOption = None, json: JsonOption = False) -> None:
    """Write the history to CSV files in DIR (created if missing; the five files are replaced)."""
    factory = open_db(db, read_only=True)
    with refusals(), factory() as session:
        result = export_history(session, directory)
    if json:
        emit_json(result)
    else:
        typer.echo(f"Exported {_counts(result.counts)} to {directory}.")
