"""The per-user channel: one ordered, resumable, bounded event stream per account.

Notifications (a brand's proposal, a counter-offer, a decision) reach the account
they are for on every page it has open, live, from any worker. It is the room log
again (``live.roomlog``: ``seq`` gap-free per stream, ``epoch`` naming the history,
``read_since`` for what a client missed, ``MAXLEN``-bounded history, keys that
expire after two days), keyed by user id instead of session id, in a key space of its
own: ``<prefix>:user:{r<user id>}:...`` in Redis (Streams + pub/sub, so any worker
serves any account's stream), a second in-memory log otherwise.

``UserEvents.publish`` appends an event to each account's stream. ``subscribe`` hands
this process's events of one account to a ``Subscription`` (a bounded queue: one that
falls more than ``queue_size`` events behind is marked ``lagging`` and catches up from
the history, like a room socket that skipped a pub/sub message). The stream of events
itself (``GET /api/me/events``, Server-Sent Events) is ``live.user_events_handlers``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from live.clock import Clock
from live.events import StreamPosition
from live.roomlog import RoomLog
from live.roomlog_memory import MemoryRoomLog
from live.roomlog_redis import RedisRoomLog

log = logging.getLogger(__name__)

#: events kept per account for resuming (a notification stream is sparse)
HISTORY_SIZE = 500
#: events one subscription holds before it is marked lagging
QUEUE_SIZE = 256


def create_user_log(
    redis: Redis | None, clock: Clock, *, prefix: str, history_size: int = HISTORY_SIZE
) -> RoomLog:
    """The per-user log: in Redis under ``<prefix>:user`` when there is one, else in
    this process's memory."""
    if redis is not None:
        return RedisRoomLog(redis, prefix=f"{prefix}:user", history_size=history_size)
    return MemoryRoomLog(clock, history_size=history_size)


@dataclass(eq=False)
class Subscription:
    """This process's events of one account for one open stream, in arrival order."""

    user_id: int
    queue: deque[bytes] = field(default_factory=deque)
    #: set when an event arrives or the subscription ends
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: more than ``QUEUE_SIZE`` arrived unread: what was dropped comes from the history
    lagging: bool = False
    closed: bool = False

    def take(self) -> list[bytes]:
        """Everything queued, oldest first; clears the wake-up."""
        items = list(self.queue)
        self.queue.clear()
        self.wake.clear()
        return items


class UserEvents:
    """Publishing to accounts' streams and following them in this process."""

    def __init__(self, user_log: RoomLog, *, queue_size: int = QUEUE_SIZE) -> None:
        self._log = user_log
        self._queue_size = queue_size
        #: account -> its open subscriptions here
        self._subscribers: dict[int, set[Subscription]] = {}
        self._closed = False
        user_log.set_listener(self._deliver)

    @property
    def log(self) -> RoomLog:
        return self._log

    async def publish(self, user_ids: Iterable[int], type_: str, data: Mapping[str, Any]) -> None:
        """Append ``type_``/``data`` to the stream of each of ``user_ids`` (once each)."""
        for user_id in dict.fromkeys(user_ids):
            await self._log.append(user_id, type_, data)

    async def subscribe(self, user_id: int) -> Subscription:
        """Start following ``user_id``'s events here; ``unsubscribe`` when done."""
        sub = Subscription(user_id)
        subs = self._subscribers.setdefault(user_id, set())
        subs.add(sub)
        if len(subs) == 1:
            try:
                await self._log.watch(user_id)
            except BaseException:
                await self.unsubscribe(sub)
                raise
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        sub.wake.set()
        subs = self._subscribers.get(sub.user_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.user_id]
            try:
                await self._log.unwatch(sub.user_id)
            except Exception as exc:  # Redis down: the channel goes with the connection
                log.warning("user events: could not stop following %s: %s", sub.user_id, exc)

    async def position(self, user_id: int) -> StreamPosition:
        return await self._log.position(user_id)

    async def read_since(self, user_id: int, since: int, epoch: str) -> list[bytes] | None:
        return await self._log.read_since(user_id, since, epoch)

    def end_all(self) -> None:
        """End every open subscription here (the server is stopping): their streams
        close and the clients resume elsewhere."""
        self._closed = True
        for subs in list(self._subscribers.values()):
            for sub in subs:
                sub.closed = True
                sub.wake.set()

    @property
    def closing(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self.end_all()
        self._subscribers.clear()
        await self._log.close()

    def _deliver(self, user_id: int, raw: bytes) -> None:
        for sub in self._subscribers.get(user_id, ()):
            if len(sub.queue) >= self._queue_size:
                sub.queue.clear()
                sub.lagging = True
            else:
                sub.queue.append(raw)
            sub.wake.set()
