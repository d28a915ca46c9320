"""stock announcements in a table of their own

``products.published_version`` (the last stock version announced as ``stock.changed``)
moves to ``stock_announcements``: announcing a product's stock then never locks the
product row, which every buyer of the product queues on in a flash sale.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stock_announcements",
        sa.Column(
            "product_id",
            sa.Integer,
            sa.ForeignKey("products.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO stock_announcements (product_id, version) "
        "SELECT id, published_version FROM products WHERE published_version > 0"
    )
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ too): a batch copy of `products`
    # would drop the table that orders, shelves and flash sales reference.
    op.drop_column("products", "published_version")


def downgrade() -> None:
    op.add_column(
        "products",
        sa.Column("published_version", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        "UPDATE products SET published_version = coalesce((SELECT version FROM "
        "stock_announcements WHERE product_id = products.id), 0)"
    )
    op.drop_table("stock_announcements")
