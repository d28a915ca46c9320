"""chat: messages, room settings and likes, moderators, bans, mutes, moderation log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("deleted_ms", sa.BigInteger, nullable=True),
        sa.Column("deleted_by", sa.Integer, nullable=True),
    )
    op.create_index("ix_chat_messages_session_id_id", "chat_messages", ["session_id", "id"])
    op.create_table(
        "chat_rooms",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), primary_key=True),
        sa.Column("slow_mode_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("keywords", sa.Text, nullable=False, server_default="[]"),
        sa.Column("like_total", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "chat_moderators",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), nullable=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chat_moderators_session_id", "chat_moderators", ["session_id"])
    op.create_index("ix_chat_moderators_host_id_user_id", "chat_moderators", ["host_id", "user_id"])
    op.create_table(
        "chat_bans",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("actor_id", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "chat_mutes",
        sa.Column("session_id", sa.Integer, sa.ForeignKey("live_sessions.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=False),
    )
    op.create_table(
        "chat_moderation_actions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("host_id", sa.Integer, nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_user_id", sa.Integer, nullable=True),
        sa.Column("message_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_chat_moderation_actions_session_id", "chat_moderation_actions", ["session_id"]
    )


def downgrade() -> None:
    op.drop_table("chat_moderation_actions")
    op.drop_table("chat_mutes")
    op.drop_table("chat_bans")
    op.drop_table("chat_moderators")
    op.drop_table("chat_rooms")
    op.drop_table("chat_messages")
