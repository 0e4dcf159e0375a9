"""Time, behind an interface so that tests can freeze it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "utc"]


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone; give it in UTC (e.g. 2026-01-01T00:00:00Z)")
    return moment.astimezone(timezone.utc)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    def __init__(self, moment: datetime):
        self.moment = utc(moment)

    def now(self) -> datetime:
        return self.moment
