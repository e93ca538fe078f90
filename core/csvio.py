"""The booking system's history as CSV files: import into an empty database, export in the same format.

Five files, each with a header row (columns in any order on import, in this order on export):

- mentors.csv: id,name,email,active
- mentees.csv: id,name,email
- bookings.csv: id,mentor_id,mentee_id,start_time,end_time,status,attended,attendance_marked_by,
  attendance_marked_at,cancelled_at,cancelled_by,cancellation_reason,reprobation_id
- warnings.csv: id,mentee_id,booking_id,issued_at,issued_by,revoked_at
- reprobations.csv: id,mentee_id,booking_id,issued_at,issued_by,lifted_at

Times are ISO 8601 with an offset or `Z` (exported in UTC with `Z`); booleans are `true`/`false` (`attended`
may be empty: pending); attributions are empty or one of Mentor, Admin, System, Mentee; `status` is scheduled
or cancelled; an empty cell is NULL. Ids are kept as they are in the files.

Imported history is taken as it was: the policy is not re-run, so legacy damage can be audited and reverted.
An import refuses any bad input, listing every problem (file, row, column, reason), and then writes nothing.
Export then import then export gives identical files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.audit import Actor, Operation, record
from core.errors import InvalidAction, InvalidInput
from core.models import ActorKind, Booking, BookingStatus, Mentee, Mentor, Reprobation, Warning

IMPORT_ACTOR = Actor(ActorKind.SYSTEM, "mentorship-cli")
CHUNK = 2000
MAX_PROBLEMS_IN_MESSAGE = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. `row` counts the header as row 1, as a spreadsheet does."""

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        return f"{', '.join(where)}: {self.reason}"


class InvalidHistory(InvalidInput):
    """The CSV history was refused; `problems` lists every problem found, and nothing was written."""

    def __init__(self, directory: Path, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:MAX_PROBLEMS_IN_MESSAGE])
        more = len(self.problems) - MAX_PROBLEMS_IN_MESSAGE
        tail = f"\n  ... and {more} more" if more > 0 else ""
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"the history in {directory} was refused, nothing was written ({count}):\n{shown}{tail}")


@dataclass(frozen=True)
class HistoryCounts:
    mentors: int
    mentees: int
    bookings: int
    warnings: int
    reprobations: int


@dataclass(frozen=True)
class ImportResult:
    """What was imported (or, on a dry run, would be). `operation_id` is None on a dry run."""

    directory: str
    dry_run: bool
    counts: HistoryCounts
    operation_id: str | None


@dataclass(frozen=True)
class ExportResult:
    directory: str
    counts: HistoryCounts


# --- the format: one column = a name, a model attribute, how to read a cell and how to write a value ---


class _Bad(ValueError):
    """A cell that cannot be read; its message is the reason."""


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise _Bad(f"{text!r} has no offset: write it with Z or +HH:MM")
    return value.astimezone(UTC)


def _parse_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _Bad(f"{text!r} is not a positive whole number")
    return int(text)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise _Bad(f"{text!r} is not true or false")
    return lowered == "true"


def _parse_actor(text: str) -> ActorKind:
    for kind in ActorKind:
        if text.lower() == kind.value.lower():
            return kind
    raise _Bad(f"{text!r} is not one of {', '.join(k.value for k in ActorKind)}")


def _parse_status(text: str) -> BookingStatus:
    for status in BookingStatus:
        if text.lower() == status.value:
            return status
    raise _Bad(f"{text!r} is not one of {', '.join(s.value for s in BookingStatus)}")


def _text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise _Bad(f"longer than {limit} characters")
        return text

    return parse


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _format_time(value)
    if isinstance(value, ActorKind | BookingStatus):
        return value.value
    return str(value)


@dataclass(frozen=True)
class _Column:
    name: str
    attribute: InstrumentedAttribute[Any]
    parse: Callable[[str], Any]
    required: bool = False  # an empty cell is refused; otherwise it is NULL
    references: str | None = None  # the file whose id this column names
    free_text: bool = False  # kept as written; other cells are read without the spaces around them


