"""The database schema: mentors, mentees, bookings and the discipline that follows from absences.

Times are stored as naive UTC everywhere (SQLite and MySQL have no time zone type) and come back
timezone-aware in UTC; a naive datetime handed to the database is refused rather than guessed at.
Enums are stored by value as short strings so the three supported databases read them alike.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored as naive UTC with microseconds on every backend."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: times must carry a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class ActorKind(enum.StrEnum):
    """Who did something. Only Mentor and Admin are people who may decide an absence."""

    MENTOR = "Mentor"
    ADMIN = "Admin"
    SYSTEM = "System"
    MENTEE = "Mentee"


PERSON_KINDS = (ActorKind.MENTOR, ActorKind.ADMIN)


class BookingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Role(enum.StrEnum):
    MENTOR = "mentor"
    ADMIN = "admin"


class NotificationStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_N_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Mentor(Base):
    __tablename__ = "mentors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    active: Mapped[bool] = mapped_column(default=True)


class Mentee(Base):
    __tablename__ = "mentees"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))


class Booking(Base):
    """One session. `attended` is None while pending, True attended, False no-show."""

    __tablename__ = "bookings"
    __table_args__ = (
        sa.CheckConstraint("end_time > start_time", name="ends_after_start"),
        # A mentor's pending sessions: scheduled, unmarked, ended.
        sa.Index("ix_bookings_mentor_pending", "mentor_id", "status", "attended", "end_time"),
        # A mentee's absences in a window, and the policy's counted absences.
        sa.Index("ix_bookings_mentee_absences", "mentee_id", "attended", "attendance_marked_by", "start_time"),
        # A mentee's future scheduled bookings (cancelled by a reprobation).
        sa.Index("ix_bookings_mentee_future", "mentee_id", "status", "start_time"),
        # A mentor's overlapping bookings when a cancelled one is restored.
        sa.Index("ix_bookings_mentor_slot", "mentor_id", "start_time"),
        # The automated damage: absences by attribution.
        sa.Index("ix_bookings_marked_by", "attendance_marked_by", "attended"),
        # A mentor's bookings that end after a moment, covering an overlap test (migration 0002).
        sa.Index("ix_bookings_mentor_calendar", "mentor_id", "end_time", "start_time", "status"),
        # The audit of cancellations, by who cancelled and when, or by when (migration 0002).
        sa.Index("ix_bookings_cancellations", "cancelled_by", "cancelled_at", "status"),
        sa.Index("ix_bookings_cancelled_at", "cancelled_at", "status"),
        # The analytics' sessions that the tallies do not answer, and the per-mentee figures, read from the index
        # alone (migration 0003).
        sa.Index(
            "ix_bookings_analytics",
            "start_time",
            "status",
            "end_time",
            "mentor_id",
            "mentee_id",
            "attended",
            "attendance_marked_by",
            "attendance_marked_at",
        ),
        # The pending sessions of every mentor by how long they have waited (migration 0003).
        sa.Index("ix_bookings_backlog", "attended", "end_time", "status", "start_time", "mentor_id"),
        # The no-shows marked by a person, by mentee: the mentees with the most of them (migration 0003).
        sa.Index(
            "ix_bookings_counted_no_shows",
            "attended",
            "attendance_marked_by",
            "status",
            "start_time",
            "end_time",
            "mentee_id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(sa.ForeignKey("mentors.id"))
    mentee_id: Mapped[int] = mapped_column(sa.ForeignKey("mentees.id"))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[BookingStatus] = mapped_column(
        _enum(BookingStatus, "booking_status"), default=BookingStatus.SCHEDULED
    )
    attended: Mapped[bool | None] = mapped_column(default=None)
    attendance_marked_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "marked_by_kind"))
    attendance_marked_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    attendance_marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a revert sent an automated absence back to pending; cleared by the next mark.
    attendance_reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "cancelled_by_kind"))
    cancelled_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    cancellation_reason: Mapped[str | None] = mapped_column(sa.String(500))
    reprobation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("reprobations.id", use_alter=True, name="fk_bookings_reprobation_id_reprobations"),
        index=True,
    )
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    restored_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "restored_by_kind"))
    restored_by_name: Mapped[str | None] = mapped_column(sa.String(200))

    mentor: Mapped[Mentor] = relationship(lazy="raise")
    mentee: Mapped[Mentee] = relationship(lazy="raise")


class Warning(Base):
    """A warning to a mentee; its cause is one counted absence (the booking)."""

    __tablename__ = "warnings"
    __table_args__ = (sa.Index("ix_warnings_mentee_active", "mentee_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mentee_id: Mapped[int] = mapped_column(sa.ForeignKey("mentees.id"))
    booking_id: Mapped[int] = mapped_column(sa.ForeignKey("bookings.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    issued_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "warning_issued_by_kind"))
    issued_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "warning_revoked_by_kind"))
    revoked_by_name: Mapped[str | None] = mapped_column(sa.String(200))


class Reprobation(Base):
    """A mentee's disciplinary state; its cause is the counted absence that reached the threshold."""

    __tablename__ = "reprobations"
    __table_args__ = (sa.Index("ix_reprobations_mentee_active", "mentee_id", "lifted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mentee_id: Mapped[int] = mapped_column(sa.ForeignKey("mentees.id"))
    booking_id: Mapped[int] = mapped_column(sa.ForeignKey("bookings.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    issued_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "reprob_issued_by_kind"))
    issued_by_name: Mapped[str | None] = mapped_column(sa.String(200))
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lifted_by: Mapped[ActorKind | None] = mapped_column(_enum(ActorKind, "reprob_lifted_by_kind"))
    lifted_by_name: Mapped[str | None] = mapped_column(sa.String(200))


class User(Base):
    """A person who signs in. A mentor user is linked to the mentor whose sessions they mark."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    mentor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mentors.id"), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Append-only record of one change. All rows written by one user action share an operation id."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_target", "target_type", "target_id"),
        sa.Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operation_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_kind: Mapped[ActorKind] = mapped_column(_enum(ActorKind, "audit_actor_kind"))
    actor_name: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(64))
    target_type: Mapped[str] = mapped_column(sa.String(32))
    target_id: Mapped[int] = mapped_column()
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    reason: Mapped[str | None] = mapped_column(sa.Text)


class Notification(Base):
    """The outbox: one message to one person, queued in the transaction that caused it."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_status", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    operation_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(sa.String(64))
    recipient_name: Mapped[str] = mapped_column(sa.String(200))
    recipient_email: Mapped[str | None] = mapped_column(sa.String(320))
    mentee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mentees.id"))
    mentor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("mentors.id"))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    # At most one message per key: reminders use "reminder:<mentor>:<date>".
    dedup_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    status: Mapped[NotificationStatus] = mapped_column(
        _enum(NotificationStatus, "notification_status"), default=NotificationStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set just before handing the message to SMTP, so a crash after sending is not blindly resent.
    sending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Hours from a session's end to its mark by a person, binned: bin i holds [EDGES[i-1], EDGES[i]), bin 0 everything
# below the first edge, the last bin everything from the last edge on. Frozen in migration 0003, which counts them.
HOURS_TO_MARK_EDGES: tuple[float, ...] = (
    0.25,
    0.5,
    1,
    2,
    3,
    4,
    6,
    8,
    12,
    18,
    24,
    36,
    48,
    72,
    96,
    120,
    168,
    240,
    336,
    504,
    720,
)
ATTENDANCE_COUNTS = (
    "sessions",
    "pending",
    *(f"{kind}_{mark}" for kind in ("mentor", "admin", "system", "unattributed") for mark in ("attended", "no_shows")),
)
TIME_TO_MARK_BINS = tuple(f"marked_in_bin_{i:02d}" for i in range(len(HOURS_TO_MARK_EDGES) + 1))


# Held-session counts kept by database triggers on `bookings` in the writer's transaction (migration 0003), per
# mentor and week (Monday, UTC, of the session's start), per week for all mentors, and per mentor and four weeks
# (for the per-mentor figures of long ranges): a booking counts while its
# status is `scheduled`. `last_end` is the latest end ever counted in the row: once it has passed, every session
# of the row is held. The counts: sessions; pending (no mark); attended and no-shows by the kind that marked them
# (unattributed: no kind); marks by a person by hours to mark (TIME_TO_MARK_BINS). Read by core/analytics.py only.
def _tally_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("week", sa.Date(), primary_key=True),
        sa.Column("last_end", UTCDateTime(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default="0")
            for name in ATTENDANCE_COUNTS + TIME_TO_MARK_BINS
        ),
    ]


attendance_tallies = sa.Table(
    "attendance_tallies",
    Base.metadata,
    sa.Column("mentor_id", sa.ForeignKey("mentors.id"), primary_key=True),
    *_tally_columns(),
    sa.Index("ix_attendance_tallies_week", "week"),
)
weekly_attendance_tallies = sa.Table("weekly_attendance_tallies", Base.metadata, *_tally_columns())
# Per mentor and four weeks (`week` is the first Monday; the spans follow each other from Monday 1970-01-05 on).
four_week_attendance_tallies = sa.Table(
    "four_week_attendance_tallies",
    Base.metadata,
    sa.Column("mentor_id", sa.ForeignKey("mentors.id"), primary_key=True),
    *_tally_columns(),
)
FOUR_WEEKS_FROM = date(1970, 1, 5)
