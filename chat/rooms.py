"""The rooms this process serves chat for: loading, refreshing and kicking.

Moderation state lives in the database; each process caches it per room. Changes made
here apply at once; changes made by another process apply here within
``state_refresh_s`` (the refresh also closes the local sockets of newly banned users).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from chat.repository import ChatRepository
from chat.state import Room
from live.clock import Clock
from live.errors import Forbidden, LiveshelfError
from live.models import SessionStatus
from live.outages import report_failure
from live.protocol import CloseCode
from live.roomhub import RoomHub
from live.settings import ChatSettings
from live.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)

#: A room without local sockets is forgotten after this long unused.
_IDLE_S = 30.0


def banned_error() -> Forbidden:
    return Forbidden("banned", "you are banned from this live session")


class ChatRooms:
    def __init__(
        self, repo: ChatRepository, hub: RoomHub, clock: Clock, config: ChatSettings
    ) -> None:
        self._repo = repo
        self._hub = hub
        self._clock = clock
        self._config = config
        #: the rooms with local sockets, and for ``_IDLE_S`` after their last use
        #: (``refresh`` forgets the others)
        self._rooms: dict[int, Room] = {}
        #: loads under way, one per room
        self._loading: dict[int, asyncio.Future[Room]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, session_id: int) -> Room:
        """The room's state, loaded once however many sockets ask at the same time."""
        room = self._rooms.get(session_id)
        if room is not None:
            room.used = time.monotonic()
            return room
        pending = self._loading.get(session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            now = self._clock.now_ms()
            room = Room(await self._repo.load_moderation(session_id, now), self._config, now)
            self._rooms[session_id] = room
            future.set_result(room)
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._loading[session_id]

    def cached(self, session_id: int) -> Room | None:
        return self._rooms.get(session_id)

    async def reload(self, session_id: int) -> None:
        """Reload one cached room now (after this process changed its moderation)."""
        room = self._rooms.get(session_id)
        if room is not None:
            room.version += 1
            room.mod = await self._repo.load_moderation(session_id, self._clock.now_ms())

    async def reload_host(self, host_id: int) -> None:
        for room in list(self._rooms.values()):
            if room.mod.host_id == host_id:
                await self.reload(room.id)

    def kick(self, session_id: int, user_id: int, error: LiveshelfError) -> int:
        """Close every local socket of ``user_id`` in the room (error, then FORBIDDEN)."""
        closed = 0
        for conn in self._hub.connections(session_id):
            if conn.user_id == user_id and not conn.closing:
                self._hub.send(conn, {"type": "error", **error.to_dict(), "ref": None})
                self._hub.close(conn, CloseCode.FORBIDDEN, error.code)
                closed += 1
        return closed

    async def on_status(self, session_id: int, status: SessionStatus) -> None:
        """``SessionService`` listener: keep the cached status current on this process."""
        room = self._rooms.get(session_id)
        if room is not None:
            room.change(status=status.value)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="ChatRooms.refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Reload every cached room, forget idle ones, close newly banned users' sockets."""
        now_mono = time.monotonic()
        for room in list(self._rooms.values()):
            if self._hub.local_sockets(room.id) == 0 and now_mono - room.used > _IDLE_S:
                del self._rooms[room.id]
                continue
            version = room.version
            now = self._clock.now_ms()
            # Pruned before the reload, so a database that is away does not stop it.
            room.message_buckets.prune(now)
            room.like_buckets.prune(now)
            window = room.mod.slow_mode_s * 1000
            room.last_post_ms = {u: t for u, t in room.last_post_ms.items() if now - t < window}
            fresh = await self._repo.load_moderation(room.id, now)
            if room.version != version:
                continue  # changed here meanwhile: the next refresh picks it up
            newly_banned = fresh.bans - room.mod.bans
            room.mod = fresh
            for user_id in newly_banned:
                self.kick(room.id, user_id, banned_error())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.state_refresh_s)
            try:
                await self.refresh()
            except Exception as exc:
                reraise_if_cancelling()
                report_failure(log, f"ChatRooms({id(self)}) refresh", exc)
