"""Tables of the shelf: products, cooperations, host-agency links, shelves, pins and
flash sales.

Money is integer minor units plus an ISO 4217 code; rates are basis points; times
are integer milliseconds since the Unix epoch (UTC), like the rest of liveshelf.
``live/migrations/versions/0002_shelf.py`` creates exactly these tables.

Stock and reservations (the contract the orders feature relies on):

* ``Product.stock`` is the number of units that can be sold at the regular price now.
  It never goes below zero (a CHECK constraint backs the conditional updates).
* A flash sale moves its units out of ``Product.stock`` when it starts (or a short
  lead time before, ``FlashScheduler``), never when it is scheduled: until then
  ``reserved_ms`` is None and ``quantity`` is what the host asked for. Reserving takes
  ``min(quantity, stock)`` and sets ``quantity`` to it (none left: the sale is
  cancelled, reason ``out_of_stock``); from then on the reservation *is* the flash sale
  row. Units sold in the sale are counted in ``FlashSale.sold`` (``sold <= quantity``);
  when a reserved sale ends or is cancelled the unsold rest (``quantity - sold``) goes
  back to ``Product.stock``.
* Every change of either number increments ``Product.stock_version``;
  ``StockAnnouncement.version`` is the last version announced as ``stock.changed``. It
  lives in a table of its own so that announcing never locks the product row, which
  every buyer of the product queues on (``shelf.publisher``).
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class CooperationStatus(enum.StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    ENDED = "ended"


class FlashStatus(enum.StrEnum):
    #: outside the agreed terms, waiting for the brand (``Cooperation.flash_ask_brand``)
    PENDING = "pending_approval"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    ENDED = "ended"
    CANCELLED = "cancelled"
    #: the brand said no to a sale that waited for its approval
    DECLINED = "declined"


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_products_stock"),
        CheckConstraint("price_minor >= 0", name="ck_products_price"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer)
    commission_bps: Mapped[int] = mapped_column(Integer)
    stock_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    archived_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class StockAnnouncement(Base):
    """The last ``Product.stock_version`` announced as ``stock.changed`` (no row: none)."""

    __tablename__ = "stock_announcements"

    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer)


class HostAgency(Base):
    """The agency a host has named to act for them (at most one per host)."""

    __tablename__ = "host_agencies"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class CooperationParty(enum.StrEnum):
    """The two sides of an agreement: whose turn it is, who took a step."""

    BRAND = "brand"
    #: the host, or the agency acting for the host
    HOST = "host"


class Cooperation(Base):
    """An agreement; its terms are the last offer (``round``) while it is proposed.

    A proposal goes back and forth: the party whose ``turn`` it is accepts, declines
    or counters (new terms, the other party's turn, ``round`` + 1). Every step is a
    ``CooperationRound`` row (``live/migrations/versions/0013_cooperation_rounds.py``).
    """

    __tablename__ = "cooperations"
    __table_args__ = (
        Index("ix_cooperations_host_status", "host_id", "status"),
        Index("ix_cooperations_brand_status", "brand_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    commission_bps: Mapped[int] = mapped_column(Integer)
    flat_fee_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flat_fee_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: flash sales the brand agreed to: the lowest flash price in basis points of the
    #: regular price (None: no flash sales), and the most units one sale may hold
    flash_min_price_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flash_max_units: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: a sale below the floor or over the cap waits for the brand's approval (True)
    #: instead of being refused (False)
    flash_ask_brand: Mapped[bool] = mapped_column(Boolean, server_default=false())
    status: Mapped[str] = mapped_column(String(16))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    decided_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: who must act next while it is proposed (``CooperationParty``)
    turn: Mapped[str] = mapped_column(String(8), server_default=text("'host'"))
    #: the offer the terms above are: 1 the proposal, +1 per counter-offer
    round: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class CooperationRound(Base):
    """One step of an agreement's history: the proposal, each counter-offer with its
    terms, and the decision (accepted, declined, withdrawn, ended) on the terms then."""

    __tablename__ = "cooperation_rounds"

    cooperation_id: Mapped[int] = mapped_column(
        ForeignKey("cooperations.id", ondelete="CASCADE"), primary_key=True
    )
    #: 1, 2, ... in the order the steps were taken
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the offer the step made or answered (``Cooperation.round``)
    round: Mapped[int] = mapped_column(Integer)
    #: proposed, countered, accepted, declined, withdrawn, ended
    action: Mapped[str] = mapped_column(String(16))
    #: ``CooperationParty``: who took it (an agency acts as ``host``)
    party: Mapped[str] = mapped_column(String(8))
    by_user: Mapped[int | None] = mapped_column(Integer, nullable=True)
    commission_bps: Mapped[int] = mapped_column(Integer)
    flat_fee_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flat_fee_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class CooperationProduct(Base):
    __tablename__ = "cooperation_products"

    cooperation_id: Mapped[int] = mapped_column(
        ForeignKey("cooperations.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True, index=True)


class Shelf(Base):
    """Per-session shelf state: a version bumped by every ``shelf.updated``."""

    __tablename__ = "shelves"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class ShelfItem(Base):
    """A product on a session's shelf, with the cooperation that allowed it there.

    ``cooperation_id`` is frozen when the product is added: orders take the rate
    from that agreement even if it is ended later during the session.
    """

    __tablename__ = "shelf_items"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), primary_key=True, index=True)
    cooperation_id: Mapped[int] = mapped_column(ForeignKey("cooperations.id"))
    position: Mapped[int] = mapped_column(Integer)
    added_ms: Mapped[int] = mapped_column(BigInteger)


class Pin(Base):
    """One pin window: the product was "now explaining" from ``start_ms`` to ``end_ms``.

    ``end_ms`` is null while the pin is open (at most one open pin per session). The
    ``media_*_s`` columns hold the recording's media time when one was running.
    """

    __tablename__ = "pins"
    __table_args__ = (Index("ix_pins_session_start", "session_id", "start_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    media_start_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    media_end_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class FlashSale(Base):
    __tablename__ = "flash_sales"
    __table_args__ = (
        CheckConstraint("sold >= 0 AND sold <= quantity", name="ck_flash_sales_sold"),
        Index("ix_flash_sales_session_product", "session_id", "product_id"),
        Index("ix_flash_sales_status_starts", "status", "starts_ms"),
        Index("ix_flash_sales_status_ends", "status", "ends_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    quantity: Mapped[int] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    per_buyer_limit: Mapped[int] = mapped_column(Integer)
    starts_ms: Mapped[int] = mapped_column(BigInteger)
    ends_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: when ``quantity`` units moved out of the product's stock (None: not yet)
    reserved_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: why the server cancelled the sale (None: the host did, or it was not cancelled)
    cancel_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: the brand's answer to a sale that waited for its approval
    decided_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class FlashPurchase(Base):
    """Units one buyer bought in one flash sale (enforces ``per_buyer_limit``)."""

    __tablename__ = "flash_purchases"

    flash_sale_id: Mapped[int] = mapped_column(
        ForeignKey("flash_sales.id", ondelete="CASCADE"), primary_key=True
    )
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class CardEvent(Base):
    """A viewer saw (``impression``) or tapped (``click``) a pin's product card; once
    per viewer, pin and kind. ``viewer`` is ``u<user id>`` or ``g<connection id>``."""

    __tablename__ = "card_events"

    pin_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    viewer: Mapped[str] = mapped_column(String(48), primary_key=True)
    session_id: Mapped[int] = mapped_column(Integer, index=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
