"""What every page shares: the database, the signed-in user, the role guard, actions and safe rendering.

Pages import this module; it imports the core. Nothing here holds domain rules.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from app import state
from core.audit import Actor, actor_for_user
from core.config import Policy, db_url_from_env, policy_from_env
from core.db import in_transaction, make_engine, make_read_session_factory, make_session_factory, schema_is_current
from core.errors import DomainError, database_unavailable
from core.models import Role

T = TypeVar("T")

# Streamlit, pandas, pyarrow and SQLAlchemy, imported once per server, hold some 180,000 objects that live as
# long as the process. Out of the garbage collector's sight, they no longer make every fourth page run or so wait
# for a full collection that walks them all (60-100 ms: longer than the run of My sessions itself).
gc.freeze()

MIN_COOKIE_KEY_BYTES = 32
COOKIE_KEY_HELP = (
    "The app needs a secret key of at least 32 bytes to sign its sign-in cookie. "
    'Put `cookie_key = "..."` in .streamlit/secrets.toml (`make run` writes a random one) '
    "or set the environment variable MENTORSHIP_COOKIE_KEY, for example to the output of "
    '`python -c "import secrets; print(secrets.token_urlsafe(48))"`, then start the app again.'
)


# --- configuration -------------------------------------------------------------------------------------------


def cookie_key() -> str | None:
    """The cookie-signing key from st.secrets["cookie_key"] or MENTORSHIP_COOKIE_KEY, if one is set."""
    try:
        key = st.secrets.get("cookie_key")
    except FileNotFoundError:  # no secrets.toml anywhere
        key = None
    if not key:
        key = os.environ.get("MENTORSHIP_COOKIE_KEY")
    return str(key) if key else None


def cookie_key_problem(key: str | None) -> str | None:
    """Why this key cannot sign cookies, or None when it can."""
    if key is None:
        return "No cookie key is set."
    if len(key.encode()) < MIN_COOKIE_KEY_BYTES:
        return f"The cookie key is too short ({len(key.encode())} bytes; at least {MIN_COOKIE_KEY_BYTES} are needed)."
    return None


@st.cache_resource(show_spinner=False, on_release=lambda engine: engine.dispose())
def _engine(url: str) -> sa.Engine:
    # Keyed by the URL: two databases (tests, or a changed MENTORSHIP_DB_URL) never share an engine.
    return make_engine(url)


@st.cache_resource(show_spinner=False)
def _schema_checked(url: str) -> bool:
    # Cached only once it succeeds (an exception is not cached), so `mentorship init` later is noticed.
    if not schema_is_current(_engine(url)):
        raise DomainError(
            f"The database {sa.make_url(url).render_as_string()} is not initialised or is out of date: "
            "run `mentorship init` (or `make run`), then reload this page."
        )
    return True


def database_url() -> str:
    return db_url_from_env()


def session_factory() -> sessionmaker[Session]:
    """The process's session factory for MENTORSHIP_DB_URL (or the default database)."""
    return make_session_factory(_engine(database_url()))


def database_problem() -> str | None:
    """Why the database cannot be used, or None when it is ready."""
    url = database_url()
    try:
        _schema_checked(url)
    except DomainError as error:
        return str(error)
    except sa.exc.SQLAlchemyError as error:
        orig = getattr(error, "orig", None) or error
        return f"Cannot open the database {sa.make_url(url).render_as_string()}: {orig}"
    return None


def policy() -> Policy:
    return policy_from_env()


def now() -> datetime:
    """The one place the app reads the clock; the core is always handed `now`."""
    return datetime.now(UTC)


@contextmanager
def reading() -> Iterator[Session]:
    """A session for reading what a page shows (nothing is written through it)."""
    with make_read_session_factory(_engine(database_url()))() as session:
        yield session


# --- the signed-in user and the role guard ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    username: str
    name: str
    role: Role


def signed_in() -> SignedIn | None:
    """The user the entrypoint signed in on this run, or None."""
    if st.session_state.get("authentication_status") is not True:
        return None
    username = st.session_state.get("username")
    role = st.session_state.get(state.ROLE)
    if not username or role not in {r.value for r in Role}:
        return None
    return SignedIn(str(username), str(st.session_state.get("name") or username), Role(role))


def require_role(role: Role) -> SignedIn:
    """Every page's first line: stop (drawing nothing else) unless a user of `role` is signed in."""
    user = signed_in()
    if user is None:
        st.error("Please sign in first.")
        st.stop()
    if user.role is not role:
        st.error(f"This page is for {role.value}s only.")
        st.stop()
    return user


def require_actor(user: SignedIn) -> Actor:
    """The signed-in user's actor, re-read from the database (a disabled user is refused here)."""
    try:
        with reading() as session:
            return actor_for_user(session, user.username)
    except DomainError as error:
        st.error(md_escape(str(error)))
        st.stop()