@dataclass(frozen=True)
class _File:
    name: str
    model: type[Any]
    columns: tuple[_Column, ...]

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]


def _id(model: type[Any]) -> _Column:
    return _Column("id", model.id, _parse_id, required=True)


FILES: tuple[_File, ...] = (
    _File(
        "mentors.csv",
        Mentor,
        (
            _id(Mentor),
            _Column("name", Mentor.name, _text(200), required=True, free_text=True),
            _Column("email", Mentor.email, _text(320), free_text=True),
            _Column("active", Mentor.active, _parse_bool, required=True),
        ),
    ),
    _File(
        "mentees.csv",
        Mentee,
        (
            _id(Mentee),
            _Column("name", Mentee.name, _text(200), required=True, free_text=True),
            _Column("email", Mentee.email, _text(320), free_text=True),
        ),
    ),
    _File(
        "bookings.csv",
        Booking,
        (
            _id(Booking),
            _Column("mentor_id", Booking.mentor_id, _parse_id, required=True, references="mentors.csv"),
            _Column("mentee_id", Booking.mentee_id, _parse_id, required=True, references="mentees.csv"),
            _Column("start_time", Booking.start_time, _parse_time, required=True),
            _Column("end_time", Booking.end_time, _parse_time, required=True),
            _Column("status", Booking.status, _parse_status, required=True),
            _Column("attended", Booking.attended, _parse_bool),
            _Column("attendance_marked_by", Booking.attendance_marked_by, _parse_actor),
            _Column("attendance_marked_at", Booking.attendance_marked_at, _parse_time),
            _Column("cancelled_at", Booking.cancelled_at, _parse_time),
            _Column("cancelled_by", Booking.cancelled_by, _parse_actor),
            _Column("cancellation_reason", Booking.cancellation_reason, _text(500), free_text=True),
            _Column("reprobation_id", Booking.reprobation_id, _parse_id, references="reprobations.csv"),
        ),
    ),
    _File(
        "warnings.csv",
        Warning,
        (
            _id(Warning),
            _Column("mentee_id", Warning.mentee_id, _parse_id, required=True, references="mentees.csv"),
            _Column("booking_id", Warning.booking_id, _parse_id, required=True, references="bookings.csv"),
            _Column("issued_at", Warning.issued_at, _parse_time, required=True),
            _Column("issued_by", Warning.issued_by, _parse_actor),
            _Column("revoked_at", Warning.revoked_at, _parse_time),
        ),
    ),
    _File(
        "reprobations.csv",
        Reprobation,
        (
            _id(Reprobation),
            _Column("mentee_id", Reprobation.mentee_id, _parse_id, required=True, references="mentees.csv"),
            _Column("booking_id", Reprobation.booking_id, _parse_id, required=True, references="bookings.csv"),
            _Column("issued_at", Reprobation.issued_at, _parse_time, required=True),
            _Column("issued_by", Reprobation.issued_by, _parse_actor),
            _Column("lifted_at", Reprobation.lifted_at, _parse_time),
        ),
    ),
)


# --- reading and checking ---


@dataclass
class _Rows:
    """One file's rows as attribute values. The cells of invalid rows that could be read are kept for the
    checks across rows, so one bad cell neither hides the row's other problems nor shows up again as a
    missing row wherever the row's id is referenced."""

    file: _File
    values: list[dict[str, Any]] = field(default_factory=list)  # the valid rows, to be written
    parsed: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # every row's readable cells, row number


def _read(directory: Path, spec: _File, problems: list[Problem]) -> _Rows | None:
    path = directory / spec.name
    if not path.is_file():
        problems.append(Problem(spec.name, None, None, "missing file"))
        return None
    rows = _Rows(spec)
    number = 1
    try:
        # utf-8-sig: a spreadsheet's byte order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                problems.append(Problem(spec.name, None, None, "empty file: the header row is missing"))
                return None
            header = [h.strip() for h in header]
            if not _check_header(spec, header, problems):
                return None
            for number, cells in enumerate(reader, start=2):
                if not any(c.strip() for c in cells):
                    continue  # a blank line, as spreadsheets leave at the end
                _parse_row(rows, header, cells, number, problems)
    # A file that cannot be read to its end is left out of the checks across files (they would mislead).
    except csv.Error as error:
        problems.append(Problem(spec.name, number + 1, None, f"not valid CSV: {error}"))
        return None
    except UnicodeDecodeError:
        problems.append(Problem(spec.name, None, None, "not UTF-8 text"))
        return None
    except OSError as error:
        problems.append(Problem(spec.name, None, None, f"cannot be read: {error.strerror or error}"))
        return None
    return rows


