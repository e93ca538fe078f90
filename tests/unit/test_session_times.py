"""How a message names a session's time: in UTC, the day of the month without a leading zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.notifications import _when

ONE_HOUR_AHEAD = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        pytest.param(
            datetime(2026, 6, 3, 14, tzinfo=UTC),
            datetime(2026, 6, 3, 15, tzinfo=UTC),
            "Wed 3 Jun 2026, 14:00-15:00 UTC",
            id="one day, a one-digit day of the month",
        ),
        pytest.param(
            datetime(2026, 11, 28, 9, 5, tzinfo=UTC),
            datetime(2026, 11, 28, 9, 50, tzinfo=UTC),
            "Sat 28 Nov 2026, 09:05-09:50 UTC",
            id="minutes and hours keep their leading zero",
        ),
        pytest.param(
            datetime(2026, 5, 31, 23, 30, tzinfo=UTC),
            datetime(2026, 6, 1, 0, 30, tzinfo=UTC),
            "Sun 31 May 2026 23:30 UTC to Mon 1 Jun 2026 00:30 UTC",
            id="across midnight, both days named",
        ),
        pytest.param(
            datetime(2026, 6, 4, 0, 30, tzinfo=ONE_HOUR_AHEAD),
            datetime(2026, 6, 4, 1, 30, tzinfo=ONE_HOUR_AHEAD),
            "Wed 3 Jun 2026 23:30 UTC to Thu 4 Jun 2026 00:30 UTC",
            id="another offset is told in UTC",
        ),
    ],
)
def test_a_session_s_time_as_a_message_names_it(start: datetime, end: datetime, text: str) -> None:
    assert _when(start, end) == text
