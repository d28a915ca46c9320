"""Bodies and queries of the order, refund and report routes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from live.clock import to_ms
from live.errors import InvalidInput
from live.schemas import Body

MAX_UNITS_PER_ORDER = 99
#: the last instant a report's period may name: 9999-12-31T23:59:59.999Z (answers carry
#: it as an ISO string, which has four-digit years; none may come before 1970 either)
LATEST_MS = 253_402_300_799_999


class OrderBody(Body):
    product_id: Annotated[int, Field(ge=1, le=2**31 - 1)]  # an id column's range
    quantity: Annotated[int, Field(ge=1, le=MAX_UNITS_PER_ORDER)] = 1
    #: the unit price (and currency) the buyer was shown: if the price is another
    #: when the order arrives, it is refused (``409 price_changed``), nothing charged
    expected_unit_price_minor: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None


class RefundBody(Body):
    quantity: Annotated[int, Field(ge=1, le=MAX_UNITS_PER_ORDER)] | None = None


def parse_instant(name: str, value: str | None, default: int) -> int:
    """``2026-11-01`` (UTC midnight) or an ISO datetime with a zone -> epoch ms."""
    if value is None or value == "":
        return default
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("invalid_query", f"'{name}' is a date or an ISO datetime") from exc
    if moment.tzinfo is None:
        raise InvalidInput("invalid_query", f"'{name}' needs a timezone, e.g. ...Z")
    try:
        ms = to_ms(moment)
    except (OverflowError, ValueError):  # past year 9999 in UTC
        ms = -1
    if not 0 <= ms <= LATEST_MS:
        raise InvalidInput("invalid_query", f"'{name}' is between 1970 and 9999 (UTC)")
    return ms