def _check_header(spec: _File, header: list[str], problems: list[Problem]) -> bool:
    ok = True
    for column in spec.columns:
        if column.name not in header:
            problems.append(Problem(spec.name, 1, column.name, "missing column"))
            ok = False
    expected = set(spec.header)
    seen: set[str] = set()
    for name in header:
        if name not in expected:
            problems.append(
                Problem(spec.name, 1, name or "(empty)", f"unknown column (expected {', '.join(spec.header)})")
            )
            ok = False
        elif name in seen:
            problems.append(Problem(spec.name, 1, name, "column appears twice"))
            ok = False
        seen.add(name)
    return ok


def _parse_row(rows: _Rows, header: list[str], cells: list[str], number: int, problems: list[Problem]) -> None:
    spec = rows.file
    if len(cells) != len(header):
        problems.append(Problem(spec.name, number, None, f"{len(cells)} cells where the header has {len(header)}"))
        return
    by_name = dict(zip(header, cells, strict=True))
    values: dict[str, Any] = {}
    ok = True
    for column in spec.columns:
        raw = by_name[column.name]
        text = raw if column.free_text else raw.strip()
        if text.strip() == "":
            if column.required:
                problems.append(Problem(spec.name, number, column.name, "empty, but required"))
                ok = False
                continue
            values[column.attribute.key] = None
            continue
        try:
            values[column.attribute.key] = column.parse(text)
        except _Bad as error:
            problems.append(Problem(spec.name, number, column.name, str(error)))
            ok = False
    rows.parsed.append((values, number))
    if ok:
        rows.values.append(values)


def _check_rows(tables: dict[str, _Rows], problems: list[Problem]) -> None:
    """Duplicate ids, references to missing rows, and rows that contradict each other."""
    ids: dict[str, dict[int, int]] = {}  # file -> id -> the row number where it first appears
    for name, rows in tables.items():
        seen: dict[int, int] = {}
        for values, number in rows.parsed:
            row_id = values.get("id")
            if row_id is None:
                continue
            if row_id in seen:
                problems.append(Problem(name, number, "id", f"duplicate id {row_id} (first on row {seen[row_id]})"))
            else:
                seen[row_id] = number
        ids[name] = seen
    bookings = tables["bookings.csv"].parsed if "bookings.csv" in tables else []
    mentee_of_booking = {v["id"]: v.get("mentee_id") for v, _ in bookings if "id" in v}
    for name, rows in tables.items():
        for values, number in rows.parsed:
            for column in rows.file.columns:
                target = column.references
                value = values.get(column.attribute.key)
                if target is None or value is None:
                    continue
                if target not in ids:
                    continue  # that file is missing or unreadable: already a problem
                if value not in ids[target]:
                    problems.append(Problem(name, number, column.name, f"{target} has no row with id {value}"))
            start, end = values.get("start_time"), values.get("end_time")
            if name == "bookings.csv" and start is not None and end is not None and end <= start:
                problems.append(Problem(name, number, "end_time", "ends before (or when) it starts"))
            if name in ("warnings.csv", "reprobations.csv"):
                booked = mentee_of_booking.get(values.get("booking_id"))
                if booked is not None and values.get("mentee_id") not in (None, booked):
                    problems.append(
                        Problem(
                            name,
                            number,
                            "booking_id",
                            f"booking {values['booking_id']} is not a session of mentee {values['mentee_id']}",
                        )
                    )


def _reading_order(problem: Problem) -> tuple[int, int, int]:
    """Files in the order of the format, then rows, then columns as the format lists them."""
    spec = next((f for f in FILES if f.name == problem.file), FILES[-1])
    column = spec.header.index(problem.column) if problem.column in spec.header else len(spec.header)
    return FILES.index(spec), problem.row or 0, column


