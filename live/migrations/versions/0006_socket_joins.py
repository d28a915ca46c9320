"""room-socket joins and leaves per second

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audience_seconds") as table:
        table.add_column(
            sa.Column("socket_joins", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
        table.add_column(
            sa.Column("socket_leaves", sa.Integer, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("audience_seconds") as table:
        table.drop_column("socket_leaves")
        table.drop_column("socket_joins")
