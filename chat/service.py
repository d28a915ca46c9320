"""Chat over the room channel: posting, likes, the hello snapshot, the join gate, export.

Checks on ``chat.send``, in order (each refusal is an ``error`` event and changes
nothing): signed in; session not ended; not banned; text non-empty and at most
``max_text_chars`` after cleaning; not muted; no listed keyword; per-viewer rate; slow
mode; the room's ceiling. Staff (host, moderators, admins) skip mute, keyword and slow
mode checks. Refusing a keyword match with an error (rather than showing the message
only to its author) keeps the rule visible and the room log the same for everyone.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chat.likes import LikeCounter
from chat.models import ChatMessage
from chat.repository import ChatRepository
from chat.rooms import ChatRooms, banned_error
from chat.schemas import ChatSend, Like
from chat.state import Room
from chat.text import blocked_word, clean_text
from chat.writer import ChatWriter
from live.auth import Principal
from live.clock import Clock, iso
from live.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LiveshelfError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unprocessable,
)
from live.models import SessionStatus
from live.roomchannel import RoomChannel
from live.roomhub import Connection
from live.sessions import SessionService
from live.settings import ChatSettings

CSV_COLUMNS = (
    "id",
    "sent_at",
    "user_id",
    "display_name",
    "role",
    "text",
    "deleted_at",
    "deleted_by",
)


def _csv_safe(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@dataclass
class ChatStats:
    """Messages stored and published, likes taken, refusals by error code."""

    messages: int = 0
    likes: int = 0
    refused: Counter[str] = field(default_factory=Counter)


class ChatService:
    def __init__(
        self,
        repo: ChatRepository,
        rooms: ChatRooms,
        writer: ChatWriter,
        likes: LikeCounter,
        sessions: SessionService,
        clock: Clock,
        config: ChatSettings,
    ) -> None:
        self._repo = repo
        self._rooms = rooms
        self._writer = writer
        self._likes = likes
        self._sessions = sessions
        self._clock = clock
        self._config = config
        self._channel: RoomChannel | None = None
        #: since the process started (``live.metrics``)
        self.stats = ChatStats()

    def attach(self, channel: RoomChannel) -> None:
        """Register the chat's room messages, snapshot part and join gate."""
        self._channel = channel
        channel.register("chat.send", ChatSend, self.send)
        channel.register("like", Like, self.like)
        channel.add_snapshot(self.snapshot)
        channel.add_gate(self.gate)

    # -- room channel ------------------------------------------------------------

    async def gate(self, conn: Connection) -> None:
        """Banned viewers cannot join the room."""
        if conn.user_id is not None:
            room = await self._rooms.get(conn.room)
            if conn.user_id in room.mod.bans:
                raise banned_error()

    async def send(self, conn: Connection, message: dict[str, Any]) -> None:
        try:
            await self._send(conn, message)
        except LiveshelfError as exc:
            self.stats.refused[exc.code] += 1
            raise

    async def _send(self, conn: Connection, message: dict[str, Any]) -> None:
        user_id = self._signed_in(conn, "chat")
        room = await self._participant(conn, user_id)
        text = clean_text(message["text"])
        if not text:
            raise InvalidInput("empty_message", "the message is empty")
        if len(text) > self._config.max_text_chars:
            raise TooLarge(
                "message_too_long",
                f"messages are at most {self._config.max_text_chars} characters",
            )
        now = self._clock.now_ms()
        staff = room.is_staff(user_id, conn.role)
        mod = room.mod
        if not staff:
            until = room.muted_until(user_id, now)
            if until is not None:
                raise Forbidden("muted", f"you are muted until {iso(until)}", until=iso(until))
            if blocked_word(text, mod.keywords) is not None:
                raise Unprocessable(
                    "blocked_word", "the message contains a word this room does not allow"
                )
            if mod.slow_mode_s:
                last = room.last_post_ms.get(user_id)
                if last is not None and now - last < mod.slow_mode_s * 1000:
                    wait = mod.slow_mode_s * 1000 - (now - last)
                    raise RateLimited(
                        "slow_mode",
                        f"slow mode: one message every {mod.slow_mode_s} s",
                        retry_after_ms=wait,
                    )
        bucket = room.message_buckets.get(user_id, now)
        if not bucket.take(now):
            raise RateLimited(
                "chat_rate_limited",
                "you are sending messages too fast",
                retry_after_ms=bucket.retry_after_ms(now),
            )
        if not room.room_bucket.take(now):
            raise RateLimited("room_busy", "the chat is too busy right now; try again")
        room.last_post_ms[user_id] = now
        queued = self._writer.submit(
            ChatMessage(
                session_id=conn.room,
                user_id=user_id,
                display_name=conn.display_name,
                role=room.role_of(user_id, conn.role),
                text=text,
                created_ms=now,
            )
        )
        queued.add_done_callback(partial(self._sent, conn, message.get("ref")))

    def _sent(self, conn: Connection, ref: Any, queued: asyncio.Future[dict[str, Any]]) -> None:
        """A message that could not be stored or published: tell its sender."""
        if queued.cancelled() or self._channel is None:
            return
        exc = queued.exception()
        if exc is None:
            self.stats.messages += 1
        elif isinstance(exc, LiveshelfError):
            self.stats.refused[exc.code] += 1
            self._channel.refuse(conn, exc, ref)

    async def like(self, conn: Connection, message: dict[str, Any]) -> None:
        user_id = self._signed_in(conn, "like")
        room = await self._participant(conn, user_id)
        count = int(message["count"])
        if count > self._config.max_like_count:
            raise InvalidInput(
                "too_many_likes", f"at most {self._config.max_like_count} likes per message"
            )
        now = self._clock.now_ms()
        bucket = room.like_buckets.get(user_id, now)
        if not bucket.take(now):
            raise RateLimited(
                "like_rate_limited",
                "you are sending likes too fast; add taps up in one message",
                retry_after_ms=bucket.retry_after_ms(now),
            )
        self._likes.add(conn.room, count)
        self.stats.likes += count

    async def snapshot(self, session_id: int) -> dict[str, Any]:
        """The ``chat`` and ``likes`` parts of ``hello``: as of a database read that started
        after this call, so nothing published before it is missing.

        Reads are coalesced per room: callers arriving while read k runs all share read
        k+1, so a crowd joining at once costs a few queries, not one each.
        """
        room = await self._rooms.get(session_id)
        wanted = room.snapshot_started + 1
        async with room.snapshot_lock:
            if room.snapshot_done < wanted:
                room.snapshot_started += 1
                started = room.snapshot_started
                slow_mode_s = room.mod.slow_mode_s
                messages, likes = await self._repo.recent(
                    session_id, self._config.snapshot_messages
                )
                room.snapshot = {
                    "chat": {"messages": messages, "slow_mode_s": slow_mode_s},
                    "likes": {"total": likes},
                }
                room.snapshot_done = started
            return room.snapshot

    # -- other features ------------------------------------------------------------

    async def check_not_banned(self, session_id: int, user_id: int) -> None:
        """Raise ``Forbidden("banned")`` if ``user_id`` is banned from the session (for
        features such as buying to call through ``app.py``'s wiring)."""
        room = await self._rooms.get(session_id)
        if user_id in room.mod.bans:
            raise banned_error()

    # -- export --------------------------------------------------------------------

    async def export_csv(self, principal: Principal, session_id: int) -> AsyncIterator[bytes]:
        """Every message of the session (deleted ones marked) as CSV; its host or an admin."""
        await self._sessions.owned(principal, session_id)
        return self._csv_chunks(session_id)

    async def _csv_chunks(self, session_id: int) -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async for rows in self._repo.export(session_id):
            for row in rows:
                writer.writerow(
                    (
                        row.id,
                        iso(row.created_ms),
                        row.user_id,
                        _csv_safe(row.display_name),
                        row.role,
                        _csv_safe(row.text),
                        iso(row.deleted_ms) or "",
                        row.deleted_by or "",
                    )
                )
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            await asyncio.sleep(0)
        rest = buffer.getvalue()
        if rest:
            yield rest.encode()

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _signed_in(conn: Connection, what: str) -> int:
        if conn.user_id is None:
            raise Unauthenticated("sign_in_required", f"sign in to {what}")
        return conn.user_id

    async def _participant(self, conn: Connection, user_id: int) -> Room:
        room = await self._rooms.get(conn.room)
        if user_id in room.mod.bans:
            self._rooms.kick(conn.room, user_id, banned_error())
            raise banned_error()
        if room.mod.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the live session has ended")
        return room
