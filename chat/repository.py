"""Database reads and writes of the chat that more than one service needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from sqlalchemy import BigInteger, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chat.models import ChatBan, ChatMessage, ChatModerator, ChatMute, ChatRoom, ModerationAction
from chat.state import Moderation
from live.clock import iso
from live.db import Database, once_per_dialect, upsert
from live.errors import NotFound
from live.models import LiveSession
from live.paging import Listing, Page


def message_view(row: ChatMessage) -> dict[str, Any]:
    """A message as clients see it (in ``chat.message``, ``chat.batch`` and snapshots)."""
    return {
        "id": row.id,
        "text": row.text,
        "ts": row.created_ms,
        "user": {"id": row.user_id, "display_name": row.display_name, "role": row.role},
    }


def _build_add_likes(tx: AsyncSession | AsyncConnection) -> Any:
    """The room's like total plus ``delta`` (its row made if missing); the new total."""
    delta = bindparam("delta", type_=BigInteger())
    return (
        upsert(tx, ChatRoom)
        .values(session_id=bindparam("room"), slow_mode_s=0, keywords="[]", like_total=delta)
        .on_conflict_do_update(
            index_elements=[ChatRoom.session_id], set_={"like_total": ChatRoom.like_total + delta}
        )
        .returning(ChatRoom.like_total)
    )


#: likes are added several times a second through a whole show: built once, values
#: bound per call (``live.db.once_per_dialect``)
_add_likes = once_per_dialect(_build_add_likes)


class ChatRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def db(self) -> Database:
        return self._db

    async def load_moderation(self, session_id: int, now_ms: int) -> Moderation:
        async with self._db.read() as s:
            session = await s.get(LiveSession, session_id)
            if session is None:
                raise NotFound("session_not_found", f"no live session {session_id}")
            moderators = await s.scalars(
                select(ChatModerator.user_id).where(
                    ChatModerator.host_id == session.host_id,
                    or_(ChatModerator.session_id == session_id, ChatModerator.session_id.is_(None)),
                )
            )
            bans = await s.scalars(select(ChatBan.user_id).where(ChatBan.session_id == session_id))
            mutes = await s.execute(
                select(ChatMute.user_id, ChatMute.until_ms).where(
                    ChatMute.session_id == session_id, ChatMute.until_ms > now_ms
                )
            )
            room = await s.get(ChatRoom, session_id)
        return Moderation(
            session_id=session_id,
            host_id=session.host_id,
            status=session.status,
            moderators=frozenset(moderators),
            bans=frozenset(bans),
            mutes={user: until for user, until in mutes.all()},
            slow_mode_s=room.slow_mode_s if room else 0,
            keywords=tuple(orjson.loads(room.keywords)) if room else (),
        )

    async def recent(self, session_id: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The last ``limit`` visible messages (oldest first) and the like total."""
        async with self._db.read() as s:
            rows = list(
                await s.scalars(
                    select(ChatMessage)
                    .where(ChatMessage.session_id == session_id, ChatMessage.deleted_ms.is_(None))
                    .order_by(ChatMessage.id.desc())
                    .limit(limit)
                )
            )
            likes = await s.scalar(
                select(ChatRoom.like_total).where(ChatRoom.session_id == session_id)
            )
        return [message_view(row) for row in reversed(rows)], int(likes or 0)

    async def add_likes(self, session_id: int, delta: int) -> int:
        """Add ``delta`` to the session's like total atomically; the new total."""
        async with self._db.transaction() as tx:
            total = await tx.scalar(_add_likes(tx), {"room": session_id, "delta": delta})
        return int(total or 0)

    async def room_row(self, tx: AsyncSession, session_id: int) -> ChatRoom:
        """The session's ``chat_rooms`` row inside ``tx``, created if missing."""
        room = await tx.get(ChatRoom, session_id)
        if room is None:
            room = ChatRoom(session_id=session_id, slow_mode_s=0, keywords="[]", like_total=0)
            tx.add(room)
            await tx.flush()
        return room

    async def export(
        self, session_id: int, chunk: int = 2000
    ) -> AsyncIterator[Sequence[ChatMessage]]:
        """Every message of the session in order, ``chunk`` rows at a time."""
        after = 0
        while True:
            async with self._db.read() as s:
                rows = list(
                    await s.scalars(
                        select(ChatMessage)
                        .where(ChatMessage.session_id == session_id, ChatMessage.id > after)
                        .order_by(ChatMessage.id)
                        .limit(chunk)
                    )
                )
            if not rows:
                return
            yield rows
            after = rows[-1].id

    async def actions(self, session_id: int, host_id: int, page: Page) -> Listing[dict[str, Any]]:
        """A page of the moderation log of a session, newest first (host-wide
        appointments included)."""
        query = select(ModerationAction).where(
            or_(
                ModerationAction.session_id == session_id,
                (ModerationAction.session_id.is_(None)) & (ModerationAction.host_id == host_id),
            )
        )
        async with self._db.read() as s:
            rows = list(await s.scalars(page.select(query, ModerationAction.id)))
        return page.cut(rows, lambda row: row.id, _action_dict)


def _action_dict(row: ModerationAction) -> dict[str, Any]:
    return {
        "id": row.id,
        "session_id": row.session_id,
        "actor_id": row.actor_id,
        "action": row.action,
        "target_user_id": row.target_user_id,
        "message_id": row.message_id,
        "detail": orjson.loads(row.detail),
        "at": iso(row.created_ms),
    }
