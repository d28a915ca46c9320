"""the marketplace's paid deals: deals, their audited steps, hosts' strikes

``deals`` (a brand's order of one rate card service, its terms fixed at the offer),
``deal_events`` (every step: who, when, from and to which state) and ``deal_strikes``
(a host cancelled a deal it had accepted). See ``market/deal_models.py``; the money
is in ``ledger_entries`` (``ref`` ``deal:{id}``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ms(name: str, nullable: bool = True) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "deals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("brand_id", sa.Integer, nullable=False),
        sa.Column("host_id", sa.Integer, nullable=False),
        sa.Column("agency_id", sa.Integer, nullable=True),
        sa.Column("ordered_by", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("card_version", sa.Integer, nullable=False),
        sa.Column("service_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("platform_fee_bps", sa.Integer, nullable=False),
        sa.Column("agency_share_bps", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("product_id", sa.Integer, nullable=True),
        _ms("offered_ms", nullable=False),
        _ms("expires_ms", nullable=False),
        _ms("accepted_ms"),
        _ms("scheduled_ms"),
        _ms("delivered_ms"),
        _ms("review_ends_ms"),
        _ms("approved_ms"),
        _ms("disputed_ms"),
        sa.Column("dispute_reason", sa.String(500), nullable=True),
        sa.Column("resolution_host_bps", sa.Integer, nullable=True),
        _ms("resolved_ms"),
        _ms("settled_ms"),
        _ms("closed_ms"),
        sa.UniqueConstraint("ordered_by", "idempotency_key", name="uq_deals_orderer_key"),
    )
    op.create_index("ix_deals_host", "deals", ["host_id", "id"])
    op.create_index("ix_deals_brand", "deals", ["brand_id", "id"])
    op.create_index("ix_deals_state_expires", "deals", ["state", "expires_ms"])
    op.create_index("ix_deals_state_review", "deals", ["state", "review_ends_ms"])
    op.create_table(
        "deal_events",
        sa.Column(
            "deal_id",
            sa.Integer,
            sa.ForeignKey("deals.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("party", sa.String(8), nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=True),
        _ms("at_ms", nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.UniqueConstraint("deal_id", "idempotency_key", name="uq_deal_events_key"),
    )
    op.create_table(
        "deal_strikes",
        sa.Column(
            "deal_id",
            sa.Integer,
            sa.ForeignKey("deals.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("host_id", sa.Integer, nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=False),
        _ms("at_ms", nullable=False),
    )
    op.create_index("ix_deal_strikes_host_id", "deal_strikes", ["host_id"])


def downgrade() -> None:
    for table in ("deal_strikes", "deal_events", "deals"):
        op.drop_table(table)
