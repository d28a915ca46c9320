"""What an order attempt is, and everything it depends on, read as one row.

``context_query`` is the order path's read: the session, the shelf entry, the
cooperation's terms, the product, its running flash sale, the open pin and the order
the buyer's Idempotency-Key already names. Both order stores run it (``shelf.order_store``):
inside the write transaction on SQLite, as a shared read on PostgreSQL
(``shelf.order_reads``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, String, and_, bindparam, select

from live.models import LiveSession
from shelf.models import Cooperation, FlashSale, FlashStatus, Pin, Product, ShelfItem
from shelf.order_models import Order, OrderSource


def request_hash(session_id: int, product_id: int, quantity: int, source: OrderSource) -> str:
    return hashlib.sha256(f"{session_id}:{product_id}:{quantity}:{source}".encode()).hexdigest()


@dataclass(slots=True)
class Attempt:
    """One request to place an order, as it arrived; never changed once made. (Not
    ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``,
    ~1.3 us for these nine on every attempt of a sell-out.)"""

    session_id: int
    product_id: int
    buyer_id: int
    key: str
    now_ms: int
    quantity: int
    source: OrderSource
    #: the unit price and currency the buyer saw (None: not stated)
    expected_price: int | None = None
    expected_currency: str | None = None

    def binds(self) -> dict[str, Any]:
        """``context_query``'s bind parameters."""
        return {
            "sid": self.session_id,
            "pid": self.product_id,
            "buyer": self.buyer_id,
            "key": self.key,
            "now": self.now_ms,
        }

    def request_hash(self) -> str:
        """What the Idempotency-Key stands for; computed only when needed (most
        attempts in a sell-out are refused before)."""
        return request_hash(self.session_id, self.product_id, self.quantity, self.source)


@dataclass(frozen=True, slots=True)
class OrderContext:
    """One row of ``context_query``: everything an order depends on."""

    status: str
    cooperation_id: int | None
    host_id: int | None
    brand_id: int | None
    commission_bps: int | None
    flat_fee_minor: int | None
    price_minor: int | None
    currency: str | None
    archived_ms: int | None
    stock: int | None
    flash_id: int | None
    flash_price: int | None
    flash_currency: str | None
    flash_limit: int | None
    flash_quantity: int | None
    flash_sold: int | None
    pin_id: int | None
    existing_id: int | None
    existing_hash: str | None
    existing_response: str | None


def context_query() -> Select[*tuple[Any, ...]]:
    """Everything an order depends on, in one row (None: no such session): the columns
    of ``OrderContext``, including the units left and the order the key already names.

    Built once with bind parameters ``sid``, ``pid``, ``buyer``, ``key`` and ``now``:
    building and cache-keying a statement this size per request cost more CPU than
    the database work it describes.
    """
    session_id = bindparam("sid", type_=Integer)
    product_id = bindparam("pid", type_=Integer)
    buyer_id = bindparam("buyer", type_=Integer)
    key = bindparam("key", type_=String)
    now = bindparam("now", type_=BigInteger)
    open_pin = (
        select(Pin.id)
        .where(Pin.session_id == session_id, Pin.start_ms <= now, Pin.end_ms.is_(None))
        .order_by(Pin.start_ms.desc(), Pin.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    running = and_(
        FlashSale.session_id == session_id,
        FlashSale.product_id == product_id,
        FlashSale.status == FlashStatus.RUNNING.value,
        FlashSale.starts_ms <= now,
        FlashSale.ends_ms > now,
    )
    return (
        select(
            LiveSession.status,
            ShelfItem.cooperation_id,
            Cooperation.host_id,
            Cooperation.brand_id,
            Cooperation.commission_bps,
            Cooperation.flat_fee_minor,
            Product.price_minor,
            Product.currency,
            Product.archived_ms,
            Product.stock,
            FlashSale.id.label("flash_id"),
            FlashSale.price_minor.label("flash_price"),
            FlashSale.currency.label("flash_currency"),
            FlashSale.per_buyer_limit.label("flash_limit"),
            FlashSale.quantity.label("flash_quantity"),
            FlashSale.sold.label("flash_sold"),
            open_pin.label("pin_id"),
            Order.id.label("existing_id"),
            Order.request_hash.label("existing_hash"),
            Order.response_json.label("existing_response"),
        )
        .select_from(LiveSession)
        .outerjoin(
            ShelfItem,
            and_(ShelfItem.session_id == LiveSession.id, ShelfItem.product_id == product_id),
        )
        .outerjoin(Cooperation, Cooperation.id == ShelfItem.cooperation_id)
        .outerjoin(Product, Product.id == ShelfItem.product_id)
        .outerjoin(FlashSale, running)
        # At most one row: (buyer_id, idempotency_key) is unique.
        .outerjoin(Order, and_(Order.buyer_id == buyer_id, Order.idempotency_key == key))
        .where(LiveSession.id == session_id)
    )
