"""The ledger's table: one row per line of a balanced transaction (``live.ledger``).

``live/migrations/versions/0004_orders.py`` created it for the shelf's orders;
``0014_ledger_spine.py`` made it the spine's: ``session_id`` nullable (a deal is paid
before it is bound to a session), ``ref`` (a feature's key for what was paid, e.g.
``deal:17``) and ``agency_id`` (an agency's share) added.

A positive ``amount_minor`` is owed *to* the account's holder, a negative one *by* it;
the lines of one ``txn`` sum to zero. ``available_ms`` is when the line becomes
payable (NULL: at once). Rows are never updated or deleted: a refund is a new
transaction of reversing lines.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        # posting a transaction twice fails (or, ``post_once``, does nothing)
        UniqueConstraint("txn", "account", name="uq_ledger_txn_account"),
        Index("ix_ledger_host_created", "host_id", "created_ms"),
        Index("ix_ledger_brand_created", "brand_id", "created_ms"),
        Index("ix_ledger_agency_created", "agency_id", "created_ms"),
        Index("ix_ledger_order", "order_id"),
        Index("ix_ledger_ref", "ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the transaction's key, unique per posting feature's event (``order:7:sale``)
    txn: Mapped[str] = mapped_column(String(64))
    #: what kind of movement (a feature's own names: ``sale``, ``refund``, ...)
    kind: Mapped[str] = mapped_column(String(16))
    #: whose money (a feature's own names: ``host_commission``, ...)
    account: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    order_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    host_id: Mapped[int] = mapped_column(Integer)
    brand_id: Mapped[int] = mapped_column(Integer)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    available_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: what the money is for, in the posting feature's words (``deal:17``)
    ref: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: the agency whose share the line is
    agency_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
