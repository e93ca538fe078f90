"""The root of the `mentorship` command: each command group lives in a module of its own."""

from __future__ import annotations

import typer

from app.cli import attendance, demo, misfire, notify, stats, transfer, users
from app.cli.common import DbOption, engine_for
from core.db import init_db

cli = typer.Typer(
    name="mentorship",
    help="Attendance Desk: attendance decided by people, the automated damage audited and reverted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@cli.command()
def init(db: DbOption = None) -> None:
    """Create the database or bring it to the newest schema (safe to run again)."""
    engine = engine_for(db)
    init_db(engine)
    typer.echo(f"database ready: {engine.url.render_as_string()}")


# The one list of commands: each module holds plain functions (or a Typer group).
cli.command("pending")(attendance.pending)
cli.command("mark")(attendance.mark)
cli.add_typer(users.app, name="users")
cli.command("demo")(demo.demo)
cli.add_typer(misfire.app, name="misfire")
cli.command("import")(transfer.import_)
cli.command("export")(transfer.export)
cli.command("stats")(stats.stats)
cli.command("notify")(notify.notify)
cli.command("remind")(notify.remind)


def main() -> None:
    cli()
