"""Fresh databases for tests: an SQLite file, and, where reachable, PostgreSQL and MariaDB.

Each test run creates its own databases on the servers (named after the run and the xdist worker) and
drops them at the end. A server that cannot be reached skips its tests with the reason, except in CI
(CI=true), where it fails the run: CI has both servers and must test on them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.db import init_db, make_engine

SERVER_URLS = {
    "postgresql": os.environ.get("MENTORSHIP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("MENTORSHIP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306"),
}
ADMIN_DATABASE = {"postgresql": "postgres", "mariadb": "mysql"}
BACKENDS = ("sqlite", "postgresql", "mariadb")


def unreachable(backend: str, reason: str) -> None:
    message = f"{backend} server not reachable at {SERVER_URLS[backend]}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the server must be running)")
    pytest.skip(message)


@contextmanager
def fresh_server_database(backend: str) -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it after."""
    base = sa.make_url(SERVER_URLS[backend])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"attendance_test_{worker}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.set(database=ADMIN_DATABASE[backend]), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as error:
        admin.dispose()
        unreachable(backend, str(error.orig).strip().splitlines()[0])
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if backend == "postgresql":
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


@contextmanager
def migrated_engine(backend: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on a new database of this backend, at the newest schema."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        init_db(engine)
        yield engine
        engine.dispose()
        return
    with fresh_server_database(backend) as url:
        engine = make_engine(url)
        init_db(engine)
        yield engine
        engine.dispose()


TABLES = (
    "notifications",
    "warnings",
    "audit_log",
    "users",
    "bookings",
    # After the bookings: deleting a booking takes it away from its tallies (on MariaDB, where triggers fire).
    "weekly_attendance_tallies",
    "attendance_tallies",
    "four_week_attendance_tallies",
    "reprobations",
    "mentees",
    "mentors",
)


def empty_tables(engine: sa.Engine) -> None:
    """Empty every table between tests: DELETE is far quicker than TRUNCATE on tables this small.

    The audit log's append-only trigger is switched off for this one statement only: on PostgreSQL by
    session_replication_role (the test user is a superuser), on MariaDB by TRUNCATE, which fires no trigger.
    """
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for table in TABLES:
                connection.exec_driver_sql(f"DELETE FROM {table}")
        else:
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for table in TABLES:
                if table == "audit_log":
                    connection.exec_driver_sql("TRUNCATE TABLE audit_log")
                else:
                    connection.exec_driver_sql(f"DELETE FROM {table}")
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
