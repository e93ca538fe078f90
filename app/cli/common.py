"""What every `mentorship` command shares: the database option, JSON output and one-line refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, NoReturn

import sqlalchemy as sa
import typer
from sqlalchemy.orm import Session, sessionmaker

from core.config import Policy as Policy
from core.config import db_url_from_env, policy_from_env
from core.db import make_engine, make_read_session_factory, make_session_factory, schema_is_current
from core.errors import DomainError, database_unavailable

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy database URL [env: MENTORSHIP_DB_URL; default: sqlite:///data/mentorship.db]",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Refuse: one line on stderr, a non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the core's refusals (and a database failure mid-action) into one line on stderr and exit code 1."""
    try:
        yield
    except DomainError as error:
        fail(str(error))
    except sa.exc.OperationalError as error:
        # A dropped connection, a deadlock or a lock timeout: the transaction was rolled back whole.
        fail(database_unavailable(error))


def engine_for(db: str | None) -> sa.Engine:
    with refusals():
        return make_engine(db or db_url_from_env())


def open_db(db: str | None, *, read_only: bool = False) -> sessionmaker[Session]:
    """A session factory on an initialised database; refuses one that `mentorship init` has not prepared.

    `read_only` sessions never take SQLite's write lock, so a long report does not hold up the app's marks.
    """
    engine = engine_for(db)
    try:
        current = schema_is_current(engine)
    except sa.exc.OperationalError as error:
        fail(f"cannot open the database {engine.url.render_as_string()}: {error.orig}")
    if not current:
        fail(
            f"the database {engine.url.render_as_string()} is not initialised or is out of date: run `mentorship init`"
        )
    return make_read_session_factory(engine) if read_only else make_session_factory(engine)


def policy() -> Policy:
    with refusals():
        return policy_from_env()


def now() -> datetime:
    """The one place the command line reads the clock; the core is always handed `now`."""
    return datetime.now(UTC)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=_default, indent=2) + "\n")
