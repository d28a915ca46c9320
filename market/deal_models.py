"""Tables of paid deals: ``deals`` (one brand's order of one service of a host's rate
card, with its terms fixed at the offer and a timestamp per step), ``deal_events``
(every step: who, when, from what to what; the audit) and ``deal_strikes`` (a host
that cancelled a deal it had accepted).

``live/migrations/versions/0016_market_deals.py`` creates exactly these tables. The
money of a deal is in the spine's ledger (``market.deal_money``), never here.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class DealState(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    DELIVERED = "delivered"
    APPROVED = "approved"
    DISPUTED = "disputed"
    RESOLVED = "resolved"
    SETTLED = "settled"


class Deal(Base):
    """One deal. Its terms (service, price, fee and share) never change after the
    offer; ``state`` and the step timestamps change by ``market.deals`` only, each step
    a compare-and-set on ``(state, seq)``."""

    __tablename__ = "deals"
    __table_args__ = (
        # the same orderer's Idempotency-Key names the same deal
        UniqueConstraint("ordered_by", "idempotency_key", name="uq_deals_orderer_key"),
        Index("ix_deals_host", "host_id", "id"),
        Index("ix_deals_brand", "brand_id", "id"),
        Index("ix_deals_state_expires", "state", "expires_ms"),
        Index("ix_deals_state_review", "state", "review_ends_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(Integer)
    host_id: Mapped[int] = mapped_column(Integer)
    #: the agency managing the host when the offer was made (it gets its share)
    agency_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the brand, or the agency ordering for it
    ordered_by: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    card_version: Mapped[int] = mapped_column(Integer)
    service_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    #: the pinned minutes the deal buys (``market.deals.booked_minutes``)
    minutes: Mapped[int] = mapped_column(Integer)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    platform_fee_bps: Mapped[int] = mapped_column(Integer)
    agency_share_bps: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    #: the number of the deal's last event (``deal_events.seq``)
    seq: Mapped[int] = mapped_column(Integer)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    offered_ms: Mapped[int] = mapped_column(BigInteger)
    #: an offer not answered by then expires (just after it)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    accepted_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    scheduled_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: a delivered deal not approved or disputed by then is approved (just after it)
    review_ends_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    approved_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    disputed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    dispute_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: a resolved dispute: the part of the price released to the host's side
    resolution_host_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    settled_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: declined, withdrawn, expired or cancelled: when (the brand was refunded then)
    closed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DealEvent(Base):
    """One step of a deal, as it happened: never changed."""

    __tablename__ = "deal_events"
    __table_args__ = (
        # a step's Idempotency-Key: the same key on the same deal is the same step
        UniqueConstraint("deal_id", "idempotency_key", name="uq_deal_events_key"),
    )

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    #: None for the offer
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    #: ``brand``, ``host``, ``admin``, ``clock`` or ``system``
    party: Mapped[str] = mapped_column(String(8))
    #: the user who acted (None: the clock or the system)
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: what the step said (JSON: a schedule's session, a dispute's reason, a split)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class DealStrike(Base):
    """A host cancelled a deal after accepting it."""

    __tablename__ = "deal_strikes"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[int] = mapped_column(Integer, index=True)
    #: who cancelled: the host or its agency
    actor_id: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column(BigInteger)
