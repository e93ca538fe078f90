from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core.config import Policy
from core.db import make_session_factory
from tests.databases import BACKENDS, empty_tables, migrated_engine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


_HASHES: dict[str, str] = {}


@pytest.fixture
def one_hash_per_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """bcrypt is slow on purpose: each password is hashed for real once per run, then reused."""
    import core.users

    real = core.users._bcrypt

    def cached(password: str) -> str:
        if password not in _HASHES:
            _HASHES[password] = real(password)
        return _HASHES[password]

    monkeypatch.setattr(core.users, "_bcrypt", cached)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def policy() -> Policy:
    return Policy()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated SQLite database file of this test's own."""
    with migrated_engine("sqlite", tmp_path) as engine:
        yield engine


@pytest.fixture(scope="session", params=BACKENDS)
def server_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """One migrated database per backend for the whole run (SQLite's is replaced per test)."""
    if request.param == "sqlite":
        yield None  # type: ignore[misc]
        return
    with migrated_engine(request.param, tmp_path_factory.mktemp(request.param)) as engine:
        yield engine


@pytest.fixture
def engine(server_engine: sa.Engine | None, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty, migrated database on each backend in turn: SQLite always, the servers where reachable."""
    if server_engine is None:
        with migrated_engine("sqlite", tmp_path) as engine:
            yield engine
        return
    empty_tables(server_engine)
    yield server_engine


@pytest.fixture
def factory(engine: sa.Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def sqlite_factory(sqlite_engine: sa.Engine) -> sessionmaker[Session]:
    return make_session_factory(sqlite_engine)
