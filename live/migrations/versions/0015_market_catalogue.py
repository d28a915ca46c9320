"""the marketplace's catalogue: rate cards, creator profiles, verified figures

``rate_cards`` (one row per published version, never changed) with their
``rate_card_services``, ``rate_card_heads`` (each host's current version),
``creator_profiles`` and ``creator_tags`` (self-reported), ``creator_figures`` and
``creator_sales`` (the verified figures, refreshed by ``market.figures``). See
``market/models.py``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_cards",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("published_by", sa.Integer, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rate_card_services",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("minutes", sa.Integer, nullable=True),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("turnaround_days", sa.Integer, nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
    )
    op.create_index(
        "ix_rate_card_services_card",
        "rate_card_services",
        ["host_id", "version", "position"],
        unique=True,
    )
    op.create_index(
        "ix_rate_card_services_currency_price", "rate_card_services", ["currency", "price_minor"]
    )
    op.create_table(
        "rate_card_heads",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "creator_profiles",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("tags", sa.String(400), nullable=False),
        sa.Column("region", sa.String(8), nullable=True),
        sa.Column("bio", sa.Text, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_creator_profiles_region", "creator_profiles", ["region"])
    op.create_table(
        "creator_tags",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("tag", sa.String(32), primary_key=True),
    )
    op.create_index("ix_creator_tags_tag", "creator_tags", ["tag"])
    op.create_table(
        "creator_figures",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("computed_ms", sa.BigInteger, nullable=False),
        sa.Column("followers", sa.Integer, nullable=False),
        sa.Column("avg_viewers", sa.Float, nullable=False),
        sa.Column("peak_viewers", sa.Integer, nullable=False),
        sa.Column("avg_watch_s", sa.Float, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
    )
    op.create_index("ix_creator_figures_followers", "creator_figures", ["followers", "host_id"])
    op.create_index("ix_creator_figures_peak", "creator_figures", ["peak_viewers", "host_id"])
    op.create_table(
        "creator_sales",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("gmv_minor", sa.BigInteger, nullable=False),
        sa.Column("computed_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_creator_sales_currency_gmv", "creator_sales", ["currency", "gmv_minor"])


def downgrade() -> None:
    for table in (
        "creator_sales",
        "creator_figures",
        "creator_tags",
        "creator_profiles",
        "rate_card_heads",
        "rate_card_services",
        "rate_cards",
    ):
        op.drop_table(table)
