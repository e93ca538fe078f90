"""attendance tallies: held-session counts per mentor and week, kept by the database on every booking write

Revision ID: 0003
Revises: 0002

The analytics read these counts instead of every booking (core/analytics.py). Triggers on `bookings` keep them
exact whoever writes a booking (this app, an import, or the booking system itself), in the writer's transaction:
a booking counts in the row of its mentor and of the week (Monday, UTC) its session starts in, while its status is
`scheduled`. The upgrade fills the table from the bookings already there.

Every statement is text built from this file's constants alone (no input reaches it).
Each dialect spells triggers, upserts and date arithmetic its own way, hence one set of statements per dialect,
built from the same list of counts. The bin edges of the time to mark are frozen here; core/analytics.py reads
them as HOURS_TO_MARK_EDGES, and tests/integration/test_tallies.py checks the two against each other.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

import core.models

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Hours from a session's end to its mark by a person: bin i holds [EDGES[i-1], EDGES[i]); bin 0 everything below
# the first edge (a mark recorded before the end, in imported history, included), the last bin everything above.
EDGES = (0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 48, 72, 96, 120, 168, 240, 336, 504, 720)
BINS = len(EDGES) + 1

KINDS = {"mentor": "'Mentor'", "admin": "'Admin'", "system": "'System'"}
PERSON = "('Mentor', 'Admin')"

TRIGGER_NAMES = ("attendance_tally_insert", "attendance_tally_update", "attendance_tally_delete")

# The tallies, their keys and how many weeks a row spans: per mentor and week; per week for every mentor (what the
# figures of all mentors read); per mentor and four weeks (what the per-mentor table of a long range reads). `week`
# is the first Monday of the span: four-week spans follow each other from Monday 1970-01-05 on.
TALLIES = {
    "attendance_tallies": (("mentor_id", "week"), 1),
    "weekly_attendance_tallies": (("week",), 1),
    "four_week_attendance_tallies": (("mentor_id", "week"), 4),
}


def upgrade() -> None:
    op.create_table(
        "attendance_tallies",
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        *_tally_columns(),
        sa.ForeignKeyConstraint(["mentor_id"], ["mentors.id"], name=op.f("fk_attendance_tallies_mentor_id_mentors")),
        sa.PrimaryKeyConstraint("mentor_id", "week", name=op.f("pk_attendance_tallies")),
    )
    # Every mentor's few weeks at the edges of a range.
    op.create_index("ix_attendance_tallies_week", "attendance_tallies", ["week"])
    op.create_table(
        "weekly_attendance_tallies",
        *_tally_columns(),
        sa.PrimaryKeyConstraint("week", name=op.f("pk_weekly_attendance_tallies")),
    )
    op.create_table(
        "four_week_attendance_tallies",
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        *_tally_columns(),
        sa.ForeignKeyConstraint(
            ["mentor_id"], ["mentors.id"], name=op.f("fk_four_week_attendance_tallies_mentor_id_mentors")
        ),
        sa.PrimaryKeyConstraint("mentor_id", "week", name=op.f("pk_four_week_attendance_tallies")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        # The sessions the tallies do not answer (the days at the edges of a range, the current week) and the
        # per-mentee figures: every column the analytics read, so that no booking row is fetched.
        batch_op.create_index(
            "ix_bookings_analytics",
            [
                "start_time",
                "status",
                "end_time",
                "mentor_id",
                "mentee_id",
                "attended",
                "attendance_marked_by",
                "attendance_marked_at",
            ],
            unique=False,
        )
        # The pending sessions by how long they have waited (the backlog), of every mentor.
        batch_op.create_index("ix_bookings_backlog", ["attended", "end_time", "status", "start_time", "mentor_id"])
        # A mentee's counted absences, read by every mark and preview: with the attribution in it, the index
        # answers them alone (the index below would otherwise look just as good to SQLite's planner).
        batch_op.drop_index("ix_bookings_mentee_absences")
        batch_op.create_index(
            "ix_bookings_mentee_absences", ["mentee_id", "attended", "attendance_marked_by", "start_time"]
        )
        # The no-shows marked by a person, by mentee: the mentees with the most of them.
        batch_op.create_index(
            "ix_bookings_counted_no_shows",
            ["attended", "attendance_marked_by", "status", "start_time", "end_time", "mentee_id"],
        )

    sql = SQL[op.get_bind().dialect.name]
    for table, (keys, span) in TALLIES.items():
        # The bookings grouped by key, mark and bin first, so that each booking's bin is computed once.
        key_values = sql.key_values("b", keys, span)
        grouped = ", ".join(
            [*key_values, "b.attended", "b.attendance_marked_by", _time_bin("b", sql.hours, inline=True)]
        )
        op.execute(
            f"INSERT INTO {table} ({', '.join(keys)}, last_end, {', '.join(_count_names())}) "
            f"SELECT {', '.join(keys)}, MAX(last_end), "
            + ", ".join(f"SUM(CASE WHEN {c} THEN n ELSE 0 END)" for c in _conditions("g", "g.time_bin"))
            + f" FROM (SELECT {', '.join(f'{v} AS {k}' for k, v in zip(keys, key_values, strict=True))}, "
            f"b.attended, b.attendance_marked_by, {_time_bin('b', sql.hours, inline=True)} AS time_bin, "
            f"COUNT(*) AS n, MAX(b.end_time) AS last_end "
            f"FROM bookings b WHERE b.status = 'scheduled' GROUP BY {grouped}) g GROUP BY {', '.join(keys)}"
        )
    for statement in sql.triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS attendance_tally ON bookings")
        op.execute("DROP FUNCTION IF EXISTS attendance_tally()")
    else:
        for name in TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index("ix_bookings_counted_no_shows")
        batch_op.drop_index("ix_bookings_mentee_absences")
        batch_op.create_index("ix_bookings_mentee_absences", ["mentee_id", "attended", "start_time"])
        batch_op.drop_index("ix_bookings_backlog")
        batch_op.drop_index("ix_bookings_analytics")
    op.drop_table("four_week_attendance_tallies")
    op.drop_table("weekly_attendance_tallies")
    op.drop_index("ix_attendance_tallies_week", table_name="attendance_tallies")
    op.drop_table("attendance_tallies")


def _tally_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("week", sa.Date(), nullable=False),
        # The latest end of a session ever counted in the row: once it has passed, every session of it is held.
        sa.Column("last_end", core.models.UTCDateTime(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in _count_names()),
    ]


# ---------------------------------------------------------------------------------------------------------
# The counts, and a booking row's contribution to each


def _count_names() -> list[str]:
    names = ["sessions", "pending"]
    for kind in (*KINDS, "unattributed"):
        names += [f"{kind}_attended", f"{kind}_no_shows"]
    return names + [f"marked_in_bin_{i:02d}" for i in range(BINS)]


def _time_bin(r: str, hours: Callable[[str, str], str], *, inline: bool = False) -> str:
    """The bin of the row `r`'s mark by a person, NULL for any other row. A trigger computes the hours once, in a
    subquery; `inline` repeats them in each test, for a query whose subqueries cannot see `r` (MariaDB's)."""
    timed = (
        f"{r}.attended IS NOT NULL AND {r}.attendance_marked_by IN {PERSON} AND {r}.attendance_marked_at IS NOT NULL"
    )
    h = hours(f"{r}.end_time", f"{r}.attendance_marked_at")
    places = " ".join(f"WHEN {h if inline else 'h'} < {edge} THEN {i}" for i, edge in enumerate(EDGES))
    if inline:
        return f"CASE WHEN {timed} THEN CASE {places} ELSE {BINS - 1} END END"
    return f"CASE WHEN {timed} THEN (SELECT CASE {places} ELSE {BINS - 1} END FROM (SELECT {h} AS h) hours) END"


def _conditions(r: str, time_bin: str) -> list[str]:
    """When the row `r` counts in each count, in the _count_names() order; `time_bin` is the expression of its bin
    of time to mark."""
    conditions = ["1 = 1", f"{r}.attended IS NULL"]
    for kind in (*KINDS.values(), None):
        by = f"{r}.attendance_marked_by IS NULL" if kind is None else f"{r}.attendance_marked_by = {kind}"
        conditions += [f"{r}.attended IS TRUE AND {by}", f"{r}.attended IS FALSE AND {by}"]
    return conditions + [f"{time_bin} = {i}" for i in range(BINS)]


def _counts(r: str, time_bin: str, sign: int) -> list[str]:
    """The row `r`'s contribution to each count (`sign` or 0), in the _count_names() order."""
    return [f"CASE WHEN {condition} THEN {sign} ELSE 0 END" for condition in _conditions(r, time_bin)]


class _Dialect:
    """How one database spells the week of a time, the hours between two, an upsert and the triggers."""

    @staticmethod
    def week(column: str) -> str:
        raise NotImplementedError

    @staticmethod
    def hours(start: str, end: str) -> str:
        raise NotImplementedError

    def on_conflict(self, table: str, keys: tuple[str, ...]) -> str:
        """The upsert's clause that adds the new counts to a row already there."""
        raise NotImplementedError

    def triggers(self) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def four_weeks(week: str) -> str:
        """The first Monday of the four-week span that holds the Monday `week`."""
        raise NotImplementedError

    def key_values(self, r: str, keys: tuple[str, ...], span: int) -> list[str]:
        """The values of the tally's key for the booking row `r`: its mentor, the first Monday of its span."""
        week = self.week(f"{r}.start_time")
        start = week if span == 1 else self.four_weeks(week)
        return [f"{r}.mentor_id" if key == "mentor_id" else start for key in keys]

    def count_by_update(self, r: str, sign: int, time_bin: str, *, not_found: str) -> str:
        """Statements that add (sign 1) or take away (sign -1) the row `r` in every tally, for a trigger body that
        has checked that `r` is scheduled and put its bin in the variable `time_bin`. Each row is updated in place
        and inserted only when missing (`not_found`: how the dialect asks), which costs a fifth of an upsert that
        tries the insert first."""
        names = _count_names()
        statements = []
        for table, (keys, span) in TALLIES.items():
            values = self.key_values(r, keys, span)
            contributions = _counts(r, time_bin, sign)
            statements.append(
                f"UPDATE {table} SET last_end = GREATEST(last_end, {r}.end_time), "
                + ", ".join(f"{n} = {n} + {c}" for n, c in zip(names, contributions, strict=True))
                + " WHERE "
                + " AND ".join(f"{k} = {v}" for k, v in zip(keys, values, strict=True))
                + ";"
            )
            if sign > 0:
                statements.append(
                    f"IF {not_found} THEN INSERT INTO {table} ({', '.join(keys)}, last_end, {', '.join(names)}) "
                    f"VALUES ({', '.join(values)}, {r}.end_time, {', '.join(contributions)}) "
                    + self.on_conflict(table, keys)
                    + "; END IF;"
                )
        return " ".join(statements)


class _SQLite(_Dialect):
    @staticmethod
    def week(column: str) -> str:
        # 'weekday 0' moves forward to the next Sunday (or stays on one); six days back is that week's Monday.
        return f"date({column}, 'weekday 0', '-6 days')"

    @staticmethod
    def four_weeks(week: str) -> str:
        days = f"(CAST(julianday({week}) - julianday('1970-01-05') AS INTEGER) / 7 % 4 * 7)"
        return f"date({week}, '-' || {days} || ' days')"

    @staticmethod
    def hours(start: str, end: str) -> str:
        # Times are ISO text; whole milliseconds first, so that whole hours are exact (24 h is 24.0).
        return f"(round((julianday({end}) - julianday({start})) * 86400000.0) / 3600000.0)"

    def on_conflict(self, table: str, keys: tuple[str, ...]) -> str:
        return (
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET last_end = max(last_end, excluded.last_end), "
            + _assignments("{name} = {name} + excluded.{name}")
        )

    def count(self, r: str, sign: int) -> str:
        """Statements that add (sign 1) or take away (sign -1) the row `r` in every tally, if it is scheduled:
        upserts, each with its own WHERE, since SQLite's trigger bodies have no IF and no variables."""
        statements = []
        for table, (keys, span) in TALLIES.items():
            values = self.key_values(r, keys, span)
            statements.append(
                f"INSERT INTO {table} ({', '.join(keys)}, last_end, {', '.join(_count_names())}) "
                f"SELECT {', '.join(values)}, {r}.end_time, {', '.join(_counts(r, 'placed.time_bin', sign))} "
                f"FROM (SELECT {_time_bin(r, self.hours)} AS time_bin) placed WHERE {r}.status = 'scheduled' "
                + self.on_conflict(table, keys)
                + ";"
            )
        return " ".join(statements)

    def triggers(self) -> list[str]:
        # Trigger bodies have no IF: each statement's WHERE counts only a scheduled row.
        watched = "status, attended, attendance_marked_by, attendance_marked_at, mentor_id, start_time, end_time"
        return [
            f"CREATE TRIGGER attendance_tally_insert AFTER INSERT ON bookings BEGIN {self.count('NEW', 1)} END",
            f"CREATE TRIGGER attendance_tally_update AFTER UPDATE OF {watched} ON bookings "
            "WHEN OLD.status = 'scheduled' OR NEW.status = 'scheduled' "
            f"BEGIN {self.count('OLD', -1)} {self.count('NEW', 1)} END",
            "CREATE TRIGGER attendance_tally_delete AFTER DELETE ON bookings WHEN OLD.status = 'scheduled' "
            f"BEGIN {self.count('OLD', -1)} END",
        ]


class _PostgreSQL(_Dialect):
    @staticmethod
    def week(column: str) -> str:
        # ISO weeks start on Monday.
        return f"CAST(date_trunc('week', {column}) AS DATE)"

    @staticmethod
    def four_weeks(week: str) -> str:
        # A date minus a date is a number of days; a date minus a number of days is a date.
        return f"({week} - (({week} - DATE '1970-01-05') / 7 % 4) * 7)"

    @staticmethod
    def hours(start: str, end: str) -> str:
        return f"(EXTRACT(EPOCH FROM ({end} - {start})) / 3600.0)"

    def on_conflict(self, table: str, keys: tuple[str, ...]) -> str:
        return (
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            f"last_end = GREATEST({table}.last_end, EXCLUDED.last_end), "
            + _assignments(f"{{name}} = {table}.{{name}} + EXCLUDED.{{name}}")
        )

    def triggers(self) -> list[str]:
        watched = "status, attended, attendance_marked_by, attendance_marked_at, mentor_id, start_time, end_time"
        return [
            "CREATE FUNCTION attendance_tally() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE booking_bin integer; BEGIN "
            "IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'scheduled' THEN "
            f"booking_bin := {_time_bin('OLD', self.hours)}; "
            f"{self.count_by_update('OLD', -1, 'booking_bin', not_found='NOT FOUND')} END IF; "
            "IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'scheduled' THEN "
            f"booking_bin := {_time_bin('NEW', self.hours)}; "
            f"{self.count_by_update('NEW', 1, 'booking_bin', not_found='NOT FOUND')} END IF; "
            "RETURN NULL; END $$",
            f"CREATE TRIGGER attendance_tally AFTER INSERT OR DELETE OR UPDATE OF {watched} ON bookings "
            "FOR EACH ROW EXECUTE FUNCTION attendance_tally()",
        ]


class _MariaDB(_Dialect):
    @staticmethod
    def week(column: str) -> str:
        # WEEKDAY() is 0 on Monday; SUBDATE(d, n) is n days before d.
        return f"SUBDATE(DATE({column}), WEEKDAY({column}))"

    @staticmethod
    def four_weeks(week: str) -> str:
        return f"SUBDATE({week}, ((DATEDIFF({week}, '1970-01-05') DIV 7) MOD 4) * 7)"

    @staticmethod
    def hours(start: str, end: str) -> str:
        return f"(TIMESTAMPDIFF(MICROSECOND, {start}, {end}) / 3600000000.0)"

    def on_conflict(self, table: str, keys: tuple[str, ...]) -> str:
        return "ON DUPLICATE KEY UPDATE last_end = GREATEST(last_end, VALUES(last_end)), " + _assignments(
            "{name} = {name} + VALUES({name})"
        )

    def triggers(self) -> list[str]:
        # MariaDB has no UPDATE OF: the update trigger compares the watched columns itself (<=> is NULL-safe).
        watched = ("status", "attended", "attendance_marked_by", "attendance_marked_at", "mentor_id", "start_time")
        changed = " OR ".join(f"NOT (OLD.{c} <=> NEW.{c})" for c in (*watched, "end_time"))
        add = (
            f"IF NEW.status = 'scheduled' THEN SET booking_bin = {_time_bin('NEW', self.hours, inline=True)}; "
            f"{self.count_by_update('NEW', 1, 'booking_bin', not_found='ROW_COUNT() = 0')} END IF;"
        )
        remove = (
            f"IF OLD.status = 'scheduled' THEN SET booking_bin = {_time_bin('OLD', self.hours, inline=True)}; "
            f"{self.count_by_update('OLD', -1, 'booking_bin', not_found='ROW_COUNT() = 0')} END IF;"
        )
        declare = "DECLARE booking_bin INT DEFAULT NULL;"
        return [
            f"CREATE TRIGGER attendance_tally_insert AFTER INSERT ON bookings FOR EACH ROW BEGIN {declare} {add} END",
            "CREATE TRIGGER attendance_tally_update AFTER UPDATE ON bookings FOR EACH ROW BEGIN "
            f"{declare} IF {changed} THEN {remove} {add} END IF; END",
            f"CREATE TRIGGER attendance_tally_delete AFTER DELETE ON bookings FOR EACH ROW BEGIN {declare} {remove} END",
        ]


def _assignments(template: str) -> str:
    return ", ".join(template.format(name=name) for name in _count_names())


SQL: dict[str, _Dialect] = {
    "sqlite": _SQLite(),
    "postgresql": _PostgreSQL(),
    "mysql": _MariaDB(),
    "mariadb": _MariaDB(),
}
