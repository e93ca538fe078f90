"""`mentorship notify` sends the outbox through SMTP; `mentorship remind` queues reminders to mentors."""

from __future__ import annotations

import os
from dataclasses import asdict
from ipaddress import ip_address
from typing import Annotated

import typer

from app.cli.attendance import parse_duration
from app.cli.common import DbOption, JsonOption, emit_json, fail, now, open_db, refusals
from core.audit import Actor
from core.models import ActorKind
from core.notifications import (
    DEFAULT_SENDER,
    REMINDER_ACTOR_NAME,
    SENDING_LEASE,
    SendReport,
    SmtpSettings,
    queue_reminders,
    queued_messages,
    send_queued,
)

PASSWORD_VARIABLE = "MENTORSHIP_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    host = host.strip("[]")  # [::1]:25
    if not colon or not host or not port.isdigit():
        raise typer.BadParameter(f"{text!r} is not HOST:PORT, for example mail.example.org:587", param_hint="--smtp")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def notify(
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp", metavar="HOST:PORT", help="The SMTP server to hand messages to (not needed with --dry-run)."
        ),
    ] = None,
    sender: Annotated[str, typer.Option("--from", metavar="ADDR", help="The From address of every message.")] = (
        DEFAULT_SENDER
    ),
    starttls: Annotated[
        bool, typer.Option("--starttls", help="Secure the connection with STARTTLS before logging in and sending.")
    ] = False,
    user: Annotated[
        str | None,
        typer.Option("--user", help=f"Log in to the server as USER; the password is read from {PASSWORD_VARIABLE}."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be sent; send and change nothing.")
    ] = False,
    tries: Annotated[
        int, typer.Option("--tries", min=1, max=10, help="Tries per message (and to connect) before leaving it queued.")
    ] = 3,
    backoff: Annotated[
        float, typer.Option("--backoff", min=0, help="Seconds to wait after a failed try; doubled after each.")
    ] = 1.0,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send the queued messages through SMTP, each at most once.

    Refused for good: marked failed. Not taken now: left queued with the error.
    Possibly sent by a run that died: never resent, but marked failed
    ("delivery unknown") for an admin to check and retry.
    Exits 1 when an error leaves messages queued.
    """
    factory = open_db(db)
    if dry_run:
        with factory() as session:
            messages = queued_messages(session)
        if json_output:
            emit_json({"dry_run": True, "messages": [asdict(m) for m in messages]})
            return
        if not messages:
            typer.echo("nothing to send (dry run)")
            return
        typer.echo(f"{_plural(len(messages), 'message')} would be sent (dry run: nothing sent, nothing changed)")
        for m in messages:
            typer.echo("")
            typer.echo(f"#{m.notification_id} {m.kind}")
            typer.echo(f"To: {m.recipient}" + ("" if m.has_address else "  -> would be marked failed: no address"))
            typer.echo(f"Subject: {m.subject}")
            typer.echo("")
            typer.echo(m.body.rstrip("\n"))
        return
    if smtp is None:
        fail("--smtp HOST:PORT is needed to send (or use --dry-run to see what would be sent)")
    host, port = _host_port(smtp)
    if user and not starttls and not _is_loopback(host):
        fail(f"--user needs --starttls: the password would cross the network to {host} in clear text")
    with refusals():
        settings = SmtpSettings(
            host, port, sender=sender, starttls=starttls, user=user, password=os.environ.get(PASSWORD_VARIABLE)
        )
    report = send_queued(factory, settings, clock=now, max_tries=tries, backoff_seconds=backoff)
    if json_output:
        emit_json(
            {
                "sent": len(report.sent),
                "failed": len(report.failed),
                "queued": len(report.left_queued),
                "delivery_unknown": len(report.delivery_unknown),
                "in_flight": report.in_flight,
                "error": report.error,
                "messages": [asdict(d) for d in report.deliveries],
            }
        )
    else:
        _print_report(report)
    if report.error or report.left_queued:
        raise typer.Exit(1)


def _print_report(report: SendReport) -> None:
    if not report.deliveries and not report.in_flight:
        typer.echo("nothing to send")
        return
    typer.echo(
        f"sent {len(report.sent)}, failed {len(report.failed)}, left queued {len(report.left_queued)}, "
        f"delivery unknown {len(report.delivery_unknown)}"
    )
    for d in report.deliveries:
        line = f"  {d.outcome:<16} #{d.notification_id}  {d.recipient}  {d.subject}"
        typer.echo(line + (f"\n  {'':<16} {d.error}" if d.error else ""))
    if report.in_flight:
        minutes = int(SENDING_LEASE.total_seconds() // 60)
        typer.echo(
            f"{_plural(report.in_flight, 'message')} claimed by another run less than {minutes} minutes ago: left alone"
        )
    if report.error:
        typer.echo(f"error: {report.error}; the messages not sent stay queued", err=True)


def remind(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Remind of pending sessions that ended at least this long ago: 48h, 2d, 90m."
        ),
    ] = "48h",
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Queue one reminder per mentor per day listing their pending sessions.

    Never changes attendance. Run it daily, then `mentorship notify`
    (cron or a systemd timer: see the README).
    """
    age = parse_duration(older_than)
    factory = open_db(db)
    with refusals(), factory.begin() as session:
        result = queue_reminders(session, older_than=age, actor=Actor(ActorKind.SYSTEM, REMINDER_ACTOR_NAME), now=now())
    if json_output:
        emit_json(
            {
                "operation_id": result.operation_id,
                "queued": [asdict(r) for r in result.queued],
                "already_reminded": list(result.already_reminded),
            }
        )
        return
    if result.queued:
        typer.echo(f"queued {_plural(len(result.queued), 'reminder')}:")
        for r in result.queued:
            typer.echo(f"  {r.mentor} ({_plural(r.pending_sessions, 'pending session')})")
    if result.already_reminded:
        typer.echo(f"{_plural(len(result.already_reminded), 'mentor')} already reminded today (UTC): nothing queued")
    if not result.queued and not result.already_reminded:
        typer.echo(f"no mentor has sessions pending for more than {older_than}: nothing queued")
