"""orders and the commission ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=False),
        sa.Column("buyer_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("brand_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("cooperation_id", sa.Integer, sa.ForeignKey("cooperations.id"), nullable=False),
        sa.Column("flash_sale_id", sa.Integer, nullable=True),
        sa.Column("pin_id", sa.Integer, nullable=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("commission_bps", sa.Integer, nullable=False),
        sa.Column("platform_fee_bps", sa.Integer, nullable=False),
        sa.Column("flat_fee_minor", sa.BigInteger, nullable=True),
        sa.Column("refunded_quantity", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("payment_ref", sa.String(128), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_json", sa.Text, nullable=True),
        sa.Column("placed_ms", sa.BigInteger, nullable=False),
        sa.Column("paid_ms", sa.BigInteger, nullable=True),
        sa.Column("closed_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("buyer_id", "idempotency_key", name="uq_orders_buyer_key"),
    )
    op.create_index("ix_orders_session", "orders", ["session_id"])
    op.create_index("ix_orders_host_placed", "orders", ["host_id", "placed_ms"])
    op.create_index("ix_orders_brand_placed", "orders", ["brand_id", "placed_ms"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("txn", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(24), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("order_id", sa.Integer, nullable=True),
        sa.Column("session_id", sa.Integer, nullable=False),
        sa.Column("host_id", sa.Integer, nullable=False),
        sa.Column("brand_id", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("available_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("txn", "account", name="uq_ledger_txn_account"),
    )
    op.create_index("ix_ledger_host_created", "ledger_entries", ["host_id", "created_ms"])
    op.create_index("ix_ledger_brand_created", "ledger_entries", ["brand_id", "created_ms"])
    op.create_index("ix_ledger_order", "ledger_entries", ["order_id"])


def downgrade() -> None:
    op.drop_table("ledger_entries")
    op.drop_table("orders")
