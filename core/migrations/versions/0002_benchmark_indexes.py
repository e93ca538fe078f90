"""indexes that keep the product quick at a million bookings (found by the benchmark, bench/)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        # A mentor's calendar around a moment: the bookings that end after it, covering the overlap test
        # (start, status). Restoring a cancelled session and locking the slots of a mentee's future sessions
        # probe it; through ix_bookings_mentor_slot they read the mentor's whole history before the session.
        batch_op.create_index(
            "ix_bookings_mentor_calendar", ["mentor_id", "end_time", "start_time", "status"], unique=False
        )
        # The admins' audit of cancellations, newest first: by who cancelled (and when), or by when alone;
        # status is there so that "cancelled, or cancelled once and restored" is read from the index.
        batch_op.create_index("ix_bookings_cancellations", ["cancelled_by", "cancelled_at", "status"], unique=False)
        batch_op.create_index("ix_bookings_cancelled_at", ["cancelled_at", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_cancelled_at")
        batch_op.drop_index("ix_bookings_cancellations")
        batch_op.drop_index("ix_bookings_mentor_calendar")
