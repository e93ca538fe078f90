"""A synthetic history with the demo's shape, at any size: a million bookings in a few minutes.

Per million bookings: 2,000 mentors, 100,000 mentees, one-hour sessions over the year before `now` and the two
months after it, no mentor (and no mentee) ever booked twice at once. Of the past sessions 5% are still pending,
5% were marked absent by the legacy hourly command (stamped System: the incident), and the rest were marked by
their mentor, attended or no-show.

The history is replayed mentee by mentee in the order things happened, so its discipline is what the handlers
would have written: a mentor's no-show applies the absence policy as `core.discipline.plan_policy` and
`write_plan` do (`core.policy.decide` over the mentee's counted absences, then the difference: warnings issued
or revoked, the reprobation issued or lifted, future sessions cancelled or restored, attributed to that mentor,
each change in the audit log under the mark's operation); a System absence feeds the legacy command's flow, which
counted every absence and only ever issued (a System warning, or a System reprobation that cancels the mentee's
future sessions).

Rows are planned with numpy, replayed in chunks of mentees and written in chunks of executemany, so the memory
stays flat whatever the size. Nothing here reads the clock: `now` is a parameter.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from faker import Faker

from core.config import Policy
from core.db import init_db
from core.discipline import CANCELLED_BY_REPROBATION
from core.models import (
    ActorKind,
    AuditEntry,
    Base,
    Booking,
    BookingStatus,
    Mentee,
    Mentor,
    Reprobation,
    Role,
    User,
    Warning,
)
from core.policy import CountedAbsence, decide

SYSTEM_COMMAND = "mentorship:process-absences"
ADMIN_USERNAME = "bench-admin"
PAST_DAYS, FUTURE_DAYS = 365, 61
FIRST_HOUR, LAST_HOUR = 8, 20  # sessions start on the hour, 08:00 to 19:00 UTC
SESSION = 3600
PENDING_SHARE, SYSTEM_SHARE, NO_SHOW_SHARE = 0.05, 0.05, 0.065
CHUNK = 20_000  # rows per executemany
BULK_TABLES = ("bookings", "audit_log", "warnings", "reprobations")

# What happens to a past session (planned before the replay; a cancellation can still pre-empt it).
FUTURE, PENDING, ATTENDED, NO_SHOW, SYSTEM_ABSENT = range(5)
# Who acted, in the replay's arrays: 0 nobody, -1 the legacy command, a positive number the mentor of that id.
NOBODY, SYSTEM = 0, -1

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Shape:
    bookings: int
    mentors: int
    mentees: int

    @classmethod
    def for_size(cls, bookings: int) -> Shape:
        """The demo at scale: 2,000 mentors and 100,000 mentees per million bookings."""
        if bookings < 10:
            raise ValueError(f"size {bookings}: the benchmark needs at least 10 bookings")
        return cls(bookings, max(1, round(bookings / 500)), max(1, round(bookings / 10)))


@dataclass(frozen=True)
class History:
    """What was generated, counted."""

    shape: Shape
    now: datetime
    seconds: float
    admin_username: str
    past: int
    pending: int
    mentor_no_shows: int
    system_absences: int
    warnings: int
    reprobations: int
    system_reprobations: int
    cancelled: int
    audit_entries: int


def mentor_username(mentor_id: int) -> str:
    return f"mentor{mentor_id}"


def generate(engine: sa.Engine, size: int, *, now: datetime, seed: int = 7, policy: Policy | None = None) -> History:
    """Fill an empty database (migrated here with `init_db`) with `size` bookings of history around `now`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    began = time.perf_counter()
    init_db(engine)
    with engine.connect() as connection:
        if connection.scalar(sa.select(sa.func.count()).select_from(Booking)):
            raise ValueError(f"{engine.url.render_as_string()} already holds bookings: give an empty database")
    shape = Shape.for_size(size)
    now = now.replace(microsecond=0)
    now_s = int(now.timestamp())
    writer = _Writer(engine)
    _insert_people(engine, shape, now, seed)
    plan = _plan(shape, now_s, np.random.default_rng(seed))
    with writer.indexes_dropped(BULK_TABLES):
        replay = _Replay(writer, plan, policy or Policy(), seed)
        replay.run()
        marks = _insert_bookings(writer, plan, replay)
        _insert_discipline(writer, replay)
    writer.advance_sequences(("mentors", "mentees", "bookings", "warnings", "reprobations"))
    past = plan.end <= now_s
    scheduled = replay.status == 0
    return History(
        shape=shape,
        now=now,
        seconds=time.perf_counter() - began,
        admin_username=ADMIN_USERNAME,
        past=int(past.sum()),
        pending=int((past & scheduled & ~replay.marked).sum()),
        mentor_no_shows=int((replay.marked & (plan.outcome == NO_SHOW)).sum()),
        system_absences=int((replay.marked & (plan.outcome == SYSTEM_ABSENT)).sum()),
        warnings=len(replay.warnings),
        reprobations=len(replay.reprobations),
        system_reprobations=sum(1 for r in replay.reprobations if r[4] == SYSTEM),
        cancelled=int((~scheduled).sum()),
        audit_entries=replay.audit_entries + marks,
    )


