"""audience, watch intervals, session marks, follows and product-card events

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_intervals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("joined_ms", sa.BigInteger, nullable=False),
        sa.Column("left_ms", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
    )
    op.create_index(
        "ix_watch_intervals_session_joined", "watch_intervals", ["session_id", "joined_ms"]
    )
    op.create_index("ix_watch_intervals_user_id", "watch_intervals", ["user_id"])
    op.create_table(
        "audience_seconds",
        sa.Column("session_id", sa.Integer, primary_key=True),
        sa.Column("second", sa.BigInteger, primary_key=True),
        sa.Column("process", sa.String(32), primary_key=True),
        sa.Column("media_viewers", sa.Integer, nullable=False),
        sa.Column("sockets", sa.Integer, nullable=False),
        sa.Column("joins", sa.Integer, nullable=False),
        sa.Column("leaves", sa.Integer, nullable=False),
    )
    op.create_table(
        "session_marks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(64), nullable=True),
    )
    op.create_index("ix_session_marks_session_at", "session_marks", ["session_id", "at_ms"])
    op.create_table(
        "follows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("follower_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("removed_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_follows_host_created", "follows", ["host_id", "created_ms"])
    op.create_table(
        "card_events",
        sa.Column("pin_id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("viewer", sa.String(48), primary_key=True),
        sa.Column("session_id", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_card_events_session_id", "card_events", ["session_id"])


def downgrade() -> None:
    for table in ("card_events", "follows", "session_marks", "audience_seconds", "watch_intervals"):
        op.drop_table(table)