# --- actions ------------------------------------------------------------------------------------------------


def flash(level: str, text: str) -> None:
    """Leave a message for the top of the next run (actions run in callbacks, before the page draws)."""
    st.session_state[state.FLASH] = (level, text)


def show_flash() -> None:
    """Show, once, the message the last action left."""
    message = st.session_state.pop(state.FLASH, None)
    if not message:
        return
    level, text = message
    if level == "success":
        st.success(md_escape(text), icon=":material/check_circle:")
        st.toast(md_escape(text), icon=":material/check_circle:")
    else:
        st.error(md_escape(text), icon=":material/error:")


def act(action: Callable[[Session, Actor, datetime], T], describe: Callable[[T], str | None]) -> T | None:
    """Run one user action in one transaction, as the signed-in user re-resolved from the database.

    A refusal from the core becomes an error message, a success the message `describe` gives (if any),
    both via `flash`.
    """
    user = signed_in()
    if user is None:
        flash("error", "Your session has ended: please sign in again.")
        return None

    def work(session: Session) -> T:
        return action(session, actor_for_user(session, user.username), now())

    try:
        result = in_transaction(session_factory(), work)
    except DomainError as error:
        flash("error", str(error))
        return None
    except sa.exc.OperationalError as error:
        # A dropped connection, a deadlock or a lock timeout: the transaction was rolled back whole.
        flash("error", database_unavailable(error))
        return None
    message = describe(result)
    if message:
        flash("success", message)
    return result


def bump(key: str) -> None:
    """Advance a version counter (a new widget key lets tables start without a stale selection)."""
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1


# --- rendering ----------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=^&])")


def md_escape(text: str) -> str:
    """Text safe to put into Markdown: every character Markdown (or Streamlit's extensions) acts on is escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def age(delta: timedelta) -> str:
    """A waiting time as people say it: '3 d 4 h', '5 h 10 min', '12 min'."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def frame(rows: Sequence[Any], columns: dict[str, str] | None = None) -> pd.DataFrame:
    """A DataFrame of dataclass rows; `columns` picks and renames fields (field -> label), in that order."""
    if columns is None:
        return pd.DataFrame.from_records(
            [asdict(r) if is_dataclass(r) and not isinstance(r, type) else dict(r) for r in rows]
        )
    # Only the fields shown, read as they are (asdict would deep-copy every field of every row).
    return frame_of(
        rows,
        {
            label: itemgetter(name) if rows and isinstance(rows[0], dict) else attrgetter(name)
            for name, label in columns.items()
        },
    )


def frame_of(rows: Sequence[T], cells: dict[str, Callable[[T], Any]]) -> pd.DataFrame:
    """A DataFrame with one column per label, in that order, each cell computed from its row."""
    if not rows:
        return pd.DataFrame(columns=list(cells))
    return pd.DataFrame({label: [cell(r) for r in rows] for label, cell in cells.items()})


def table(
    df: pd.DataFrame, *, key: str | None = None, selectable: bool = False, column_config: dict[str, Any] | None = None
) -> None:
    """A read-only table without its index, times shown to the minute in UTC; with `selectable`, the user
    chooses one row (read it back with `selected_row(key)`)."""
    config: dict[str, Any] = {
        column: st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]")
        for column in df.columns
        if pd.api.types.is_datetime64_any_dtype(df[column])
    }
    config |= column_config or {}
    if selectable:
        st.dataframe(df, hide_index=True, key=key, column_config=config, on_select="rerun", selection_mode="single-row")
    else:
        st.dataframe(df, hide_index=True, key=key, column_config=config)


def selected_row(key: str) -> int | None:
    """The position of the row chosen in the single-row `st.dataframe` with this key, if any."""
    selection = st.session_state.get(key) or {}
    rows = selection.get("selection", {}).get("rows", [])
    return int(rows[0]) if rows else None


def _inert(value: Any) -> Any:
    # A cell starting with = + - @ (or a tab / carriage return) is a formula to a spreadsheet: quote it.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV, with text that a spreadsheet would run as a formula made inert."""
    safe = df.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_inert)
    return safe.to_csv(index=False).encode("utf-8")


def date_window(
    key_since: str, key_until: str, *, since_label: str, until_label: str
) -> tuple[datetime | None, datetime | None]:
    """Two optional day pickers as a UTC window: from the first day's start up to the end of the last day."""
    left, right = st.columns(2)
    first: date | None = left.date_input(since_label, value=None, key=key_since, format="YYYY-MM-DD")
    last: date | None = right.date_input(until_label, value=None, key=key_until, format="YYYY-MM-DD")
    since = datetime.combine(first, time.min, tzinfo=UTC) if first else None
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC) if last else None
    return since, until
