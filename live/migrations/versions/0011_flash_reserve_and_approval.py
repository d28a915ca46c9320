"""flash sales reserve their units when they start; brands approve sales beyond terms

``flash_sales.reserved_ms``: when the sale's units moved out of the product's stock
(NULL: not yet; a sale reserves at its start, or a short lead time before).
Sales made before reserved at creation, so theirs is their ``created_ms``.
``flash_sales.cancel_reason``: why the server cancelled a sale (``out_of_stock``,
``not_approved``, ``session_ended``...); NULL when the host cancelled it.
``flash_sales.decided_ms`` / ``decided_by``: the brand's answer to a sale that waited
for its approval. ``cooperations.flash_ask_brand``: a sale below the agreed floor or
over the agreed cap waits for the brand's approval instead of being refused.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite too): a batch copy would drop the referenced table
    op.add_column("flash_sales", sa.Column("reserved_ms", sa.BigInteger, nullable=True))
    op.add_column("flash_sales", sa.Column("cancel_reason", sa.String(32), nullable=True))
    op.add_column("flash_sales", sa.Column("decided_ms", sa.BigInteger, nullable=True))
    op.add_column("flash_sales", sa.Column("decided_by", sa.Integer, nullable=True))
    op.execute("UPDATE flash_sales SET reserved_ms = created_ms")
    op.add_column(
        "cooperations",
        sa.Column("flash_ask_brand", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("cooperations", "flash_ask_brand")
    for column in ("decided_by", "decided_ms", "cancel_reason", "reserved_ms"):
        op.drop_column("flash_sales", column)
