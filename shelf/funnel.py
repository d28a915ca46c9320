"""The commerce funnel per pin window: who saw the card, who tapped it, who bought.

The watch page reports, over the room channel, ``{"type": "card.impression",
"pin_id"}`` when a pin's card is on screen and ``{"type": "card.click", "pin_id"}``
when the viewer taps it (opens it or presses Buy). Each counts once per viewer, pin
and kind (a signed-in viewer is ``u<id>``, a guest is its socket ``g<id>``). Events
are queued and inserted once a second (``ON CONFLICT DO NOTHING``); a crash loses at
most that second's reports.

``funnel`` joins them with the pin windows, the audience curve and the orders placed
during each window (``orders.pin_id``): viewers at the time, impressions, clicks,
orders, units, GMV, conversion (buyers / viewers who saw the card).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from live.clock import Clock
from live.coalesce import SingleFlight
from live.db import Database, upsert
from live.errors import NotFound
from live.roomchannel import RoomChannel
from live.roomhub import Connection
from live.tasks import reraise_if_cancelling, stop_task
from shelf.models import CardEvent, Pin, Product
from shelf.order_models import Order
from shelf.reports import SOLD

logger = logging.getLogger(__name__)

#: a session's pins with their product's title, by start
PinRows = Sequence[tuple[Pin, str]]


class CardReport(BaseModel):
    """``{"type": "card.impression" | "card.click", "pin_id": n, "ref"?}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["card.impression", "card.click"]
    pin_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    ref: Annotated[str, Field(max_length=64)] | Annotated[int, Field(ge=0)] | None = None


class CardEvents:
    """Takes the watch page's card reports and stores them, deduplicated."""

    def __init__(self, db: Database, clock: Clock, *, flush_s: float = 1.0) -> None:
        self._db = db
        self._clock = clock
        self._flush_s = flush_s
        #: reports since the last flush (one second's; a failed flush drops them)
        self._pending: list[dict[str, Any]] = []
        #: (pin, kind, viewer) already reported: at most 200,000, then emptied
        self._seen: set[tuple[int, str, str]] = set()
        #: pin -> its session: at most 100,000 pins, then emptied
        self._pin_session: dict[int, int] = {}
        self._pin_flight: SingleFlight[int | None] = SingleFlight()
        self._task: asyncio.Task[None] | None = None

    def attach(self, channel: RoomChannel) -> None:
        channel.register("card.impression", CardReport, self.report)
        channel.register("card.click", CardReport, self.report)

    async def report(self, conn: Connection, message: dict[str, Any]) -> None:
        pin_id = int(message["pin_id"])
        if await self._session_of(pin_id) != conn.room:
            raise NotFound("pin_not_found", f"no pin {pin_id} in this session")
        kind = str(message["type"]).removeprefix("card.")
        viewer = f"u{conn.user_id}" if conn.user_id is not None else f"g{conn.id}"
        key = (pin_id, kind, viewer)
        if key in self._seen:
            return
        if len(self._seen) > 200_000:
            self._seen.clear()  # only an optimisation: the insert ignores repeats anyway
        self._seen.add(key)
        self._pending.append(
            {
                "pin_id": pin_id,
                "kind": kind,
                "viewer": viewer,
                "session_id": conn.room,
                "at_ms": self._clock.now_ms(),
            }
        )

    async def flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        async with self._db.transaction() as tx:
            stmt = upsert(tx, CardEvent).on_conflict_do_nothing(
                index_elements=["pin_id", "kind", "viewer"]
            )
            await tx.execute(stmt, rows)

    async def _session_of(self, pin_id: int) -> int | None:
        """The pin's session (cached; a crowd reporting a new pin at once makes one read)."""
        session_id = self._pin_session.get(pin_id)
        if session_id is not None:
            return session_id

        async def load() -> int | None:
            async with self._db.read() as s:
                found = await s.scalar(select(Pin.session_id).where(Pin.id == pin_id))
            if found is not None:
                if len(self._pin_session) > 100_000:
                    self._pin_session.clear()
                self._pin_session[pin_id] = found
            return found

        return await self._pin_flight.do(pin_id, load)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="CardEvents")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:
                reraise_if_cancelling()
                logger.exception("CardEvents flush failed")


