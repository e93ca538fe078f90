"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("at", core.models.UTCDateTime(), nullable=False),
        sa.Column(
            "actor_kind",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="audit_actor_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_operation_id"), ["operation_id"], unique=False)
        batch_op.create_index("ix_audit_log_target", ["target_type", "target_id"], unique=False)

    op.create_table(
        "mentees",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentees")),
    )
    op.create_table(
        "mentors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentors")),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        sa.Column("mentee_id", sa.Integer(), nullable=False),
        sa.Column("start_time", core.models.UTCDateTime(), nullable=False),
        sa.Column("end_time", core.models.UTCDateTime(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "cancelled",
                name="booking_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attended", sa.Boolean(), nullable=True),
        sa.Column(
            "attendance_marked_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="marked_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("attendance_marked_by_name", sa.String(length=200), nullable=True),
        sa.Column("attendance_marked_at", core.models.UTCDateTime(), nullable=True),
        sa.Column("attendance_reverted_at", core.models.UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", core.models.UTCDateTime(), nullable=True),
        sa.Column(
            "cancelled_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="cancelled_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("cancelled_by_name", sa.String(length=200), nullable=True),
        sa.Column("cancellation_reason", sa.String(length=500), nullable=True),
        sa.Column("reprobation_id", sa.Integer(), nullable=True),
        sa.Column("restored_at", core.models.UTCDateTime(), nullable=True),
        sa.Column(
            "restored_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="restored_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("restored_by_name", sa.String(length=200), nullable=True),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_bookings_ends_after_start")),
        sa.ForeignKeyConstraint(["mentee_id"], ["mentees.id"], name=op.f("fk_bookings_mentee_id_mentees")),
        sa.ForeignKeyConstraint(["mentor_id"], ["mentors.id"], name=op.f("fk_bookings_mentor_id_mentors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index("ix_bookings_marked_by", ["attendance_marked_by", "attended"], unique=False)
        batch_op.create_index("ix_bookings_mentee_absences", ["mentee_id", "attended", "start_time"], unique=False)
        batch_op.create_index("ix_bookings_mentee_future", ["mentee_id", "status", "start_time"], unique=False)
        batch_op.create_index(
            "ix_bookings_mentor_pending", ["mentor_id", "status", "attended", "end_time"], unique=False
        )
        batch_op.create_index("ix_bookings_mentor_slot", ["mentor_id", "start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_reprobation_id"), ["reprobation_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", core.models.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("recipient_name", sa.String(length=200), nullable=False),
        sa.Column("recipient_email", sa.String(length=320), nullable=True),
        sa.Column("mentee_id", sa.Integer(), nullable=True),
        sa.Column("mentor_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sent",
                "failed",
                name="notification_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sending_started_at", core.models.UTCDateTime(), nullable=True),
        sa.Column("sent_at", core.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["mentee_id"], ["mentees.id"], name=op.f("fk_notifications_mentee_id_mentees")),
        sa.ForeignKeyConstraint(["mentor_id"], ["mentors.id"], name=op.f("fk_notifications_mentor_id_mentors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notifications_dedup_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_operation_id"), ["operation_id"], unique=False)
        batch_op.create_index("ix_notifications_status", ["status", "id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column(
            "role",
            sa.Enum("mentor", "admin", name="user_role", native_enum=False, create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column("mentor_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["mentor_id"], ["mentors.id"], name=op.f("fk_users_mentor_id_mentors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("mentor_id", name=op.f("uq_users_mentor_id")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "reprobations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentee_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", core.models.UTCDateTime(), nullable=False),
        sa.Column(
            "issued_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="reprob_issued_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("issued_by_name", sa.String(length=200), nullable=True),
        sa.Column("lifted_at", core.models.UTCDateTime(), nullable=True),
        sa.Column(
            "lifted_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="reprob_lifted_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("lifted_by_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_reprobations_booking_id_bookings")),
        sa.ForeignKeyConstraint(["mentee_id"], ["mentees.id"], name=op.f("fk_reprobations_mentee_id_mentees")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reprobations")),
    )
    with op.batch_alter_table("reprobations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reprobations_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reprobations_issued_at"), ["issued_at"], unique=False)
        batch_op.create_index("ix_reprobations_mentee_active", ["mentee_id", "lifted_at"], unique=False)

    # bookings and reprobations refer to each other: the bookings side is added once both exist.
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_bookings_reprobation_id_reprobations", "reprobations", ["reprobation_id"], ["id"]
        )

    op.create_table(
        "warnings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentee_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", core.models.UTCDateTime(), nullable=False),
        sa.Column(
            "issued_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="warning_issued_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("issued_by_name", sa.String(length=200), nullable=True),
        sa.Column("revoked_at", core.models.UTCDateTime(), nullable=True),
        sa.Column(
            "revoked_by",
            sa.Enum(
                "Mentor",
                "Admin",
                "System",
                "Mentee",
                name="warning_revoked_by_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("revoked_by_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name=op.f("fk_warnings_booking_id_bookings")),
        sa.ForeignKeyConstraint(["mentee_id"], ["mentees.id"], name=op.f("fk_warnings_mentee_id_mentees")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warnings")),
    )
    with op.batch_alter_table("warnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_warnings_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_warnings_issued_at"), ["issued_at"], unique=False)
        batch_op.create_index("ix_warnings_mentee_active", ["mentee_id", "revoked_at"], unique=False)

    _forbid_audit_log_changes()


# The audit log is append-only: the database itself refuses UPDATE and DELETE on it.
# Each dialect spells a trigger its own way, hence one statement set per dialect.
_AUDIT_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    ],
    "mysql": [
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the audit log is append-only'",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the audit log is append-only'",
    ],
}
_AUDIT_TRIGGERS["mariadb"] = _AUDIT_TRIGGERS["mysql"]


def _forbid_audit_log_changes() -> None:
    for statement in _AUDIT_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint("fk_bookings_reprobation_id_reprobations", type_="foreignkey")
    for table in (
        "warnings",
        "reprobations",
        "users",
        "notifications",
        "bookings",
        "mentors",
        "mentees",
        "audit_log",
    ):
        op.drop_table(table)
