"""core.db.in_transaction: a transaction the database rolls back to break a deadlock runs again; nothing else does."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.db import DEADLOCK_ATTEMPTS, in_transaction, make_engine, make_session_factory


class PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("deadlock detected")
        self.sqlstate = sqlstate


def failure(cause: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("UPDATE attendance_tallies ...", {}, cause)


@pytest.fixture
def factory(tmp_path: Any) -> Any:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE marks (n INTEGER)")
    yield make_session_factory(engine)
    engine.dispose()


def marks(factory: Any) -> int:
    with factory() as s:
        return s.scalar(sa.text("SELECT count(*) FROM marks"))


@pytest.mark.parametrize("cause", [PostgresError("40P01"), Exception(1213, "Deadlock found when trying to get lock")])
def test_a_deadlock_victim_runs_again_and_commits_once(factory: Any, cause: Exception) -> None:
    attempts = []

    def work(session: Session) -> str:
        session.execute(sa.text("INSERT INTO marks VALUES (1)"))
        attempts.append(1)
        if len(attempts) == 1:
            raise failure(cause)
        return "done"

    assert in_transaction(factory, work) == "done"
    assert len(attempts) == 2
    assert marks(factory) == 1  # the first attempt's insert was rolled back


def test_a_deadlock_every_time_gives_up_after_the_last_attempt(factory: Any) -> None:
    attempts = []

    def work(session: Session) -> None:
        attempts.append(1)
        raise failure(PostgresError("40P01"))

    with pytest.raises(sa.exc.OperationalError):
        in_transaction(factory, work)
    assert len(attempts) == DEADLOCK_ATTEMPTS


def test_any_other_failure_is_not_run_again(factory: Any) -> None:
    attempts = []

    def work(session: Session) -> None:
        session.execute(sa.text("INSERT INTO marks VALUES (1)"))
        attempts.append(1)
        raise failure(Exception(2013, "Lost connection to server during query"))

    with pytest.raises(sa.exc.OperationalError):
        in_transaction(factory, work)
    assert len(attempts) == 1
    assert marks(factory) == 0