# -- writing -------------------------------------------------------------------------------------------------


class _Writer:
    """Bulk inserts in chunks, one transaction per chunk.

    SQLite (the benchmark's database): the sqlite3 driver's executemany directly, with values already in the
    form SQLAlchemy stores them (naive UTC text with microseconds, JSON as text): SQLAlchemy's per-value bind
    processing would cost as much again as the insert itself. Other databases: SQLAlchemy Core executemany of
    dicts, through the models' types.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    @contextmanager
    def indexes_dropped(self, tables: Sequence[str]) -> Iterator[None]:
        """On SQLite, load these tables without their indexes, then build each index again from the very
        statement the migrations created it with: sorting once is several times cheaper than keeping a
        million-row index in order row by row. Elsewhere the indexes stay as they are."""
        if not self.sqlite:
            yield
            return
        with self.engine.begin() as connection:
            every = connection.exec_driver_sql(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            ).all()
            indexes = [(name, sql) for name, table, sql in every if table in tables]
            for name, _ in indexes:
                connection.exec_driver_sql(f'DROP INDEX "{name}"')
        yield
        with self.engine.begin() as connection:
            for _, sql in indexes:
                connection.exec_driver_sql(sql)

    def times(self, seconds: I64) -> list[Any]:
        """Seconds since the epoch (0 for none) as this database's driver takes them."""
        if self.sqlite:
            text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
            values: list[Any] = np.strings.add(np.strings.replace(text, "T", " "), ".000000").tolist()
        else:
            values = [datetime.fromtimestamp(s, UTC) for s in seconds.tolist()]
        return [value if s else None for value, s in zip(values, seconds.tolist(), strict=True)]

    def time(self, seconds: int) -> Any:
        return self.times(np.array([seconds], dtype=np.int64))[0]

    def json(self, text: str | None) -> Any:
        return text if self.sqlite or text is None else json.loads(text)

    def insert(self, model: type[Base], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.engine.begin() as connection:
            if self.sqlite:
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join("?" * len(columns))
                insert = f"INSERT INTO {model.__tablename__} ({names}) VALUES ({marks})"  # noqa: S608 (model names)
                connection.exec_driver_sql(insert, list(rows))
            else:
                connection.execute(sa.insert(model), [dict(zip(columns, row, strict=True)) for row in rows])

    def advance_sequences(self, tables: Sequence[str]) -> None:
        """PostgreSQL only: rows were inserted with their ids, which leaves each id sequence behind; move it
        past the largest id so the next insert gets a fresh one (SQLite and MariaDB do this themselves)."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.begin() as connection:
            for table in tables:
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
                )

    def set_reprobations(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Name the reprobation of each (reprobation id, booking id)."""
        with self.engine.begin() as connection:
            if self.sqlite:
                connection.exec_driver_sql("UPDATE bookings SET reprobation_id = ? WHERE id = ?", list(pairs))
            else:
                connection.execute(
                    sa.update(Booking)
                    .where(Booking.id == sa.bindparam("b_id"))
                    .values(reprobation_id=sa.bindparam("r_id")),
                    [{"r_id": r, "b_id": b} for r, b in pairs],
                )


def _chunks(count: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, count, CHUNK):
        yield lo, min(lo + CHUNK, count)


# -- people --------------------------------------------------------------------------------------------------


def _names(count: int, seed: int) -> Iterator[str]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    first = [fake.first_name() for _ in range(400)]
    last = [fake.last_name() for _ in range(400)]
    pick = random.Random(seed)
    for _ in range(count):
        yield f"{pick.choice(first)} {pick.choice(last)}"


def _insert_people(engine: sa.Engine, shape: Shape, now: datetime, seed: int) -> None:
    # Nobody signs in to the benchmark's database with a password (its pages run with an injected session):
    # every user gets the hash of a random password nobody knows. bcrypt directly, as streamlit-authenticator's
    # Hasher does, without importing Streamlit here.
    password_hash = bcrypt.hashpw(secrets.token_urlsafe(24).encode(), bcrypt.gensalt()).decode()
    joined = now - timedelta(days=PAST_DAYS + 30)
    users = [
        {
            "username": mentor_username(i),
            "name": f"Mentor {i}",
            "email": f"mentor{i}@example.org",
            "role": Role.MENTOR,
            "mentor_id": i,
        }
        for i in range(1, shape.mentors + 1)
    ]
    users.append({"username": ADMIN_USERNAME, "name": "Bench Admin", "email": "admin@example.org", "role": Role.ADMIN})
    names = _names(shape.mentors, seed)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(Mentor),
            [
                {"id": i, "name": next(names), "email": f"mentor{i}@example.org", "active": True}
                for i in range(1, shape.mentors + 1)
            ],
        )
        connection.execute(
            sa.insert(User),
            [
                {"mentor_id": None, **user, "password_hash": password_hash, "disabled": False, "created_at": joined}
                for user in users
            ],
        )
    names = _names(shape.mentees, seed + 1)
    for lo, hi in _chunks(shape.mentees):
        with engine.begin() as connection:
            connection.execute(
                sa.insert(Mentee),
                [{"id": i, "name": next(names), "email": f"mentee{i}@example.org"} for i in range(lo + 1, hi + 1)],
            )