def _history_counts(counts: dict[str, int]) -> HistoryCounts:
    return HistoryCounts(**{name.removesuffix(".csv"): n for name, n in counts.items()})


def _database_is_empty(session: Session) -> bool:
    return all(session.scalar(sa.select(spec.model.id).limit(1)) is None for spec in FILES)


def _batches(values: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _advance_sequences(session: Session, tables: Iterable[str]) -> None:
    """PostgreSQL does not move a serial column's sequence when ids are given explicitly; the next insert
    would reuse id 1. SQLite (max rowid + 1) and MariaDB (AUTO_INCREMENT) follow the inserted ids by themselves."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in tables:  # our own table names, never input
        statement = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"  # noqa: S608
        session.execute(sa.text(statement))


def import_history(
    session: Session,
    directory: Path | str,
    *,
    now: datetime,
    dry_run: bool = False,
    actor: Actor = IMPORT_ACTOR,
) -> ImportResult:
    """Load the history in `directory` into an empty database, as it was (the policy is not re-run).

    Refuses, writing nothing: a database that already holds mentors, mentees, bookings, warnings or
    reprobations (the files' ids would collide), and any bad input, with every problem listed in
    `InvalidHistory.problems`. With `dry_run`, checks everything and writes nothing. Each imported file is
    recorded in the audit log ("history.import"), under one operation.
    """
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a directory")
    if not _database_is_empty(session):
        raise InvalidAction(
            "the database already holds history: import only into an empty database "
            "(the files' ids would collide with the rows there)"
        )
    problems: list[Problem] = []
    tables: dict[str, _Rows] = {}
    for spec in FILES:
        rows = _read(directory, spec, problems)
        if rows is not None:
            tables[spec.name] = rows
    _check_rows(tables, problems)
    if problems:
        raise InvalidHistory(directory, sorted(problems, key=_reading_order))
    counts = _history_counts({name: len(rows.values) for name, rows in tables.items()})
    if dry_run:
        return ImportResult(str(directory), True, counts, None)

    op = Operation(actor, now, f"history imported from {directory}")
    reprobation_of = {v["id"]: v["reprobation_id"] for v in tables["bookings.csv"].values if v["reprobation_id"]}
    # Bookings and reprobations name each other: bookings go in first without their reprobation, and get it after.
    for spec in FILES:
        values = tables[spec.name].values
        if spec.model is Booking:
            values = [{**v, "reprobation_id": None} for v in values]
        for batch in _batches(values):
            session.execute(sa.insert(spec.model), batch)
        if spec.model is Reprobation:
            links = [{"id": b, "reprobation_id": r} for b, r in reprobation_of.items()]
            for batch in _batches(links):
                session.execute(sa.update(Booking), batch)
    _advance_sequences(session, [spec.model.__tablename__ for spec in FILES if tables[spec.name].values])
    for spec in FILES:
        record(
            session,
            op,
            "history.import",
            spec.model.__tablename__,
            0,
            None,
            {"file": spec.name, "rows": len(tables[spec.name].values)},
        )
    session.flush()
    return ImportResult(str(directory), False, counts, op.id)


def export_history(session: Session, directory: Path | str) -> ExportResult:
    """Write the five files of the history to `directory` (created if missing; the files are replaced),
    rows in id order, times in UTC with `Z`. Writes nothing to the database."""
    directory = Path(directory)
    counts: dict[str, int] = {}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for spec in FILES:
            counts[spec.name] = _write(session, directory / spec.name, spec)
    except OSError as error:
        raise InvalidInput(f"cannot write the history to {directory}: {error.strerror or error}") from None
    return ExportResult(str(directory), _history_counts(counts))


def _write(session: Session, path: Path, spec: _File) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(spec.header)
        query = sa.select(*(c.attribute for c in spec.columns)).order_by(spec.model.id)
        for row in session.execute(query.execution_options(yield_per=CHUNK)):
            writer.writerow([_format(value) for value in row])
            n += 1
    return n
