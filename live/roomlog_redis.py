"""Room log in Redis: a Stream per room for history, pub/sub for delivery.

``append`` runs ``lua/append.lua``: INCR seq + XADD (stream id ``<seq>-0``, trimmed to
about ``history_size``) + PUBLISH in one script, so seq, history and delivery never
disagree, whichever process appends. Each process keeps one pub/sub connection and
subscribes to the channels of the rooms it has sockets in.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from importlib import resources
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from live.events import Event, StreamPosition, check_event_type, seq_of
from live.redis_keys import room_keys, room_of_channel
from live.roomlog import Listener
from live.tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)


def load_script(name: str) -> str:
    return resources.files("live").joinpath("lua", name).read_text()


class RedisRoomLog:
    """A ``RoomLog`` shared by every process connected to the same Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "ls",
        history_size: int = 2000,
        ttl_s: int = 2 * 86400,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._history_size = history_size
        self.appended = 0
        self._ttl_s = ttl_s
        self._append = redis.register_script(load_script("append.lua"))
        self._position = redis.register_script(load_script("position.lua"))
        self._listener: Listener | None = None
        # In Redis, per room: the stream holds about ``history_size`` events (XADD
        # MAXLEN ~); the dedup hash one field per deduplicated event (the outbox's),
        # untrimmed; every key of the room expires ``ttl_s`` after its last event.
        self._pubsub: PubSub = redis.pubsub(ignore_subscribe_messages=True)
        self._subscribed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def append(
        self,
        room: int,
        type_: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
    ) -> Event:
        check_event_type(type_)
        keys = room_keys(self._prefix, room)
        raw = await self._append(
            keys=keys.log_keys,
            args=[
                keys.channel,
                type_,
                orjson.dumps(data),
                self._history_size,
                self._ttl_s,
                secrets.token_hex(4),
                dedup_key or "",
            ],
        )
        if not raw:
            # A duplicate whose first copy was trimmed away: report it without data.
            return Event(0, "", type_, 0, dict(data), b"")
        self.appended += 1  # a deduplicated re-publication counts again (rare: recovery)
        return Event.from_raw(raw)

    async def position(self, room: int) -> StreamPosition:
        keys = room_keys(self._prefix, room)
        seq, epoch = await self._position(
            keys=keys.log_keys, args=[secrets.token_hex(4), self._ttl_s]
        )
        return StreamPosition(int(seq), epoch.decode() if isinstance(epoch, bytes) else epoch)

    async def read_since(self, room: int, since: int, epoch: str) -> list[bytes] | None:
        keys = room_keys(self._prefix, room)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.epoch)
            pipe.get(keys.seq)
            pipe.xrange(keys.stream, min=f"{since + 1}-0", max="+")
            current_epoch, current_seq, entries = await pipe.execute()
        if current_epoch is None or current_epoch.decode() != epoch:
            return None
        last = int(current_seq or 0)
        if since < 0 or since > last:
            return None
        raws: list[bytes] = [fields[b"e"] for _id, fields in entries]
        if since < last and (not raws or seq_of(raws[0]) != since + 1):
            return None  # trimmed: the first missing event is gone
        return raws

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    async def watch(self, room: int) -> None:
        await self._pubsub.subscribe(room_keys(self._prefix, room).channel)
        self._subscribed.set()
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_forever(), name="RedisRoomLog.reader")

    async def unwatch(self, room: int) -> None:
        await self._pubsub.unsubscribe(room_keys(self._prefix, room).channel)

    async def close(self) -> None:
        await stop_task(self._reader)
        self._reader = None
        await self._pubsub.aclose()

    async def _read_forever(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                self._subscribed.clear()
                await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                reraise_if_cancelling()
                # redis-py re-subscribes on reconnect; the hub repairs any gap from history.
                log.warning("RedisRoomLog(%s) pub/sub connection lost: %s", id(self), exc)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            if self._listener is not None:
                try:
                    self._listener(room_of_channel(self._prefix, channel), message["data"])
                except Exception:
                    log.exception("RedisRoomLog(%s) listener failed", id(self))
