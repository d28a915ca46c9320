"""watch intervals name the person watching

``watch_intervals.viewer``: who watched (``live.guests``): ``g:<guest id>`` for a guest
with a signed guest cookie, ``a:<address digest>`` for one without; NULL for rows
recorded before (a guest there counts per WHEP resource) and when unknown. A signed-in
viewer is ``user_id``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("watch_intervals", sa.Column("viewer", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_intervals") as table:
        table.drop_column("viewer")
