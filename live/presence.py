"""Who is in a room, and the viewer count published from it.

A member is a person (``live.guests``), never a socket: ``"u:<user id>"`` for a
signed-in account (all its tabs and devices count once), ``"g:<guest id>"`` for a guest
with a valid signed guest cookie, ``"a:<address digest>"`` for a guest without one (a
flood of cookie-less sockets from one address is one viewer). The host is no member.

The hub (``live.roomhub.RoomHub``) counts its own sockets per member and calls ``join``
for a member's first socket in the process and ``leave`` for its last, so both twins
see each member once per process, and ``forget`` when its last socket of the room has
gone (what this process kept for the room goes with it). ``tick`` is called about once
a second per room with local sockets; it returns the count to publish, or ``None`` when
the count is unchanged or another process publishes it this interval. That is what bounds viewer
count events to one a second per room, however many people join.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis

from live.clock import Clock
from live.redis_keys import room_keys
from live.roomlog_redis import load_script


class Presence(Protocol):
    async def join(self, room: int, member: str) -> None:
        """``member`` is in ``room`` (the hub calls it for the member's first local socket)."""

    async def leave(self, room: int, member: str) -> None:
        """``member`` left ``room`` (the hub calls it when its last local socket closed)."""

    async def refresh(self, room: int, members: Iterable[str]) -> None:
        """The members this process holds in ``room`` are still there."""

    async def tick(self, room: int) -> int | None: ...

    async def count(self, room: int) -> int: ...

    async def forget(self, room: int) -> None:
        """This process holds no socket of ``room`` any more (the hub stopped ticking it):
        drop what it kept in memory for the room."""


class MemoryPresence:
    def __init__(self) -> None:
        #: room -> member -> the hub's joins: a member until its last leave, a room
        #: until its last member's
        self._members: dict[int, Counter[str]] = {}
        #: room -> the count last published: one per room the hub ticks, dropped by
        #: ``forget`` when the hub lets the room go
        self._published: dict[int, int] = {}

    async def join(self, room: int, member: str) -> None:
        self._members.setdefault(room, Counter())[member] += 1

    async def leave(self, room: int, member: str) -> None:
        members = self._members.get(room)
        if members is None:
            return
        members[member] -= 1
        if members[member] <= 0:
            del members[member]
        if not members:
            del self._members[room]

    async def refresh(self, room: int, members: Iterable[str]) -> None:
        return None

    async def count(self, room: int) -> int:
        return len(self._members.get(room, ()))

    async def tick(self, room: int) -> int | None:
        count = len(self._members.get(room, ()))
        if self._published.get(room) == count:
            return None
        self._published[room] = count
        return count

    async def forget(self, room: int) -> None:
        self._published.pop(room, None)


class RedisPresence:
    """Members in a sorted set per room scored by last-seen time; stale ones expire.

    Each process adds its members on join, removes them on leave and re-adds all of
    them every ``refresh`` (well inside ``member_ttl_ms``), so a crashed process's
    members fall out by themselves. A member connected through two processes (a user,
    or one guest's or one address's sockets) who leaves one is missing from the count
    until the other's next refresh.
    """

    def __init__(
        self,
        redis: Redis,
        clock: Clock,
        *,
        prefix: str = "ls",
        member_ttl_ms: int = 30_000,
        interval_ms: int = 1000,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._prefix = prefix
        self._member_ttl_ms = member_ttl_ms
        self._interval_ms = interval_ms
        self._token = secrets.token_hex(4)
        self._tick = redis.register_script(load_script("presence_tick.lua"))

    async def join(self, room: int, member: str) -> None:
        await self._redis.zadd(
            room_keys(self._prefix, room).presence, {member: self._clock.now_ms()}
        )

    async def leave(self, room: int, member: str) -> None:
        await self._redis.zrem(room_keys(self._prefix, room).presence, member)

    async def refresh(self, room: int, members: Iterable[str]) -> None:
        now = self._clock.now_ms()
        mapping = {member: now for member in members}
        if mapping:
            await self._redis.zadd(room_keys(self._prefix, room).presence, mapping)

    async def count(self, room: int) -> int:
        oldest = self._clock.now_ms() - self._member_ttl_ms
        return int(await self._redis.zcount(room_keys(self._prefix, room).presence, oldest, "+inf"))

    async def tick(self, room: int) -> int | None:
        keys = room_keys(self._prefix, room)
        count = await self._tick(
            keys=[keys.presence, keys.presence_tick, keys.presence_last],
            args=[self._clock.now_ms(), self._member_ttl_ms, self._interval_ms, self._token],
        )
        return None if int(count) < 0 else int(count)

    async def forget(self, room: int) -> None:
        return None  # this twin keeps nothing for a room in this process
