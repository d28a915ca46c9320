"""Tables of the spine: accounts, live sessions and the transactional outbox.

Timestamps are integer milliseconds since the Unix epoch (UTC): exact, portable
between SQLite and PostgreSQL, and the same unit the room log uses.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from live.db import Base


class Role(enum.StrEnum):
    HOST = "host"
    BRAND = "brand"
    AGENCY = "agency"
    MODERATOR = "moderator"
    VIEWER = "viewer"
    ADMIN = "admin"


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: tokens issued before this moment no longer count (a logout; disabling)
    tokens_valid_from_ms: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class LiveSession(Base):
    __tablename__ = "live_sessions"
    __table_args__ = (Index("ix_live_sessions_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    scheduled_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class OutboxEvent(Base):
    """A room event committed with the change that caused it, not yet in the room log.

    The relay appends it to the room log with ``dedup_key = "outbox:<id>"`` and then
    deletes the row, so a crash anywhere in between publishes it at least once and
    the room log stores it exactly once.
    """

    __tablename__ = "outbox"
    # Never reuse an id (SQLite would reuse a deleted last row's): ids name events in
    # the room log's dedup keys.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(Integer, index=True)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class WatchInterval(Base):
    """One WHEP viewer's stretch of watching: from its transport connecting (media
    flowing to it) to its leaving, with why it left. ``left_ms`` is null while it
    watches; one a crash left open is closed when the session ends, at its end, with
    reason ``lost`` (``AudienceRecorder.close_session``)."""

    __tablename__ = "watch_intervals"
    __table_args__ = (Index("ix_watch_intervals_session_joined", "session_id", "joined_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("live_sessions.id"))
    resource_id: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: the person watching (``live.guests``: ``g:``/``a:`` for a guest; NULL in rows
    #: recorded before it was kept: such a guest counts per resource)
    viewer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    joined_ms: Mapped[int] = mapped_column(BigInteger)
    left_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AudienceSecond(Base):
    """What one process saw of one session in one second (processes add up)."""

    __tablename__ = "audience_seconds"

    session_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    second: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    process: Mapped[str] = mapped_column(String(32), primary_key=True)
    media_viewers: Mapped[int] = mapped_column(Integer)
    sockets: Mapped[int] = mapped_column(Integer)
    joins: Mapped[int] = mapped_column(Integer)
    leaves: Mapped[int] = mapped_column(Integer)
    socket_joins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    socket_leaves: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class SessionMark(Base):
    """A moment worth annotating in analytics: the publisher going live or pausing."""

    __tablename__ = "session_marks"
    __table_args__ = (Index("ix_session_marks_session_at", "session_id", "at_ms"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Follow(Base):
    """A viewer following a host, from ``created_ms`` until ``removed_ms`` (if unfollowed)."""

    __tablename__ = "follows"
    __table_args__ = (
        Index("ix_follows_host_created", "host_id", "created_ms"),
        # One open follow per (follower, host).
        Index(
            "ux_follows_open",
            "follower_id",
            "host_id",
            unique=True,
            postgresql_where=text("removed_ms IS NULL"),
            sqlite_where=text("removed_ms IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    removed_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
