"""Server time. Everything that depends on "now" gets a Clock, so tests can drive time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start_ms: int = 1_764_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms


def iso(ms: int | None) -> str | None:
    """``1764320000123`` -> ``"2025-11-28T08:53:20.123Z"`` (None stays None)."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    # isoformat pads the year to four digits ("0574-..."); strftime's %Y does not on
    # glibc ("574-..."), which is no RFC 3339 date-time.
    return dt.replace(microsecond=0).isoformat()[:-6] + f".{ms % 1000:03d}Z"


def to_ms(dt: datetime) -> int:
    """An aware datetime -> epoch milliseconds."""
    return int(dt.timestamp() * 1000)