def _viewers_during(curve: Sequence[dict[str, int]], start_ms: int, end_ms: int) -> dict[str, int]:
    """``curve`` has one entry per second, without gaps (``analytics.concurrency``), so
    the window is a slice of it."""
    first = curve[0]["second"] if curve else 0
    lo = max(start_ms // 1000 - first, 0)
    hi = max(end_ms // 1000 - first + 1, 0)
    inside = [c["media_viewers"] for c in curve[lo:hi]]
    return {
        "viewers_at_start": inside[0] if inside else 0,
        "peak_viewers": max(inside, default=0),
    }


async def pin_rows(db: Database, session_id: int) -> list[tuple[Pin, str]]:
    """The session's pins with their product's title, by start."""
    async with db.read() as s:
        rows = await s.execute(
            select(Pin, Product.title)
            .join(Product, Product.id == Pin.product_id)
            .where(Pin.session_id == session_id)
            .order_by(Pin.start_ms, Pin.id)
        )
        return [(pin, title) for pin, title in rows]


async def funnel(
    db: Database,
    session_id: int,
    curve: Sequence[dict[str, int]],
    now_ms: int,
    pins: PinRows,
) -> dict[str, Any]:
    """Per pin window, per product and for the session: the funnel figures (``pins``:
    the session's ``pin_rows``)."""
    async with db.read() as s:
        events = (
            await s.execute(
                select(CardEvent.pin_id, CardEvent.kind, func.count())
                .where(CardEvent.session_id == session_id)
                .group_by(CardEvent.pin_id, CardEvent.kind)
            )
        ).all()
        sales = (
            await s.execute(
                select(
                    Order.pin_id,
                    Order.product_id,
                    Product.title,
                    Order.currency,
                    func.count(),
                    func.count(func.distinct(Order.buyer_id)),
                    func.sum(Order.quantity),
                    func.sum(Order.amount_minor),
                )
                .outerjoin(Product, Product.id == Order.product_id)
                .where(
                    Order.session_id == session_id, Order.status.in_(SOLD), Order.source == "live"
                )
                .group_by(Order.pin_id, Order.product_id, Product.title, Order.currency)
            )
        ).all()
    counts: dict[tuple[int, str], int] = {(p, k): int(n) for p, k, n in events}
    by_pin: dict[int | None, dict[str, Any]] = defaultdict(
        lambda: {"orders": 0, "buyers": 0, "units": 0, "gmv": defaultdict(int)}
    )
    by_product: dict[int, dict[str, Any]] = {}
    for pin_id, product_id, title, currency, orders, buyers, units, amount in sales:
        _product_acc(by_product, product_id)["title"] = title  # also sold while not pinned
        for acc in (by_pin[pin_id], _product_acc(by_product, product_id)):
            acc["orders"] += int(orders)
            acc["buyers"] += int(buyers)
            acc["units"] += int(units or 0)
            acc["gmv"][currency] += int(amount or 0)

    windows = []
    for pin, title in pins:
        end = pin.end_ms if pin.end_ms is not None else now_ms
        impressions = counts.get((pin.id, "impression"), 0)
        clicks = counts.get((pin.id, "click"), 0)
        sold = by_pin.get(pin.id, {"orders": 0, "buyers": 0, "units": 0, "gmv": {}})
        product = _product_acc(by_product, pin.product_id)
        product["title"] = title
        product["impressions"] += impressions
        product["clicks"] += clicks
        product["pins"] += 1
        windows.append(
            {
                "pin_id": pin.id,
                "product_id": pin.product_id,
                "title": title,
                "start_ms": pin.start_ms,
                "end_ms": pin.end_ms,
                "media_start_s": pin.media_start_s,
                "media_end_s": pin.media_end_s,
                **_viewers_during(curve, pin.start_ms, end),
                "impressions": impressions,
                "clicks": clicks,
                "orders": sold["orders"],
                "units": sold["units"],
                "gmv_minor": dict(sold["gmv"]),
                "click_rate": _rate(clicks, impressions),
                "conversion_rate": _rate(sold["buyers"], impressions),
            }
        )
    products: list[dict[str, Any]] = []
    total_gmv: dict[str, int] = defaultdict(int)
    for pid, acc in sorted(by_product.items()):
        gmv = dict(acc.pop("gmv"))
        for currency, amount in gmv.items():
            total_gmv[currency] += amount
        products.append({"product_id": pid, **acc, "gmv_minor": gmv})
    unpinned = by_pin.get(None)
    return {
        "pins": windows,
        "products": products,
        "session": {
            "impressions": sum(w["impressions"] for w in windows),
            "clicks": sum(w["clicks"] for w in windows),
            "orders": sum(p["orders"] for p in products),
            "units": sum(p["units"] for p in products),
            "gmv_minor": dict(total_gmv),
            "orders_outside_pins": unpinned["orders"] if unpinned else 0,
        },
    }


def _product_acc(by_product: dict[int, dict[str, Any]], product_id: int) -> dict[str, Any]:
    if product_id not in by_product:
        by_product[product_id] = {
            "title": None,
            "pins": 0,
            "impressions": 0,
            "clicks": 0,
            "orders": 0,
            "buyers": 0,
            "units": 0,
            "gmv": defaultdict(int),
        }
    return by_product[product_id]


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