# -- the plan: who meets whom when, and what happens to each past session -----------------------------------


@dataclass
class _Plan:
    """One entry per booking, in id order (ids follow start time). Times are seconds since the epoch."""

    mentor: I64  # mentor id
    mentee: I64  # mentee id
    start: I64
    end: I64
    outcome: npt.NDArray[np.int8]
    mark_at: I64  # when its mark happens; 0 when it is not marked (pending, future, or marked after now)


def _non_first(keys: I64) -> npt.NDArray[np.bool_]:
    """True where a key already appeared earlier in the array."""
    _, first = np.unique(keys, return_index=True)
    repeated = np.ones(len(keys), dtype=bool)
    repeated[first] = False
    return repeated


def _plan(shape: Shape, now: int, rng: np.random.Generator) -> _Plan:
    n = shape.bookings
    hours = LAST_HOUR - FIRST_HOUR
    slots = (PAST_DAYS + FUTURE_DAYS) * hours
    origin = (now // 86_400 - PAST_DAYS) * 86_400
    mentee = rng.integers(0, shape.mentees, n)
    # Most mentees keep one mentor; one session in ten is with someone else.
    usual = rng.integers(0, shape.mentors, shape.mentees)
    mentor = np.where(rng.random(n) < 0.9, usual[mentee], rng.integers(0, shape.mentors, n))
    slot = rng.integers(0, slots, n)
    while True:  # draw again every slot that double-books a mentor or a mentee
        clash = _non_first(mentor * slots + slot) | _non_first(mentee * slots + slot)
        if not clash.any():
            break
        slot[clash] = rng.integers(0, slots, int(clash.sum()))
    start = origin + (slot // hours) * 86_400 + (FIRST_HOUR + slot % hours) * 3600
    order = np.lexsort((mentor, start))
    start, mentor, mentee = start[order], mentor[order] + 1, mentee[order] + 1
    end = start + SESSION

    draw = rng.random(n)
    past = end <= now
    outcome = np.full(n, FUTURE, dtype=np.int8)
    outcome[past] = ATTENDED
    outcome[past & (draw < PENDING_SHARE + SYSTEM_SHARE + NO_SHOW_SHARE)] = NO_SHOW
    outcome[past & (draw < PENDING_SHARE + SYSTEM_SHARE)] = SYSTEM_ABSENT
    outcome[past & (draw < PENDING_SHARE)] = PENDING
    # Mentors mark within a day or so; the legacy command ran hourly and marked what was still unset.
    mentor_delay = 600 + rng.exponential(18 * 3600, n).astype(np.int64)
    system_delay = 3600 + rng.integers(0, 3600, n)
    mark_at = end + np.where(outcome == SYSTEM_ABSENT, system_delay, mentor_delay)
    mark_at[(outcome < ATTENDED) | (mark_at > now)] = 0
    return _Plan(mentor, mentee, start, end, outcome, mark_at)


# -- the replay ----------------------------------------------------------------------------------------------


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _kind(actor: int) -> str | None:
    if actor == NOBODY:
        return None
    return (ActorKind.SYSTEM if actor == SYSTEM else ActorKind.MENTOR).value


def _name(actor: int) -> str | None:
    if actor == NOBODY:
        return None
    return SYSTEM_COMMAND if actor == SYSTEM else mentor_username(actor)


def operation_id(seed: int, booking_id: int) -> str:
    """The operation of the mark of this booking (each booking is marked at most once in the history)."""
    return f"{seed % 2**32:08x}-b00c-4000-8000-{booking_id:012x}"


def _booking_state(status: int, actor: int, reprobation_id: int | None) -> dict[str, Any]:
    """As core.discipline._booking_state writes it in the audit log."""
    return {
        "status": (BookingStatus.CANCELLED if status else BookingStatus.SCHEDULED).value,
        "cancelled_by": _kind(actor),
        "cancelled_by_name": _name(actor),
        "reprobation_id": reprobation_id,
    }


@dataclass
class _Mentee:
    """One mentee's bookings (in start order) and discipline while the replay walks through time."""

    mentee_id: int
    ids: list[int]
    start: list[int]
    status: list[int]
    reprobation: list[int]
    counted: list[CountedAbsence] = field(default_factory=list)
    absences: list[CountedAbsence] = field(default_factory=list)  # every absence: what the legacy command counted
    active_warnings: dict[int, list[int]] = field(default_factory=dict)  # cause booking id -> warning row
    active_reprobation: list[int] | None = None


class _Replay:
    """Replays the marks of each mentee in time order and keeps the final state of every booking.

    The marks' own audit entries are written with the bookings; the replay writes those of the discipline.
    """

    def __init__(self, writer: _Writer, plan: _Plan, policy: Policy, seed: int) -> None:
        n = len(plan.start)
        self.writer, self.plan, self.policy, self.seed = writer, plan, policy, seed
        self.status = np.zeros(n, dtype=np.int8)  # 1 cancelled
        self.marked = np.zeros(n, dtype=bool)
        self.cancelled_at = np.zeros(n, dtype=np.int64)
        self.cancelled_by = np.zeros(n, dtype=np.int64)
        self.reprobation = np.zeros(n, dtype=np.int64)
        self.restored_at = np.zeros(n, dtype=np.int64)
        self.restored_by = np.zeros(n, dtype=np.int64)
        # [id, mentee_id, booking_id, issued_at, issued_by, revoked_at, revoked_by]
        self.warnings: list[list[int]] = []
        # [id, mentee_id, booking_id, issued_at, issued_by, lifted_at, lifted_by]
        self.reprobations: list[list[int]] = []
        self.audit: list[tuple[Any, ...]] = []
        self.audit_entries = 0

    def run(self) -> None:
        plan = self.plan
        by_mentee = np.lexsort((plan.start, plan.mentee))  # start order within each mentee
        bounds = np.flatnonzero(np.diff(plan.mentee[by_mentee])) + 1
        for group in np.split(by_mentee, bounds):
            self._mentee(group)
            if len(self.audit) >= CHUNK:
                self._flush_audit()
        self._flush_audit()

    def _mentee(self, group: npt.NDArray[np.intp]) -> None:
        plan = self.plan
        index = group.tolist()
        state = _Mentee(
            mentee_id=int(plan.mentee[group[0]]),
            ids=[i + 1 for i in index],
            start=plan.start[group].tolist(),
            status=[0] * len(index),
            reprobation=[0] * len(index),
        )
        mentor, outcome, mark_at = (
            plan.mentor[group].tolist(),
            plan.outcome[group].tolist(),
            plan.mark_at[group].tolist(),
        )
        for t, k in sorted((m, k) for k, m in enumerate(mark_at) if m):
            if state.status[k]:
                continue  # cancelled by a reprobation before anyone marked it
            self.marked[index[k]] = True
            if outcome[k] == ATTENDED:
                continue
            absence = CountedAbsence(state.ids[k], datetime.fromtimestamp(state.start[k], UTC))
            state.absences.append(absence)
            op = operation_id(self.seed, state.ids[k])
            if outcome[k] == NO_SHOW:
                state.counted.append(absence)
                self._apply_policy(state, t, mentor[k], op)
            else:
                self._legacy_flow(state, absence, t, op)
        for k, i in enumerate(index):
            self.status[i] = state.status[k]
            self.reprobation[i] = state.reprobation[k]

    def _apply_policy(self, state: _Mentee, t: int, actor: int, op: str) -> None:
        """core.discipline.plan_policy then write_plan, for a person's mark (nothing protected)."""
        decision = decide(state.counted, self.policy)
        counted = {a.booking_id for a in state.counted}
        revoke = [w for cause, w in state.active_warnings.items() if cause not in decision.warning_causes]
        issue = sorted(decision.warning_causes - state.active_warnings.keys())
        lift: list[int] | None = None
        issue_reprobation: int | None = None
        if state.active_reprobation is not None:
            if not (decision.reprobated and state.active_reprobation[2] in counted):
                lift = state.active_reprobation
                issue_reprobation = decision.reprobation_cause
        else:
            issue_reprobation = decision.reprobation_cause
        for warning in revoke:
            warning[5], warning[6] = t, actor
            del state.active_warnings[warning[2]]
            self._record(
                op, t, actor, "warning.revoke", "warning", warning[0], {"revoked_at": None}, {"revoked_at": _iso(t)}
            )
        for cause in issue:
            self._issue_warning(state, cause, t, actor, op)
        if lift is not None:
            lift[5], lift[6] = t, actor
            state.active_reprobation = None
            self._record(
                op, t, actor, "reprobation.lift", "reprobation", lift[0], {"lifted_at": None}, {"lifted_at": _iso(t)}
            )
            for k, reprobation in enumerate(state.reprobation):
                # Every mentor is active and no slot is ever taken twice: the only conflict is a session begun.
                if reprobation == lift[0] and state.status[k] and state.start[k] > t:
                    before = self._state(state, k)
                    state.status[k] = 0
                    i = state.ids[k] - 1
                    self.restored_at[i], self.restored_by[i] = t, actor
                    self._record(
                        op, t, actor, "booking.restore", "booking", state.ids[k], before, self._state(state, k)
                    )
        if issue_reprobation is not None:
            self._reprobate(state, issue_reprobation, t, actor, op)

    def _legacy_flow(self, state: _Mentee, absence: CountedAbsence, t: int, op: str) -> None:
        """The hourly command's discipline: it counted every absence and only ever issued."""
        decision = decide(state.absences, self.policy)
        if decision.reprobation_cause == absence.booking_id and state.active_reprobation is None:
            self._reprobate(state, absence.booking_id, t, SYSTEM, op)
        elif absence.booking_id in decision.warning_causes and absence.booking_id not in state.active_warnings:
            self._issue_warning(state, absence.booking_id, t, SYSTEM, op)

    def _issue_warning(self, state: _Mentee, cause: int, t: int, actor: int, op: str) -> None:
        warning = [len(self.warnings) + 1, state.mentee_id, cause, t, actor, 0, NOBODY]
        self.warnings.append(warning)
        state.active_warnings[cause] = warning
        after = {"mentee_id": state.mentee_id, "booking_id": cause}
        self._record(op, t, actor, "warning.issue", "warning", warning[0], None, after)

    def _reprobate(self, state: _Mentee, cause: int, t: int, actor: int, op: str) -> None:
        reprobation = [len(self.reprobations) + 1, state.mentee_id, cause, t, actor, 0, NOBODY]
        self.reprobations.append(reprobation)
        state.active_reprobation = reprobation
        after = {"mentee_id": state.mentee_id, "booking_id": cause}
        self._record(op, t, actor, "reprobation.issue", "reprobation", reprobation[0], None, after)
        for k in range(len(state.ids)):
            if not state.status[k] and state.start[k] > t:
                before = self._state(state, k)
                state.status[k], state.reprobation[k] = 1, reprobation[0]
                i = state.ids[k] - 1
                self.cancelled_at[i], self.cancelled_by[i] = t, actor
                self.restored_at[i] = self.restored_by[i] = 0
                self._record(op, t, actor, "booking.cancel", "booking", state.ids[k], before, self._state(state, k))

    def _state(self, state: _Mentee, k: int) -> dict[str, Any]:
        i = state.ids[k] - 1
        return _booking_state(state.status[k], int(self.cancelled_by[i]), state.reprobation[k] or None)

    def _record(
        self,
        op: str,
        t: int,
        actor: int,
        action: str,
        target_type: str,
        target_id: int,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        self.audit.append(
            (
                op,
                t,
                _kind(actor),
                _name(actor),
                action,
                target_type,
                target_id,
                None if before is None else json.dumps(before),
                None if after is None else json.dumps(after),
            )
        )

    def _flush_audit(self) -> None:
        if not self.audit:
            return
        at = self.writer.times(np.array([row[1] for row in self.audit], dtype=np.int64))
        j = self.writer.json
        rows = [(r[0], when, *r[2:7], j(r[7]), j(r[8]), None) for r, when in zip(self.audit, at, strict=True)]
        self.writer.insert(AuditEntry, AUDIT_COLUMNS, rows)
        self.audit_entries += len(rows)
        self.audit = []


AUDIT_COLUMNS = (
    "operation_id",
    "at",
    "actor_kind",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "reason",
)
BOOKING_COLUMNS = (
    "id",
    "mentor_id",
    "mentee_id",
    "start_time",
    "end_time",
    "status",
    "attended",
    "attendance_marked_by",
    "attendance_marked_by_name",
    "attendance_marked_at",
    "cancelled_at",
    "cancelled_by",
    "cancelled_by_name",
    "cancellation_reason",
    "restored_at",
    "restored_by",
    "restored_by_name",
)
_UNMARKED = json.dumps(
    {"attended": None, "attendance_marked_by": None, "attendance_marked_by_name": None, "attendance_marked_at": None}
)


def _insert_bookings(writer: _Writer, plan: _Plan, replay: _Replay) -> int:
    """Every booking in id order (its reprobation is named later: the two tables refer to each other), and the
    audit entry of each mark. Returns how many marks were written."""
    marks = 0
    for lo, hi in _chunks(len(plan.start)):
        part = slice(lo, hi)
        marked = replay.marked[part]
        outcome = plan.outcome[part]
        marker = np.where(marked, np.where(outcome == SYSTEM_ABSENT, SYSTEM, plan.mentor[part]), NOBODY).tolist()
        marked_at = np.where(marked, plan.mark_at[part], 0)
        status = replay.status[part].tolist()
        cancelled_by = replay.cancelled_by[part].tolist()
        restored_by = replay.restored_by[part].tolist()
        cancelled_at = replay.cancelled_at[part]
        columns = zip(
            range(lo + 1, hi + 1),
            plan.mentor[part].tolist(),
            plan.mentee[part].tolist(),
            writer.times(plan.start[part]),
            writer.times(plan.end[part]),
            [(BookingStatus.CANCELLED if s else BookingStatus.SCHEDULED).value for s in status],
            [(o == ATTENDED if m else None) for o, m in zip(outcome.tolist(), marked.tolist(), strict=True)],
            [_kind(a) for a in marker],
            [_name(a) for a in marker],
            writer.times(marked_at),
            writer.times(cancelled_at),
            [_kind(a) for a in cancelled_by],
            [_name(a) for a in cancelled_by],
            [CANCELLED_BY_REPROBATION if c else None for c in cancelled_at.tolist()],
            writer.times(replay.restored_at[part]),
            [_kind(a) for a in restored_by],
            [_name(a) for a in restored_by],
            strict=True,
        )
        rows = list(columns)
        writer.insert(Booking, BOOKING_COLUMNS, rows)

        audit = []
        for row in rows:
            if row[9] is None:
                continue
            booking_id, attended, kind, name = row[0], row[6], row[7], row[8]
            after = {
                "attended": attended,
                "attendance_marked_by": kind,
                "attendance_marked_by_name": name,
                "attendance_marked_at": _iso(int(plan.mark_at[booking_id - 1])),
            }
            op = operation_id(replay.seed, booking_id)
            audit.append(
                (op, row[9], kind, name, "attendance.mark", "booking", booking_id, _UNMARKED, json.dumps(after), None)
            )
        writer.insert(AuditEntry, AUDIT_COLUMNS, [(*a[:7], writer.json(a[7]), writer.json(a[8]), None) for a in audit])
        marks += len(audit)
    return marks


WARNING_COLUMNS = (
    "id",
    "mentee_id",
    "booking_id",
    "issued_at",
    "issued_by",
    "issued_by_name",
    "revoked_at",
    "revoked_by",
    "revoked_by_name",
)
REPROBATION_COLUMNS = (
    "id",
    "mentee_id",
    "booking_id",
    "issued_at",
    "issued_by",
    "issued_by_name",
    "lifted_at",
    "lifted_by",
    "lifted_by_name",
)


def _discipline_rows(writer: _Writer, rows: Sequence[list[int]]) -> list[tuple[Any, ...]]:
    issued = writer.times(np.array([r[3] for r in rows], dtype=np.int64))
    ended = writer.times(np.array([r[5] for r in rows], dtype=np.int64))
    return [
        (r[0], r[1], r[2], i, _kind(r[4]), _name(r[4]), e, _kind(r[6]), _name(r[6]))
        for r, i, e in zip(rows, issued, ended, strict=True)
    ]


def _insert_discipline(writer: _Writer, replay: _Replay) -> None:
    for lo, hi in _chunks(len(replay.reprobations)):
        rows = _discipline_rows(writer, replay.reprobations[lo:hi])
        writer.insert(Reprobation, REPROBATION_COLUMNS, rows)
    for lo, hi in _chunks(len(replay.warnings)):
        writer.insert(Warning, WARNING_COLUMNS, _discipline_rows(writer, replay.warnings[lo:hi]))
    cancelled = np.flatnonzero(replay.reprobation)
    for lo, hi in _chunks(len(cancelled)):
        part = cancelled[lo:hi]
        writer.set_reprobations(list(zip(replay.reprobation[part].tolist(), (part + 1).tolist(), strict=True)))
