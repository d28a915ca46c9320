"""tokens an account holds can be revoked

``users.tokens_valid_from_ms``: tokens issued before this moment no longer count (set by
a logout, and when an admin disables the account).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "tokens_valid_from_ms", sa.BigInteger, nullable=False, server_default=sa.text("0")
        ),
    )


def downgrade() -> None:
    op.drop_column("users", "tokens_valid_from_ms")
