"""Time, behind an interface so that tests can freeze it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "jalali_date", "utc", "utc_and_jalali"]


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone; give it in UTC (e.g. 2026-01-01T00:00:00Z)")
    return moment.astimezone(timezone.utc)


def jalali_date(moment: datetime) -> str:
    """The date of ``moment`` (in UTC) in the Solar Hijri (Jalali) calendar, e.g. 1405-09-01."""
    import jdatetime

    return jdatetime.datetime.fromgregorian(datetime=utc(moment)).strftime("%Y-%m-%d")


def utc_and_jalali(moment: datetime) -> str:
    """``2026-11-23 09:00:00 UTC (1405-09-02)``: UTC with the Jalali date, as Iranian readers expect."""
    return f"{utc(moment):%Y-%m-%d %H:%M:%S} UTC ({jalali_date(moment)})"


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
