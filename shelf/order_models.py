"""Tables of the money path: orders; and the shelf's names in the ledger.

``live/migrations/versions/0004_orders.py`` creates the ``orders`` table (and the
ledger's, which the spine owns now: ``live.ledger_models.LedgerEntry``).

The shelf posts to the spine's ledger (``live.ledger``, through ``shelf.ledger``):
every ledger transaction (``txn``) is a set of lines whose ``amount_minor`` sum to
zero; a positive amount is owed *to* the account holder, a negative one *by* it. The
shelf's accounts:

* ``buyer_payments``  money captured from buyers (negative on a sale)
* ``brand_revenue``   what the brand keeps
* ``host_commission`` what the host earns; payable from ``available_ms`` on
* ``platform_fees``   the platform's fee
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class OrderStatus(enum.StrEnum):
    PLACED = "placed"  # stock taken, payment not captured yet
    PAID = "paid"  # captured; ledger posted (a partial refund keeps it paid)
    REFUNDED = "refunded"  # every unit refunded
    CANCELLED = "cancelled"  # payment failed; stock returned, nothing posted


class OrderSource(enum.StrEnum):
    LIVE = "live"
    REPLAY = "replay"


class Account(enum.StrEnum):
    BUYER_PAYMENTS = "buyer_payments"
    BRAND_REVENUE = "brand_revenue"
    HOST_COMMISSION = "host_commission"
    PLATFORM_FEES = "platform_fees"


class EntryKind(enum.StrEnum):
    SALE = "sale"
    REFUND = "refund"
    FLAT_FEE = "flat_fee"


@dataclass(frozen=True, slots=True)
class SettledOrder:
    """An order just settled (paid or cancelled), as plain values: ``OrderService``
    builds the answer, the ledger lines and the event from it, the same for every
    store and path; cheaper than a transient ORM ``Order`` (bench/RESULTS.md). Its
    fields are ``Order``'s names."""

    id: int
    session_id: int
    host_id: int
    brand_id: int
    product_id: int
    flash_sale_id: int | None
    pin_id: int | None
    quantity: int
    unit_price_minor: int
    currency: str
    amount_minor: int
    commission_bps: int
    platform_fee_bps: int
    refunded_quantity: int
    status: str
    source: str
    placed_ms: int
    paid_ms: int | None


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key", name="uq_orders_buyer_key"),
        Index("ix_orders_session", "session_id"),
        Index("ix_orders_host_placed", "host_id", "placed_ms"),
        Index("ix_orders_brand_placed", "brand_id", "placed_ms"),
        Index("ix_orders_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    brand_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    cooperation_id: Mapped[int] = mapped_column(ForeignKey("cooperations.id"))
    flash_sale_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pin_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    commission_bps: Mapped[int] = mapped_column(Integer)
    platform_fee_bps: Mapped[int] = mapped_column(Integer)
    flat_fee_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refunded_quantity: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(8))
    payment_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    placed_ms: Mapped[int] = mapped_column(BigInteger)
    paid_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


#: What an order's answer, ledger lines and ticker event are made of.
OrderFigures = Order | SettledOrder
