"""one open follow per (follower, host)

Two follow requests at once could both find no open follow and both insert one. Any
such duplicate is closed at its own start (an empty interval: never counted at any
instant, +1 and -1 on the same day), then a partial unique index keeps it from
happening again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("removed_ms IS NULL")


def upgrade() -> None:
    op.execute(
        "UPDATE follows SET removed_ms = created_ms WHERE removed_ms IS NULL AND id NOT IN "
        "(SELECT min(id) FROM follows WHERE removed_ms IS NULL GROUP BY follower_id, host_id)"
    )
    op.create_index(
        "ux_follows_open",
        "follows",
        ["follower_id", "host_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ux_follows_open", table_name="follows")
