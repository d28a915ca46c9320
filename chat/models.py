"""Tables of the chat: messages, per-room settings and like totals, moderation.

Timestamps are integer milliseconds (``live.clock``), as everywhere else.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class ChatMessage(Base):
    """Every message ever accepted, also the ones deleted by a moderator."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_id_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # role in the room when sent
    text: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    deleted_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deleted_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ChatRoom(Base):
    """A session's chat settings and like total (a row exists once one was set)."""

    __tablename__ = "chat_rooms"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    slow_mode_s: Mapped[int] = mapped_column(Integer, default=0)
    keywords: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, casefolded
    like_total: Mapped[int] = mapped_column(BigInteger, default=0)


class ChatModerator(Base):
    """A user appointed by a host: for one session, or (``session_id`` NULL) for all."""

    __tablename__ = "chat_moderators"
    __table_args__ = (Index("ix_chat_moderators_host_id_user_id", "host_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("live_sessions.id"), nullable=True, index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ChatBan(Base):
    __tablename__ = "chat_bans"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    actor_id: Mapped[int] = mapped_column(Integer)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class ChatMute(Base):
    __tablename__ = "chat_mutes"

    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    until_ms: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[int] = mapped_column(Integer)


class ModerationAction(Base):
    """Who did what: one row per moderation action, written with the change itself."""

    __tablename__ = "chat_moderation_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    host_id: Mapped[int] = mapped_column(Integer)
    actor_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    target_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    created_ms: Mapped[int] = mapped_column(BigInteger)
