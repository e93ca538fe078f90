"""Every message the product sends, in one place: plain-text `string.Template`s.

A message is a subject and a body built from a greeting, one or more sections and a closing. Placeholders
are filled by `core.notifications` with text it has already made safe (names on one line, times in UTC);
`$list` is a block of lines, each starting with "  - ".
"""

from __future__ import annotations

from string import Template

SUBJECTS: dict[str, Template] = {
    "warning_issued": Template("A warning for a missed session"),
    "warning_revoked": Template("A warning has been withdrawn"),
    "reprobation_issued": Template("You have been reprobated and $sessions cancelled"),
    "reprobation_issued_nothing_cancelled": Template("You have been reprobated"),
    "reprobation_changed": Template("Your reprobation now rests on another absence"),
    "reprobation_lifted": Template("Your reprobation has been lifted"),
    "revert_correction": Template("Correction: earlier notices about your sessions were sent in error"),
    "revert_pending_sessions": Template("$sessions back to pending: your decision is needed"),
    "reminder": Template("$sessions waiting for your decision"),
}

GREETING = Template("Hello $name,")

# Sections of a mentee's notice of what an action changed (one notice per mentee per action).
SECTIONS: dict[str, Template] = {
    "warning_issued": Template(
        "You have received a warning because you were marked absent from your session on $when with $mentor "
        "(marked $marked_by)."
    ),
    "warning_revoked": Template("The warning for your absence from your session on $when with $mentor is withdrawn."),
    "reprobation_issued": Template(
        "You have been reprobated because you were marked absent from your session on $when with $mentor "
        "(marked $marked_by). A reprobation cancels your upcoming sessions."
    ),
    "reprobation_changed": Template(
        "Your reprobation stays in effect; it now rests on your absence from your session on $when with $mentor "
        "(marked $marked_by)."
    ),
    "reprobation_lifted": Template("Your reprobation has been lifted."),
    "sessions_cancelled": Template("Your sessions below are cancelled:\n$list"),
    "sessions_restored": Template("Your sessions below are restored and take place as planned:\n$list"),
    "sessions_not_restored": Template(
        "Your sessions below could not be restored; please book again if you need them:\n$list"
    ),
    # A revert's correction notice to a mentee.
    "correction_intro": Template(
        "Earlier messages telling you that you had missed sessions, and the warnings, reprobation or cancelled "
        "sessions that followed, were sent in error: an automated process marked you absent without anyone "
        "deciding it. We are sorry. Here is what has been corrected."
    ),
    "correction_absences": Template(
        "You are no longer recorded as absent from the sessions below; your mentor will record whether you "
        "attended:\n$list"
    ),
    "correction_warnings": Template("The warnings for your sessions below are withdrawn:\n$list"),
    "correction_still_standing": Template(
        "What still stands, because a person recorded the absence it rests on:\n$list"
    ),
    # A revert's notice to a mentor whose sessions went back to pending.
    "pending_after_revert": Template(
        "The sessions below had been marked absent by an automated process, without anyone deciding it. "
        "That mark has been withdrawn and they are pending again: please mark each one attended or no-show in "
        "Attendance Desk. Nothing is marked for you.\n$list"
    ),
    # The daily reminder to a mentor.
    "reminder": Template(
        "The sessions below ended more than $threshold ago and are still pending: please mark each one attended "
        "or no-show in Attendance Desk. Nothing is marked automatically; until you decide, a session counts "
        "neither as attended nor as absent.\n$list"
    ),
}

# Lines of the `$list` blocks.
LINES: dict[str, Template] = {
    "session_with_mentor": Template("  - $when with $mentor"),
    "session_not_restored": Template("  - $when with $mentor ($why)"),
    "session_with_mentee": Template("  - $when with $mentee"),
    "session_waiting": Template("  - $when with $mentee (waiting $waited)"),
    "still_warning": Template("  - a warning for your absence from your session on $when with $mentor"),
    "still_reprobation": Template("  - a reprobation for your absence from your session on $when with $mentor"),
    "more": Template("  - ... and $count more"),
}

# Why a cancelled session could not be restored, by `ConflictReason` value.
NOT_RESTORED_BECAUSE: dict[str, str] = {
    "slot_taken": "its time slot has since been booked by someone else",
    "in_past": "its time has already passed",
    "mentor_inactive": "the mentor no longer takes sessions",
}

# Who marked an absence, as a mentee reads it, by `ActorKind` value ("" when nobody was recorded).
MARKED_BY: dict[str, str] = {
    "Mentor": "by your mentor",
    "Admin": "by an administrator",
    "System": "by an automated process",
    "Mentee": "by you",
    "": "with no record of who marked it",
}

CLOSING_MENTEE = Template(
    "If you think something here is wrong, please reply to your mentor or to the programme's administrators."
)
CLOSING_MENTOR = Template("Thank you.")

SIGNATURE = "-- \nAttendance Desk (this message was sent automatically)"
