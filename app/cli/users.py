"""`mentorship users ...`: the people who sign in (the command line acts as System "mentorship-cli")."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from app.cli.common import DbOption, JsonOption, emit_json, now, open_db, refusals
from core.users import UserInfo, add_user, check_password, disable_user, get_user, list_users, set_password

app = typer.Typer(help="Add, list and disable the users who sign in.", no_args_is_help=True)


class RoleChoice(StrEnum):
    MENTOR = "mentor"
    ADMIN = "admin"


PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input instead of a hidden prompt."),
]


def _read_password(from_stdin: bool) -> str:
    """The new password: from stdin (one line, its newline dropped) or a hidden prompt typed twice."""
    if from_stdin:
        text = sys.stdin.read()
        password = text[:-1] if text.endswith("\n") else text
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with refusals():
        check_password(password)
    return password


def _as_json(user: UserInfo) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "mentor_id": user.mentor_id,
        "mentor": user.mentor_name,
        "disabled": user.disabled,
        "created_at": user.created_at,
    }


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_' or '-'.")],
    role: Annotated[RoleChoice, typer.Option("--role", help="mentor or admin.")],
    mentor_id: Annotated[
        int | None, typer.Option("--mentor-id", help="The mentor a mentor user marks sessions for.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Shown name [default: the mentor's name].")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Email [default: the mentor's email].")] = None,
    password_stdin: PasswordStdinOption = False,
    db: DbOption = None,
) -> None:
    """Add a user who can sign in; the password is stored only as a bcrypt hash."""
    factory = open_db(db)
    password = _read_password(password_stdin)
    with refusals(), factory.begin() as session:
        user = add_user(
            session,
            username,
            role=role.value,
            password=password,
            now=now(),
            mentor_id=mentor_id,
            name=name,
            email=email,
        )
    linked = f", linked to mentor {user.mentor_id} ({user.mentor_name})" if user.mentor_id is not None else ""
    typer.echo(f"user {user.username!r} added: {user.role.value}{linked}")


@app.command("list")
def list_(json_output: JsonOption = False, db: DbOption = None) -> None:
    """List every user (never their password hash)."""
    factory = open_db(db)
    with refusals(), factory() as session:
        users = list_users(session)
    if json_output:
        emit_json([_as_json(user) for user in users])
        return
    if not users:
        typer.echo("no users yet: add one with `mentorship users add USERNAME --role admin`")
        return
    width = max(len(user.username) for user in users)
    for user in users:
        linked = f"  mentor {user.mentor_id} ({user.mentor_name})" if user.mentor_id is not None else ""
        state = "  DISABLED" if user.disabled else ""
        typer.echo(f"{user.username:<{width}}  {user.role.value:<6}  {user.name}{linked}{state}")


@app.command("set-password")
def set_password_(
    username: Annotated[str, typer.Argument(help="The user whose password to replace.")],
    password_stdin: PasswordStdinOption = False,
    db: DbOption = None,
) -> None:
    """Replace a user's password."""
    factory = open_db(db)
    with refusals(), factory() as session:
        get_user(session, username)  # ask for a new password only for a user who exists
    password = _read_password(password_stdin)
    with refusals(), factory.begin() as session:
        set_password(session, username, password=password, now=now())
    typer.echo(f"password of {username!r} changed")


@app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user who may no longer sign in.")],
    db: DbOption = None,
) -> None:
    """Stop a user from signing in and acting (their past actions stay attributed to them)."""
    factory = open_db(db)
    with refusals(), factory.begin() as session:
        change = disable_user(session, username, now=now())
    if change.operation_id is None:
        typer.echo(f"user {username!r} was already disabled")
    else:
        typer.echo(f"user {username!r} disabled: they can no longer sign in")
