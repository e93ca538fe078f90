"""Settings read from the environment, in one place.

- MENTORSHIP_DB_URL: any SQLAlchemy URL (default sqlite:///data/mentorship.db)
- MENTORSHIP_POLICY_WINDOW_DAYS: the rolling window before an absence's session (default 60)
- MENTORSHIP_POLICY_WARNING_AT: counted absences in the window that give a warning (default 1)
- MENTORSHIP_POLICY_REPROBATION_AT: counted absences in the window that give a reprobation (default 2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from core.errors import InvalidInput

DEFAULT_DB_URL = "sqlite:///data/mentorship.db"


@dataclass(frozen=True)
class Policy:
    """The absence policy's numbers."""

    window_days: int = 60
    warning_at: int = 1
    reprobation_at: int = 2

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise InvalidInput(f"policy window_days must be at least 1, got {self.window_days}")
        if self.warning_at < 1:
            raise InvalidInput(f"policy warning_at must be at least 1, got {self.warning_at}")
        if self.reprobation_at <= self.warning_at:
            raise InvalidInput(
                f"policy reprobation_at ({self.reprobation_at}) must be greater than warning_at ({self.warning_at})"
            )

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"environment variable {name}={raw!r} is not a whole number") from None


def policy_from_env(env: Mapping[str, str] | None = None) -> Policy:
    """The policy configured by MENTORSHIP_POLICY_* variables, defaults elsewhere."""
    env = os.environ if env is None else env
    return Policy(
        window_days=_int_setting(env, "MENTORSHIP_POLICY_WINDOW_DAYS", 60),
        warning_at=_int_setting(env, "MENTORSHIP_POLICY_WARNING_AT", 1),
        reprobation_at=_int_setting(env, "MENTORSHIP_POLICY_REPROBATION_AT", 2),
    )


def db_url_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("MENTORSHIP_DB_URL") or DEFAULT_DB_URL
