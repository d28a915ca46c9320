"""``PinWindows``: how long a live session showed a product, and whose a product is,
for features that pay for a show (the market's deals ask through their own
``PinMinutes`` and ``ProductBrands`` protocols, wired in ``app.py``)."""

from __future__ import annotations

from sqlalchemy import select

from live.clock import Clock
from live.db import Database
from shelf.models import Pin, Product

MINUTE_MS = 60_000


class PinWindows:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def pinned_minutes(self, session_id: int, product_id: int) -> int:
        """Whole minutes of every pin window of ``product_id`` in ``session_id``
        together, an open one counted until now."""
        query = select(Pin.start_ms, Pin.end_ms).where(
            Pin.session_id == session_id, Pin.product_id == product_id
        )
        now = self._clock.now_ms()
        async with self._db.read() as s:
            windows = (await s.execute(query)).all()
        total_ms = sum(max(0, (end if end is not None else now) - start) for start, end in windows)
        return total_ms // MINUTE_MS

    async def brand_of(self, product_id: int) -> int | None:
        async with self._db.read() as s:
            product = await s.get(Product, product_id)
        return product.brand_id if product is not None else None
