"""Engines, sessions and the schema's migrations.

One engine and one sessionmaker per process; the caller owns each transaction
(`with session_factory.begin() as session:` around one user action).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.errors import InvalidInput

T = TypeVar("T")
MIGRATIONS = Path(__file__).with_name("migrations")
DEADLOCK_ATTEMPTS = 3
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for `url` with this product's settings for its dialect.

    SQLite: foreign keys on, WAL, a busy timeout, and `BEGIN IMMEDIATE` so a transaction takes the write
    lock up front (two deferred transactions that both read then write would otherwise fail with
    "database is locked" instead of waiting). PostgreSQL and MariaDB: READ COMMITTED, so a statement
    that waited for a row lock sees what the other transaction committed.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, isolation_level="READ COMMITTED", **kwargs)


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint (copying the log into the database, with an fsync) every 10,000 pages instead of
            # every 1,000: a mark writes 60-110 pages, so one commit in ~15 paid 20 ms for it, one in ~120 now.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A reader takes no lock (WAL lets it read while a writer writes); a transaction that may write takes
        # the write lock up front.
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "attendance_desk_read_only"


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions for user actions: the caller opens one transaction per action (`factory.begin()`)."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions for reading what a page or report shows. On SQLite they start a deferred transaction, so a
    long read (analytics over a million bookings) never holds the write lock that a mentor's mark waits for."""
    return sessionmaker(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)


def alembic_config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def init_db(engine: sa.Engine) -> None:
    """Bring the database to the newest schema. Safe to run again: it only applies what is missing."""
    command.upgrade(alembic_config(engine), "head")


def schema_is_current(engine: sa.Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())


def is_deadlock(error: BaseException) -> bool:
    """Whether the database rolled this transaction back to break a deadlock (PostgreSQL's 40P01, MariaDB's and
    MySQL's 1213). SQLite has none: its writers take the one write lock in turn."""
    cause = getattr(error, "orig", None)
    if getattr(cause, "sqlstate", None) == "40P01":
        return True
    arguments: tuple[Any, ...] = getattr(cause, "args", ())
    return bool(arguments) and arguments[0] == 1213


def in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction and commit it; when the database breaks a deadlock by rolling it back,
    run it again from the start in a new one (up to DEADLOCK_ATTEMPTS times in all).

    Concurrent writers take row locks in whatever order their statements meet the rows (the attendance
    tallies' rows, which triggers update with each booking, are shared by every writer of a week); a deadlock
    between them rolls one back whole, so running it again is safe and is what it would have done alone.
    """
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            with factory.begin() as session:
                return work(session)
        except sa.exc.OperationalError as error:
            if attempt == DEADLOCK_ATTEMPTS or not is_deadlock(error):
                raise
    raise AssertionError("unreachable")
