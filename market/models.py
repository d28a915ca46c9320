"""Tables of the marketplace: rate cards (versioned, never changed once published),
creator profiles (self-reported), and the verified figures the directory reads.

``live/migrations/versions/0015_market_catalogue.py`` creates exactly these tables.
Timestamps are integer milliseconds (``live.clock``), as everywhere else.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class ServiceKind(enum.StrEnum):
    #: minutes of a live show featuring the product, pinned
    LIVE_SEGMENT = "live_segment"
    #: a shoppable note (refused until notes exist: ``notes_unavailable``)
    NOTE = "note"
    #: the product on the shelf for a show
    SHELF_SLOT = "shelf_slot"


class RateCard(Base):
    """One published version of a host's rate card. Versions count 1, 2, ... per host;
    the newest is the current one. A row and its services never change: an order (a
    deal, later) names the version and service it was placed on."""

    __tablename__ = "rate_cards"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the host, or the agency acting for it
    published_by: Mapped[int] = mapped_column(Integer)
    published_ms: Mapped[int] = mapped_column(BigInteger)


class RateCardService(Base):
    """A service of one rate card version, in the card's order (``position``). Its
    ``id`` is what a deal will name."""

    __tablename__ = "rate_card_services"
    __table_args__ = (
        Index("ix_rate_card_services_card", "host_id", "version", "position", unique=True),
        Index("ix_rate_card_services_currency_price", "currency", "price_minor"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    #: live segments only
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    turnaround_days: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)


class RateCardHead(Base):
    """The current version of each host's card: what the directory lists (a host is
    in the directory once it has published a card)."""

    __tablename__ = "rate_card_heads"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    published_ms: Mapped[int] = mapped_column(BigInteger)


class CreatorProfile(Base):
    """What a host says of itself: never shown as verified."""

    __tablename__ = "creator_profiles"

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    #: the tags, comma-separated, in the host's order (``creator_tags`` to search them)
    tags: Mapped[str] = mapped_column(String(400))
    region: Mapped[str | None] = mapped_column(String(8), nullable=True, index=True)
    bio: Mapped[str] = mapped_column(Text)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class CreatorTag(Base):
    """One tag of a profile, to filter the directory by."""

    __tablename__ = "creator_tags"
    __table_args__ = (Index("ix_creator_tags_tag", "tag"),)

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)


class CreatorFigures(Base):
    """A host's verified figures as of ``computed_ms`` (``market.figures``): computed
    from liveshelf's own rows, refreshed by a periodic pass."""

    __tablename__ = "creator_figures"
    __table_args__ = (
        Index("ix_creator_figures_followers", "followers", "host_id"),
        Index("ix_creator_figures_peak", "peak_viewers", "host_id"),
    )

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    computed_ms: Mapped[int] = mapped_column(BigInteger)
    followers: Mapped[int] = mapped_column(Integer)
    avg_viewers: Mapped[float] = mapped_column(Float)
    peak_viewers: Mapped[int] = mapped_column(Integer)
    avg_watch_s: Mapped[float] = mapped_column(Float)
    orders: Mapped[int] = mapped_column(Integer)


class CreatorSales(Base):
    """A host's paid, unrefunded sales in one currency, as of its ``CreatorFigures``."""

    __tablename__ = "creator_sales"
    __table_args__ = (Index("ix_creator_sales_currency_gmv", "currency", "gmv_minor"),)

    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    gmv_minor: Mapped[int] = mapped_column(BigInteger)
    #: the refresh that wrote it: a refresh deletes its hosts' older rows
    computed_ms: Mapped[int] = mapped_column(BigInteger)
