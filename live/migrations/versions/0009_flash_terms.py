"""flash-sale terms in the cooperation agreement

``cooperations.flash_min_price_bps``: the lowest flash price the brand agreed to, in
basis points of the product's regular price (NULL: no flash sales under this
agreement); ``cooperations.flash_max_units``: the most units one sale may hold (NULL:
no cap but the stock). Agreements made before had no such terms: they allow no flash
sales until the brand proposes new ones.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite too): a batch copy would drop the referenced table
    op.add_column("cooperations", sa.Column("flash_min_price_bps", sa.Integer, nullable=True))
    op.add_column("cooperations", sa.Column("flash_max_units", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("cooperations", "flash_max_units")
    op.drop_column("cooperations", "flash_min_price_bps")
