"""A realistic, deterministic demo history, relative to the moment it is loaded.

About 12 mentors, 150 mentees and 3,000 one-hour sessions from 120 days ago to 60 days ahead, no mentor
booked twice at once. Past sessions were marked by their mentors through the real handlers
(`core.attendance`), each at a moment just after the session, in the order the marks were made: every
mentor-made warning and reprobation comes from the policy and is audited as the mentor's. Some sessions
are still pending; a few were cancelled by their mentee.

The incident is written as the legacy command `mentorship:process-absences` left it (the core refuses a
System mark, so its rows are written directly, and, like every row the booking system wrote before Attendance
Desk, without audit entries): one run, 18 days ago, stamped absent every session still pending at that time;
its warnings; exactly 2 reprobated mentees and exactly 26 of their later sessions cancelled, among which some
have started since and some have had their slot booked by another mentee of the same mentor. One of the two
reprobated mentees also has a mentor-marked absence (with the mentor's warning). A few older absences carry
no attribution at all (the suspected damage).

Everything derives from the seed (`random.Random(seed)`, Faker seeded) and `now`.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from alembic import command
from faker import Faker
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.attendance import mark_no_show
from core.audit import Actor
from core.config import Policy
from core.db import alembic_config, init_db, make_engine
from core.discipline import CANCELLED_BY_REPROBATION
from core.errors import InvalidInput
from core.models import ActorKind, AuditEntry, Booking, BookingStatus, Mentee, Mentor, Reprobation, Role, User, Warning
from core.notifications import take_history_as_delivered
from core.policy import CountedAbsence, decide
from core.users import add_user

LEGACY_COMMAND = "mentorship:process-absences"
CANCELLED_BY_MENTEE = "cancelled by mentee"
DEMO_MENTORS = 12
DEMO_MENTEES = 150
DAYS_BACK = 120
DAYS_AHEAD = 60
FIRST_HOUR, LAST_HOUR = 8, 18  # sessions start on the hour, 08:00 to 18:00 UTC
INCIDENT_DAYS_AGO = 18
INCIDENT_HOUR = 2  # the legacy command's run, at night: no session ends then
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The two reprobated mentees' sessions after the incident (all cancelled by it): 14 + 12 = 26.
R1_AFTER_DAYS = (-16, -11, -6, -2, *(3 + 6 * i for i in range(10)))
R2_AFTER_DAYS = (-15, -9, -4, *(4 + 6 * i for i in range(9)))
RANDOM_NO_SHOW_RATE = 0.05
MENTEE_CANCEL_RATE = 0.025


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: Role


DEMO_USERS = (
    DemoUser("admin", "demo-admin-pass", Role.ADMIN),
    DemoUser("mentor", "demo-mentor-pass", Role.MENTOR),
)


@dataclass(frozen=True)
class DemoSummary:
    """What the demo load wrote (all zero with `loaded=False` when the database already held data)."""

    loaded: bool
    message: str
    mentors: int = 0
    mentees: int = 0
    bookings: int = 0
    marked_by_mentors: int = 0
    pending: int = 0
    mentor_warnings: int = 0
    mentor_reprobations: int = 0
    system_absences: int = 0
    system_warnings: int = 0
    system_reprobations: int = 0
    system_cancellations: int = 0
    unattributed_absences: int = 0
    users: tuple[DemoUser, ...] = ()


@dataclass
class _Session:
    """One generated booking before it is written, and what happens to it."""

    mentor: int
    mentee: int
    start: datetime
    # random | attended | no-show | pending | incident | unattributed | later | taker | cancelled
    outcome: str = "random"
    cancelled_by_mentee_at: datetime | None = None


@dataclass
class _World:
    mentors: list[tuple[str, str]] = field(default_factory=list)
    mentees: list[tuple[str, str]] = field(default_factory=list)
    sessions: list[_Session] = field(default_factory=list)
    mentor_busy: set[tuple[int, datetime]] = field(default_factory=set)
    mentee_busy: set[tuple[int, datetime]] = field(default_factory=set)

    def free(self, mentor: int, mentee: int, start: datetime) -> bool:
        return (mentor, start) not in self.mentor_busy and (mentee, start) not in self.mentee_busy

    def book(self, mentor: int, mentee: int, start: datetime, outcome: str = "random") -> _Session:
        self.mentor_busy.add((mentor, start))
        self.mentee_busy.add((mentee, start))
        session = _Session(mentor, mentee, start, outcome)
        self.sessions.append(session)
        return session


def database_holds_data(session: Session) -> bool:
    for model in (Booking, Mentor, Mentee, User):
        if session.scalar(sa.select(sa.literal(1)).select_from(model).limit(1)) is not None:
            return True
    return False


def reset_database(engine: sa.Engine) -> None:
    """Empty the database: every table dropped (the audit log's triggers with it), then the newest schema.

    The audit log refuses DELETE, so the schema is taken down to nothing and built again. SQLite checks
    foreign keys while a migration rebuilds a table, hence a connection with the checks off for that step.
    """
    target = engine
    if engine.dialect.name == "sqlite":
        target = make_engine(engine.url.render_as_string(hide_password=False))

        @event.listens_for(target, "connect")
        def _foreign_keys_off(dbapi_connection: object, _record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.close()

    try:
        command.downgrade(alembic_config(target), "base")
    finally:
        if target is not engine:
            target.dispose()
    init_db(engine)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", ".", text.lower()).strip(".")


def _names(fake: Faker, count: int, domain: str, taken: set[str]) -> list[tuple[str, str]]:
    people: list[tuple[str, str]] = []
    while len(people) < count:
        name = f"{fake.first_name()} {fake.last_name()}"
        if name in taken:
            continue
        taken.add(name)
        people.append((name, f"{_slug(name)}@{domain}"))
    return people


def _plan(rng: random.Random, fake: Faker, now: datetime, t_incident: datetime) -> tuple[_World, dict[str, int]]:
    """The whole history as plain data; `roles` names the mentees the story needs."""
    world = _World()
    names: set[str] = set()
    world.mentors = _names(fake, DEMO_MENTORS, "mentors.example.org", names)
    world.mentees = _names(fake, DEMO_MENTEES, "example.com", names)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)

    # Each mentee has a main mentor (dealt round-robin after a shuffle) and a quarter have a second one.
    order = list(range(DEMO_MENTEES))
    rng.shuffle(order)
    main = {mentee: i % DEMO_MENTORS for i, mentee in enumerate(order)}
    rosters: dict[int, list[int]] = defaultdict(list)
    for mentee in range(DEMO_MENTEES):
        rosters[main[mentee]].append(mentee)
    for mentee in range(DEMO_MENTEES):
        if rng.random() < 0.25:
            rosters[(main[mentee] + rng.randrange(1, DEMO_MENTORS)) % DEMO_MENTORS].append(mentee)
    activity = [rng.uniform(0.4, 1.6) for _ in range(DEMO_MENTEES)]

    def only_main(mentor: int) -> list[int]:
        return [m for m in rosters[mentor] if main[m] == mentor and sum(m in r for r in rosters.values()) == 1]

    # The mentees the story needs. Mentor 0 is the demo mentor (user `mentor`).
    roles = {
        "r1": only_main(1)[0],  # reprobated by the incident: two System absences
        "r2": only_main(2)[0],  # reprobated by the incident: a mentor's absence, then System absences
        "warned": only_main(0)[0],  # a mentor's absence lately: a no-show now means a reprobation
        "clean": only_main(0)[1],  # never absent: a no-show now means a warning
        "reprobated": only_main(3)[0],  # two mentor-marked absences: the mentor-issued reprobation
    }
    scripted = set(roles.values())
    for mentor in range(DEMO_MENTORS):
        rosters[mentor] = [m for m in rosters[mentor] if m not in (roles["r1"], roles["r2"])]

    # Ordinary sessions: about 1.8 a weekday per mentor, fewer at weekends.
    for offset in range(-DAYS_BACK, DAYS_AHEAD):
        day = day0 + offset * DAY
        weekend = day.weekday() >= 5
        for mentor in range(DEMO_MENTORS):
            count = rng.choice((0, 0, 0, 1)) if weekend else rng.choice((1, 1, 2, 2, 2, 3))
            for hour in sorted(rng.sample(range(FIRST_HOUR, LAST_HOUR + 1), count)):
                start = day + hour * HOUR
                candidates = [m for m in rosters[mentor] if (m, start) not in world.mentee_busy]
                if candidates:
                    mentee = rng.choices(candidates, weights=[activity[m] for m in candidates])[0]
                    world.book(mentor, mentee, start)

    def scripted_session(mentor: int, mentee: int, offset: int, outcome: str) -> _Session:
        for day_offset in (offset, offset + 1, offset - 1, offset + 2):
            hours = list(range(FIRST_HOUR, LAST_HOUR + 1))
            rng.shuffle(hours)
            for hour in hours:
                start = day0 + day_offset * DAY + hour * HOUR
                if world.free(mentor, mentee, start):
                    return world.book(mentor, mentee, start, outcome)
        raise RuntimeError(f"demo: no free slot for mentor {mentor} near day {offset}")  # pragma: no cover

    # R1: attended regularly, then two sessions nobody marked before the incident swept them up.
    for offset in range(-116, -29, 8):
        scripted_session(1, roles["r1"], offset, "attended")
    for offset in (-27, -22):
        scripted_session(1, roles["r1"], offset, "incident")
    r1_after = [scripted_session(1, roles["r1"], offset, "later") for offset in R1_AFTER_DAYS]
    # R2: a real no-show marked by the mentor (the mentor's warning), then two unmarked sessions.
    for offset in range(-113, -44, 9):
        scripted_session(2, roles["r2"], offset, "attended")
    scripted_session(2, roles["r2"], -40, "no-show")
    scripted_session(2, roles["r2"], -35, "attended")
    for offset in (-30, -24):
        scripted_session(2, roles["r2"], offset, "incident")
    r2_after = [scripted_session(2, roles["r2"], offset, "later") for offset in R2_AFTER_DAYS]
    # Since the incident, another mentee took a cancelled slot of each: restoring those would double-book.
    for cancelled in (next(s for s in r1_after if s.start > now), next(s for s in r2_after if s.start > now)):
        takers = [
            m for m in rosters[cancelled.mentor] if m not in scripted and (m, cancelled.start) not in world.mentee_busy
        ]
        taker = takers[0]
        world.mentee_busy.add((taker, cancelled.start))
        world.sessions.append(_Session(cancelled.mentor, taker, cancelled.start, "taker"))

    # The demo mentor's two telling pending sessions, and the earlier no-show that makes one a reprobation.
    scripted_session(0, roles["warned"], -28, "no-show")
    scripted_session(0, roles["warned"], -3, "pending")
    scripted_session(0, roles["clean"], -4, "pending")
    # The mentor-issued reprobation: two no-shows ten days apart.
    scripted_session(3, roles["reprobated"], -55, "no-show")
    scripted_session(3, roles["reprobated"], -45, "no-show")

    # Ten more mentees each had one session still unmarked when the legacy command ran (its warnings).
    ordinary = [s for s in world.sessions if s.outcome == "random" and s.mentee not in scripted]

    def pick(count: int, earliest: datetime, latest: datetime, outcome: str, spared: list[int]) -> list[int]:
        """Mark `count` ordinary sessions in the period, of distinct mentees not in `spared`, with `outcome`."""
        candidates = [s for s in ordinary if s.outcome == "random" and earliest <= s.start <= latest]
        rng.shuffle(candidates)
        chosen: list[int] = []
        for s in candidates:
            if len(chosen) < count and s.mentee not in chosen and s.mentee not in spared:
                s.outcome = outcome
                chosen.append(s.mentee)
        return chosen

    incident_mentees = pick(10, t_incident - 40 * DAY, t_incident - 2 * DAY, "incident", [])
    # Three old absences with no attribution at all, on mentees the incident did not touch.
    pick(3, day0 - 100 * DAY, day0 - 65 * DAY, "unattributed", incident_mentees)
    # A few sessions were cancelled by their mentee, a few hours to three days ahead.
    for s in ordinary:
        if s.outcome == "random" and rng.random() < MENTEE_CANCEL_RATE:
            s.cancelled_by_mentee_at = min(s.start - rng.uniform(2, 72) * HOUR, now - rng.uniform(1, 30) * HOUR)
            s.outcome = "cancelled"

    roles["incident_mentees"] = len(incident_mentees)
    for i, mentee in enumerate(incident_mentees):
        roles[f"incident_{i}"] = mentee
    return world, roles


def _mark_delay(rng: random.Random, laggard: bool) -> timedelta | None:
    """How long after a session its mentor marks it; None: not yet."""
    if laggard and rng.random() < 0.2:
        return None
    r = rng.random()
    if r < 0.6:
        return rng.uniform(5, 180) * timedelta(minutes=1)
    if r < 0.85:
        return rng.uniform(3, 24) * HOUR
    if r < 0.96:
        return rng.uniform(1, 3) * DAY
    return None


def load_demo(session: Session, *, now: datetime, seed: int = 7, policy: Policy | None = None) -> DemoSummary:
    """Fill an empty database with the demo history relative to `now`; the same seed and `now` give the
    same data. A database that already holds mentors, mentees, bookings or users is left alone."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    if database_holds_data(session):
        return DemoSummary(
            loaded=False,
            message="the database already holds data: the demo was not loaded (use --reset to empty it first)",
        )
    policy = policy or Policy()
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    t_incident = day0 - INCIDENT_DAYS_AGO * DAY + INCIDENT_HOUR * HOUR
    world, roles = _plan(rng, fake, now, t_incident)

    mentors = [Mentor(name=name, email=email, active=True) for name, email in world.mentors]
    mentees = [Mentee(name=name, email=email) for name, email in world.mentees]
    session.add_all(mentors)
    session.add_all(mentees)
    session.flush()
    world.sessions.sort(key=lambda s: (s.start, s.mentor))
    rows = [
        {
            "mentor_id": mentors[s.mentor].id,
            "mentee_id": mentees[s.mentee].id,
            "start_time": s.start,
            "end_time": s.start + HOUR,
            "status": BookingStatus.SCHEDULED if s.cancelled_by_mentee_at is None else BookingStatus.CANCELLED,
            "attended": False if s.outcome == "unattributed" else None,
            "cancelled_at": s.cancelled_by_mentee_at,
            "cancelled_by": ActorKind.MENTEE if s.cancelled_by_mentee_at is not None else None,
            "cancelled_by_name": mentees[s.mentee].name if s.cancelled_by_mentee_at is not None else None,
            "cancellation_reason": CANCELLED_BY_MENTEE if s.cancelled_by_mentee_at is not None else None,
        }
        for s in world.sessions
    ]
    # One INSERT for all sessions (the unit of work would take seconds); ids come back in the rows' order.
    booking_ids = list(session.scalars(sa.insert(Booking).returning(Booking.id, sort_by_parameter_order=True), rows))

    # When each mentor marked each past session (in the order they did), and what they found.
    laggards = {5, 9}
    marks: list[tuple[datetime, int]] = []
    for i, s in enumerate(world.sessions):
        end = s.start + HOUR
        if end > now or s.outcome not in ("random", "attended", "no-show"):
            continue
        delay = _mark_delay(rng, s.mentor in laggards and end > t_incident)
        if delay is None and s.outcome != "random":
            delay = rng.uniform(1, 20) * HOUR
        if end <= t_incident and (delay is None or end + delay >= t_incident):
            # Every session that had ended was marked before the legacy run, except the ones it swept up.
            delay = (t_incident - end) * rng.uniform(0.2, 0.9)
        if delay is None or end + delay > now:
            continue
        marks.append((end + delay, i))
    marks.sort()

    actors = [Actor(ActorKind.MENTOR, m.name, m.id) for m in mentors]
    actors[0] = Actor(ActorKind.MENTOR, "mentor", mentors[0].id)
    never_absent = {roles["clean"], roles["r1"], roles["r2"], roles["warned"], roles["reprobated"]}
    never_absent |= {roles[f"incident_{i}"] for i in range(roles["incident_mentees"])}
    absences: dict[int, list[datetime]] = defaultdict(list)
    cancelled: set[int] = set()
    swept = [b for b, s in zip(booking_ids, world.sessions, strict=True) if s.outcome == "incident"]
    attended = _AttendedMarks(session)
    incident_done = False
    for marked_at, i in marks:
        if not incident_done and marked_at >= t_incident:
            attended.write()
            _legacy_run(session, t_incident, swept)
            incident_done = True
        s, booking_id = world.sessions[i], booking_ids[i]
        if booking_id in cancelled:
            continue
        no_show = s.outcome == "no-show"
        if s.outcome == "random" and s.mentee not in never_absent and rng.random() < RANDOM_NO_SHOW_RATE:
            # At most one absence in any policy window: warnings, but no reprobation beyond the scripted one.
            no_show = all(abs(s.start - other) >= policy.window for other in absences[s.mentee])
        if no_show:
            absences[s.mentee].append(s.start)
            attended.write()
            result = mark_no_show(session, booking_id, actor=actors[s.mentor], now=marked_at, policy=policy)
            cancelled.update(result.consequences.bookings_cancelled)
        else:
            attended.add(booking_id, actors[s.mentor], marked_at)
    attended.write()
    if not incident_done:  # pragma: no cover - marks always run past the incident
        _legacy_run(session, t_incident, swept)

    for user in DEMO_USERS:
        add_user(
            session,
            user.username,
            role=user.role,
            password=user.password,
            now=now,
            mentor_id=mentors[0].id if user.role is Role.MENTOR else None,
            name="Demo Admin" if user.role is Role.ADMIN else None,
        )
    # The history's mentees heard about their warnings at the time: nothing of it waits in the outbox.
    take_history_as_delivered(session, until=now)
    session.flush()
    return _summary(session, now)


class _AttendedMarks:
    """Attended marks, written in bulk exactly as `core.attendance.mark_attended` writes them (the booking's
    mark, one audit entry under an operation of its own, as the mentor and at the mark's moment).

    An attended mark changes no discipline, so only the writing is batched; `write()` runs before every other
    write so the audit log keeps the order in which things happened. (Through the handler, 1,800 marks take
    most of the demo's time.)
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.marks: list[tuple[int, Actor, datetime]] = []

    def add(self, booking_id: int, actor: Actor, at: datetime) -> None:
        self.marks.append((booking_id, actor, at))

    def write(self) -> None:
        if not self.marks:
            return
        self.session.flush()
        self.session.execute(
            sa.update(Booking),
            [
                {
                    "id": booking_id,
                    "attended": True,
                    "attendance_marked_by": actor.kind,
                    "attendance_marked_by_name": actor.name,
                    "attendance_marked_at": at,
                    "attendance_reverted_at": None,
                }
                for booking_id, actor, at in self.marks
            ],
        )
        unmarked = {
            "attended": None,
            "attendance_marked_by": None,
            "attendance_marked_by_name": None,
            "attendance_marked_at": None,
        }
        self.session.execute(
            sa.insert(AuditEntry),
            [
                {
                    "operation_id": str(uuid.uuid4()),
                    "at": at,
                    "actor_kind": actor.kind,
                    "actor_name": actor.name,
                    "action": "attendance.mark",
                    "target_type": "booking",
                    "target_id": booking_id,
                    "before": unmarked,
                    "after": {
                        "attended": True,
                        "attendance_marked_by": actor.kind.value,
                        "attendance_marked_by_name": actor.name,
                        "attendance_marked_at": at.isoformat(),
                    },
                    "reason": None,
                }
                for booking_id, actor, at in self.marks
            ],
        )
        # Rows the handlers loaded before are now stale in the session: read them afresh.
        self.session.expire_all()
        self.marks.clear()


def _legacy_run(session: Session, at: datetime, swept: list[int]) -> None:
    """What one run of the legacy command wrote: every pending past session absent, then its own policy
    (which counted every absence, whoever marked it) with warnings, reprobations and cancellations."""
    session.flush()
    session.execute(
        sa.update(Booking)
        .where(Booking.id.in_(swept))
        .values(
            attended=False,
            attendance_marked_by=ActorKind.SYSTEM,
            attendance_marked_by_name=LEGACY_COMMAND,
            attendance_marked_at=at,
        )
        .execution_options(synchronize_session=False)
    )
    legacy_policy = Policy()
    mentee_ids = session.scalars(sa.select(Booking.mentee_id).where(Booking.id.in_(swept)).distinct())
    for mentee_id in sorted(mentee_ids):
        absences = [
            CountedAbsence(i, t)
            for i, t in session.execute(
                sa.select(Booking.id, Booking.start_time).where(
                    Booking.mentee_id == mentee_id, Booking.attended.is_(False)
                )
            )
        ]
        decision = decide(absences, legacy_policy)
        warned = set(
            session.scalars(
                sa.select(Warning.booking_id).where(Warning.mentee_id == mentee_id, Warning.revoked_at.is_(None))
            )
        )
        for cause in sorted(decision.warning_causes - warned):
            session.add(
                Warning(
                    mentee_id=mentee_id,
                    booking_id=cause,
                    issued_at=at,
                    issued_by=ActorKind.SYSTEM,
                    issued_by_name=LEGACY_COMMAND,
                )
            )
        reprobated = session.scalar(
            sa.select(Reprobation.id).where(Reprobation.mentee_id == mentee_id, Reprobation.lifted_at.is_(None))
        )
        if decision.reprobation_cause is None or reprobated is not None:
            continue
        reprobation = Reprobation(
            mentee_id=mentee_id,
            booking_id=decision.reprobation_cause,
            issued_at=at,
            issued_by=ActorKind.SYSTEM,
            issued_by_name=LEGACY_COMMAND,
        )
        session.add(reprobation)
        session.flush()
        session.execute(
            sa.update(Booking)
            .where(
                Booking.mentee_id == mentee_id,
                Booking.status == BookingStatus.SCHEDULED,
                Booking.start_time > at,
            )
            .values(
                status=BookingStatus.CANCELLED,
                cancelled_at=at,
                cancelled_by=ActorKind.SYSTEM,
                cancelled_by_name=LEGACY_COMMAND,
                cancellation_reason=CANCELLED_BY_REPROBATION,
                reprobation_id=reprobation.id,
            )
            .execution_options(synchronize_session=False)
        )
    session.flush()
    session.expire_all()


def _count(session: Session, model: type[object], *where: sa.ColumnElement[bool]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def _summary(session: Session, now: datetime) -> DemoSummary:
    return DemoSummary(
        loaded=True,
        message="demo data loaded",
        mentors=_count(session, Mentor),
        mentees=_count(session, Mentee),
        bookings=_count(session, Booking),
        marked_by_mentors=_count(session, Booking, Booking.attendance_marked_by == ActorKind.MENTOR),
        pending=_count(
            session,
            Booking,
            Booking.status == BookingStatus.SCHEDULED,
            Booking.attended.is_(None),
            Booking.end_time <= now,
        ),
        mentor_warnings=_count(session, Warning, Warning.issued_by == ActorKind.MENTOR),
        mentor_reprobations=_count(session, Reprobation, Reprobation.issued_by == ActorKind.MENTOR),
        system_absences=_count(
            session, Booking, Booking.attended.is_(False), Booking.attendance_marked_by == ActorKind.SYSTEM
        ),
        system_warnings=_count(session, Warning, Warning.issued_by == ActorKind.SYSTEM),
        system_reprobations=_count(session, Reprobation, Reprobation.issued_by == ActorKind.SYSTEM),
        system_cancellations=_count(session, Booking, Booking.cancelled_by == ActorKind.SYSTEM),
        unattributed_absences=_count(
            session, Booking, Booking.attended.is_(False), Booking.attendance_marked_by.is_(None)
        ),
        users=DEMO_USERS,
    )
