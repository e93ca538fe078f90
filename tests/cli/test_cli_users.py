"""`mentorship init` and `mentorship users ...`, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit_authenticator as stauth
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from core.db import make_engine, make_session_factory
from core.models import AuditEntry, User
from core.users import authenticator_credentials
from tests.factories import add_mentor

pytestmark = pytest.mark.usefixtures("one_hash_per_password")


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run("init", "--db", url)[0] == 0
    return url


@pytest.fixture
def factory(db: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(db))


def rows(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s:
        return (
            s.scalar(sa.select(sa.func.count()).select_from(User)) or 0,
            s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0,
        )


def test_init_creates_the_schema_and_is_safe_to_run_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'new.db'}"
    for _ in range(2):
        code, out, err = run("init", "--db", url)
        assert (code, err) == (0, "")
        assert "database ready" in out
    assert (tmp_path / "sub" / "new.db").exists()


def test_a_command_on_a_database_never_initialised_says_to_run_init(tmp_path):
    code, out, err = run("users", "list", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1 and out == ""
    assert "run `mentorship init`" in err


def test_users_are_added_listed_and_disabled(db, factory, now):
    with factory.begin() as s:
        mentor_id = add_mentor(s, "Maria Mentor")
    code, out, err = run(
        "users", "add", "root", "--role", "admin", "--password-stdin", "--db", db, input="s3cret-pass\n"
    )
    assert (code, err) == (0, "")
    assert "user 'root' added: admin" in out
    code, out, _ = run(
        "users", "add", "maria", "--role", "mentor", "--mentor-id", str(mentor_id), "--db", db,
        input="s3cret-pass\ns3cret-pass\n",
    )  # fmt: skip
    assert code == 0
    assert f"linked to mentor {mentor_id} (Maria Mentor)" in out

    code, out, _ = run("users", "list", "--json", "--db", db)
    listed = json.loads(out)
    assert [(u["username"], u["role"], u["mentor_id"], u["disabled"]) for u in listed] == [
        ("maria", "mentor", mentor_id, False),
        ("root", "admin", None, False),
    ]
    assert set(listed[0]) == {
        "id",
        "username",
        "name",
        "email",
        "role",
        "mentor_id",
        "mentor",
        "disabled",
        "created_at",
    }
    assert "s3cret" not in out and "$2b$" not in out

    code, out, _ = run("users", "disable", "maria", "--db", db)
    assert code == 0 and "can no longer sign in" in out
    code, out, _ = run("users", "disable", "maria", "--db", db)
    assert code == 0 and "already disabled" in out
    code, out, _ = run("users", "list", "--db", db)
    assert "DISABLED" in out.splitlines()[0] and "DISABLED" not in out.splitlines()[1]
    with factory() as s:
        assert set(authenticator_credentials(s)["usernames"]) == {"root"}
        assert stauth.Hasher.check_pw("s3cret-pass", authenticator_credentials(s)["usernames"]["root"]["password"])


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("short\n", "the password is too short: it needs at least 8 characters (got 5)"),
        ("x" * 73 + "\n", "the password is too long: at most 72 bytes in UTF-8 (got 73 bytes"),
        ("ü" * 40 + "\n", "the password is too long: at most 72 bytes in UTF-8 (got 80 bytes"),
    ],
)
def test_a_password_bcrypt_cannot_hold_is_refused_with_one_clear_line(db, factory, typed, message):
    before = rows(factory)
    code, _, err = run("users", "add", "root", "--role", "admin", "--password-stdin", "--db", db, input=typed)
    assert code == 1
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert rows(factory) == before


def test_a_prompted_password_must_be_typed_the_same_twice(db, factory):
    result = CliRunner().invoke(
        cli, ["users", "add", "root", "--role", "admin", "--db", db], input="s3cret-pass\nother-pass\nx\n"
    )
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert rows(factory) == (0, 0)


def test_user_refusals_exit_non_zero_and_write_nothing(db, factory):
    run("users", "add", "root", "--role", "admin", "--password-stdin", "--db", db, input="s3cret-pass\n")
    before = rows(factory)
    attempts = [
        (("users", "add", "root", "--role", "admin", "--password-stdin"), "a user named 'root' already exists"),
        (("users", "add", "maria", "--role", "mentor", "--password-stdin"), "needs the id of the mentor"),
        (
            ("users", "add", "maria", "--role", "mentor", "--mentor-id", "42", "--password-stdin"),
            "no mentor with id 42",
        ),
        (("users", "add", "Bad Name", "--role", "admin", "--password-stdin"), "username 'Bad Name' is not valid"),
        (("users", "disable", "ghost"), "no user named 'ghost'"),
        (("users", "set-password", "ghost", "--password-stdin"), "no user named 'ghost'"),
    ]
    for args, message in attempts:
        code, _, err = run(*args, "--db", db, input="s3cret-pass\n")
        assert code == 1, args
        assert message in err and err.count("\n") == 1, (args, err)
    assert rows(factory) == before


def test_set_password_replaces_the_password(db, factory):
    run("users", "add", "root", "--role", "admin", "--password-stdin", "--db", db, input="s3cret-pass\n")
    code, out, _ = run("users", "set-password", "root", "--password-stdin", "--db", db, input="n3w-password\n")
    assert code == 0 and "password of 'root' changed" in out
    with factory() as s:
        stored = authenticator_credentials(s)["usernames"]["root"]["password"]
    assert stauth.Hasher.check_pw("n3w-password", stored)
