"""SQLite: writers take the write lock up front; readers take none, so a long report never holds up a mark."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from core.db import make_read_session_factory, make_session_factory


def try_to_write(engine: sa.Engine) -> None:
    """Take the write lock from another connection, without waiting."""
    other = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_read_session_leaves_the_write_lock_free(sqlite_engine):
    with make_read_session_factory(sqlite_engine)() as reading:
        reading.execute(sa.text("SELECT count(*) FROM bookings")).all()
        try_to_write(sqlite_engine)  # raises "database is locked" if the reader held the lock


def test_an_action_holds_the_write_lock_from_its_first_statement(sqlite_engine):
    with make_session_factory(sqlite_engine).begin() as acting:
        acting.execute(sa.text("SELECT count(*) FROM mentees")).all()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            try_to_write(sqlite_engine)
