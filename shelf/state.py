"""Reading a session's shelf state, and the per-session locks that order its events.

``read_state`` builds exactly what the ``hello`` snapshot and ``GET
/api/sessions/{id}/shelf`` show::

    {"shelf": [item, ...],          # ordered; same items as the last shelf.updated
     "shelf_version": int,          # the version of the last shelf.updated
     "pinned": card | None,         # the card of the open pin (card.shown data)
     "stock": {"<product_id>": stock_entry, ...},   # latest, for every shelved product
     "flash_sales": [flash, ...]}   # scheduled and running sales of this session

Shelf and pin changes of one session are serialised in this process by a striped
``asyncio.Lock`` held from the transaction until the room event is appended, so the
events of one session leave in the order of their commits. (Across processes the
``version`` in ``shelf.updated`` lets a client drop a stale one.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.db import upsert
from live.models import LiveSession, SessionStatus
from shelf.models import FlashSale, FlashStatus, Pin, Product, Shelf, ShelfItem
from shelf.views import card_dict, flash_dict, shelf_item_dict, stock_entry

ACTIVE_FLASH = (FlashStatus.SCHEDULED.value, FlashStatus.RUNNING.value)


class SessionLocks:
    """A fixed set of locks; a session always maps to the same one."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    def __call__(self, session_id: int) -> asyncio.Lock:
        return self._locks[session_id % len(self._locks)]


async def sessions_showing(s: AsyncSession, product_id: int) -> list[int]:
    """The sessions, not ended, whose shelf carries ``product_id``."""
    return list(
        await s.scalars(
            select(ShelfItem.session_id)
            .join(LiveSession, LiveSession.id == ShelfItem.session_id)
            .where(
                ShelfItem.product_id == product_id,
                LiveSession.status != SessionStatus.ENDED.value,
            )
        )
    )


async def shelf_products(s: AsyncSession, session_id: int) -> list[Product]:
    """The session's shelf, in order."""
    return list(
        await s.scalars(
            select(Product)
            .join(ShelfItem, ShelfItem.product_id == Product.id)
            .where(ShelfItem.session_id == session_id)
            .order_by(ShelfItem.position, ShelfItem.product_id)
        )
    )


async def shelf_version(s: AsyncSession, session_id: int) -> int:
    return (await s.scalar(select(Shelf.version).where(Shelf.session_id == session_id))) or 0


async def bump_shelf(tx: AsyncSession, session_id: int) -> int:
    """Increment the session's shelf version (creating it) and return the new value.

    The UPDATE also locks the session's shelf row, serialising concurrent edits.
    """
    await tx.execute(
        upsert(tx, Shelf)
        .values(session_id=session_id, version=0)
        .on_conflict_do_nothing(index_elements=["session_id"])
    )
    await tx.execute(
        update(Shelf).where(Shelf.session_id == session_id).values(version=Shelf.version + 1)
    )
    return await shelf_version(tx, session_id)


async def shelf_event(tx: AsyncSession, session_id: int, now_ms: int) -> dict[str, Any]:
    """Bump the version and return the ``shelf.updated`` data for the current shelf:
    ``{"version", "shelf": [item...], "stock": {"<product_id>": stock_entry}}`` (the
    stock of every shelved product, so a newly shelved one has a value at once)."""
    version = await bump_shelf(tx, session_id)
    products = await shelf_products(tx, session_id)
    held = await holding_flashes(tx, session_id=session_id)
    flashes = running_of(held, now_ms)
    return {
        "version": version,
        "shelf": [shelf_item_dict(p) for p in products],
        "stock": {
            str(p.id): stock_entry(p, flashes.get(p.id), held.get(p.id, ())) for p in products
        },
    }


#: sales holding units out of stock: running ones, and scheduled ones reserved ahead
HOLDING_UNITS = (FlashSale.status == FlashStatus.RUNNING.value) | (
    (FlashSale.status == FlashStatus.SCHEDULED.value) & FlashSale.reserved_ms.is_not(None)
)


async def holding_flashes(
    s: AsyncSession, *, session_id: int | None = None, product_ids: list[int] | None = None
) -> dict[int, list[FlashSale]]:
    """The flash sales holding units (``HOLDING_UNITS``) by product id: one session's,
    or (``product_ids``) those products' in every show (``shelf.views.stock_figures``)."""
    query = select(FlashSale).where(HOLDING_UNITS)
    if session_id is not None:
        query = query.where(FlashSale.session_id == session_id)
    if product_ids is not None:
        if not product_ids:
            return {}
        query = query.where(FlashSale.product_id.in_(product_ids))
    held: dict[int, list[FlashSale]] = {}
    for f in await s.scalars(query.order_by(FlashSale.id)):
        held.setdefault(f.product_id, []).append(f)
    return held


def running_of(held: dict[int, list[FlashSale]], now_ms: int) -> dict[int, FlashSale]:
    """Of the sales holding units (``holding_flashes``), the running ones by product id:
    what ``running_flashes`` reads, without reading again."""
    return {
        product_id: f
        for product_id, sales in held.items()
        for f in sales
        if f.status == FlashStatus.RUNNING.value and f.starts_ms <= now_ms
    }


async def open_pin(s: AsyncSession, session_id: int) -> Pin | None:
    return await s.scalar(
        select(Pin).where(Pin.session_id == session_id, Pin.end_ms.is_(None)).order_by(Pin.id)
    )


async def running_flashes(s: AsyncSession, session_id: int, now_ms: int) -> dict[int, FlashSale]:
    """The session's running flash sales by product id."""
    rows = await s.scalars(
        select(FlashSale).where(
            FlashSale.session_id == session_id,
            FlashSale.status == FlashStatus.RUNNING.value,
            FlashSale.starts_ms <= now_ms,
        )
    )
    return {f.product_id: f for f in rows}


async def card_for(s: AsyncSession, pin: Pin, now_ms: int) -> dict[str, Any]:
    product = await s.get(Product, pin.product_id)
    assert product is not None
    flash = (await running_flashes(s, pin.session_id, now_ms)).get(pin.product_id)
    return card_dict(pin, product, flash)


async def read_state(s: AsyncSession, session_id: int, now_ms: int) -> dict[str, Any]:
    products = await shelf_products(s, session_id)
    held = await holding_flashes(s, session_id=session_id)
    flashes = running_of(held, now_ms)
    pin = await open_pin(s, session_id)
    active = await s.scalars(
        select(FlashSale)
        .where(FlashSale.session_id == session_id, FlashSale.status.in_(ACTIVE_FLASH))
        .order_by(FlashSale.starts_ms, FlashSale.id)
    )
    return {
        "shelf": [shelf_item_dict(p) for p in products],
        "shelf_version": await shelf_version(s, session_id),
        "pinned": None if pin is None else await card_for(s, pin, now_ms),
        "stock": {
            str(p.id): stock_entry(p, flashes.get(p.id), held.get(p.id, ())) for p in products
        },
        "flash_sales": [flash_dict(f, now_ms) for f in active],
    }
