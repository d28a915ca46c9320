"""shelf: products, cooperations, host agencies, shelves, pins, flash sales

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("brand_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("image_url", sa.String(2048), nullable=True),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("commission_bps", sa.Integer, nullable=False),
        sa.Column("stock_version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("published_version", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("archived_ms", sa.BigInteger, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("stock >= 0", name="ck_products_stock"),
        sa.CheckConstraint("price_minor >= 0", name="ck_products_price"),
    )
    op.create_index("ix_products_brand_id", "products", ["brand_id"])
    op.create_table(
        "host_agencies",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("agency_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_host_agencies_agency_id", "host_agencies", ["agency_id"])
    op.create_table(
        "cooperations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("brand_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("commission_bps", sa.Integer, nullable=False),
        sa.Column("flat_fee_minor", sa.BigInteger, nullable=True),
        sa.Column("flat_fee_currency", sa.String(3), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("decided_ms", sa.BigInteger, nullable=True),
        sa.Column("decided_by", sa.Integer, nullable=True),
        sa.Column("ended_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_cooperations_host_status", "cooperations", ["host_id", "status"])
    op.create_index("ix_cooperations_brand_status", "cooperations", ["brand_id", "status"])
    op.create_table(
        "cooperation_products",
        sa.Column(
            "cooperation_id",
            sa.Integer,
            sa.ForeignKey("cooperations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), primary_key=True),
    )
    op.create_index("ix_cooperation_products_product_id", "cooperation_products", ["product_id"])
    op.create_table(
        "shelves",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "shelf_items",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), primary_key=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), primary_key=True),
        sa.Column("cooperation_id", sa.Integer, sa.ForeignKey("cooperations.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("added_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_shelf_items_product_id", "shelf_items", ["product_id"])
    op.create_table(
        "pins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.Column("media_start_s", sa.Float, nullable=True),
        sa.Column("media_end_s", sa.Float, nullable=True),
    )
    op.create_index("ix_pins_session_start", "pins", ["session_id", "start_ms"])
    op.create_table(
        "flash_sales",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("sold", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("per_buyer_limit", sa.Integer, nullable=False),
        sa.Column("starts_ms", sa.BigInteger, nullable=False),
        sa.Column("ends_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
        sa.Column("closed_ms", sa.BigInteger, nullable=True),
        sa.CheckConstraint("sold >= 0 AND sold <= quantity", name="ck_flash_sales_sold"),
    )
    op.create_index("ix_flash_sales_session_product", "flash_sales", ["session_id", "product_id"])
    op.create_index("ix_flash_sales_status_starts", "flash_sales", ["status", "starts_ms"])
    op.create_index("ix_flash_sales_status_ends", "flash_sales", ["status", "ends_ms"])
    op.create_table(
        "flash_purchases",
        sa.Column(
            "flash_sale_id",
            sa.Integer,
            sa.ForeignKey("flash_sales.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("buyer_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("flash_purchases")
    op.drop_table("flash_sales")
    op.drop_table("pins")
    op.drop_table("shelf_items")
    op.drop_table("shelves")
    op.drop_table("cooperation_products")
    op.drop_table("cooperations")
    op.drop_table("host_agencies")
    op.drop_table("products")
