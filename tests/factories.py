"""The smallest data a test needs, written in one transaction and returned as ids."""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit_authenticator as stauth
from sqlalchemy.orm import Session

from core.models import ActorKind, Booking, BookingStatus, Mentee, Mentor, Role, User

HOUR = timedelta(hours=1)


def add_mentor(session: Session, name: str = "Maria Mentor", *, active: bool = True) -> int:
    mentor = Mentor(name=name, email=f"{name.split()[0].lower()}@example.org", active=active)
    session.add(mentor)
    session.flush()
    return mentor.id


def add_mentee(session: Session, name: str = "Ana Ruiz") -> int:
    mentee = Mentee(name=name, email=f"{name.split()[0].lower()}@example.org")
    session.add(mentee)
    session.flush()
    return mentee.id


def add_booking(
    session: Session,
    mentor_id: int,
    mentee_id: int,
    start: datetime,
    *,
    hours: float = 1,
    attended: bool | None = None,
    marked_by: ActorKind | None = None,
    marked_by_name: str | None = None,
    status: BookingStatus = BookingStatus.SCHEDULED,
) -> int:
    booking = Booking(
        mentor_id=mentor_id,
        mentee_id=mentee_id,
        start_time=start,
        end_time=start + timedelta(hours=hours),
        status=status,
        attended=attended,
        attendance_marked_by=marked_by,
        attendance_marked_by_name=marked_by_name if marked_by_name else (marked_by.value if marked_by else None),
        attendance_marked_at=start + timedelta(hours=hours) if attended is not None else None,
    )
    session.add(booking)
    session.flush()
    return booking.id


_HASHES: dict[str, str] = {}


def add_user(
    session: Session,
    username: str,
    role: Role,
    *,
    mentor_id: int | None = None,
    password: str = "correct-horse",
    disabled: bool = False,
    created_at: datetime,
) -> int:
    # bcrypt is slow on purpose; tests reuse one hash per password.
    if password not in _HASHES:
        _HASHES[password] = stauth.Hasher.hash(password)
    user = User(
        username=username,
        name=username.title(),
        email=f"{username}@example.org",
        role=role,
        mentor_id=mentor_id,
        password_hash=_HASHES[password],
        disabled=disabled,
        created_at=created_at,
    )
    session.add(user)
    session.flush()
    return user.id
