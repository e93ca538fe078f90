"""The absence policy: a pure function from a mentee's counted absences to the discipline they deserve.

Only absences marked by a person (a counted absence) are given to it; System and unattributed absences
never are. Applying the decision to the database is `core.discipline.apply_policy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from core.config import Policy


@dataclass(frozen=True)
class CountedAbsence:
    booking_id: int
    start_time: datetime


@dataclass(frozen=True)
class Decision:
    """What a mentee should have: warnings (by the absence that caused each) and a reprobation or not."""

    warning_causes: frozenset[int]
    reprobation_cause: int | None

    @property
    def reprobated(self) -> bool:
        return self.reprobation_cause is not None


def decide(absences: Iterable[CountedAbsence], policy: Policy) -> Decision:
    """Walk the absences in session order; each is weighed by the counted absences of its window.

    The window of an absence is the `policy.window_days` before its session's start, the session included.
    An absence whose window holds `warning_at` .. `reprobation_at - 1` absences causes a warning; the first
    whose window reaches `reprobation_at` causes the reprobation. Later absences add nothing: a mentee has
    at most one reprobation.
    """
    ordered = sorted(absences, key=lambda a: (a.start_time, a.booking_id))
    warnings: set[int] = set()
    reprobation: int | None = None
    for i, absence in enumerate(ordered):
        window_start = absence.start_time - policy.window
        in_window = sum(1 for earlier in ordered[: i + 1] if earlier.start_time > window_start)
        if in_window >= policy.reprobation_at:
            if reprobation is None:
                reprobation = absence.booking_id
        elif in_window >= policy.warning_at:
            warnings.add(absence.booking_id)
    return Decision(frozenset(warnings), reprobation)
