"""The room channel service: opening a socket (hello + snapshot or replay), reading
client messages and dispatching them to the commands features register.

Transport-free: ``live.roomupgrade`` does the WebSocket upgrade and hands over a
``Connection``; features (chat, shelf, analytics) register commands and snapshot
parts here instead of being imported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel

from live.clock import Clock
from live.coalesce import SingleFlight
from live.errors import InvalidInput, LiveshelfError, RateLimited, TooLarge
from live.events import StreamPosition
from live.limits import Bucket
from live.presence import Presence
from live.protocol import MAX_CLIENT_MESSAGE_BYTES, CloseCode
from live.roomhub import Command, Connection, RoomHub
from live.roomlog import RoomLog
from live.schemas import ClientMessage
from live.validation import validate

log = logging.getLogger(__name__)

#: A part of the hello snapshot: room id -> {key: value, ...}.
SnapshotProvider = Callable[[int], Awaitable[dict[str, Any]]]
#: Asked before a socket joins its room; raises a ``LiveshelfError`` to refuse it.
JoinGate = Callable[[Connection], Awaitable[None]]
#: snapshots cached before the stale ones are dropped: the cache holds at most this
#: many rooms, or the rooms whose snapshot was built within ``snapshot_ttl_s`` if more
SNAPSHOT_CACHE_PRUNE_AT = 64


class RoomChannel:
    def __init__(
        self,
        hub: RoomHub,
        room_log: RoomLog,
        presence: Presence,
        clock: Clock,
        *,
        message_rate: float = 20.0,
        message_burst: float = 40.0,
        max_errors: int = 100,
        snapshot_ttl_s: float = 1.0,
        max_replay_bytes: int = 128 * 1024,
    ) -> None:
        self._hub = hub
        self._log = room_log
        self._presence = presence
        self._clock = clock
        self._commands: dict[str, tuple[type[BaseModel] | None, Command]] = {}
        self._snapshots: list[SnapshotProvider] = []
        self._gates: list[JoinGate] = []
        self._message_rate = message_rate
        self._message_burst = message_burst
        self._max_errors = max_errors
        #: one per open socket that sent a message, removed when it closes (``close``)
        self._buckets: dict[str, Bucket] = {}
        self._snapshot_ttl = snapshot_ttl_s
        self._max_replay_bytes = max_replay_bytes
        #: room -> its last snapshot: past ``SNAPSHOT_CACHE_PRUNE_AT`` rooms, those built
        #: more than ``snapshot_ttl_s`` ago (never served again) are dropped
        self._snapshot_cache: dict[int, tuple[StreamPosition, float, bytes]] = {}
        self._snapshot_flight: SingleFlight[bytes] = SingleFlight()
        self.register("ping", None, self._ping)

    def register(self, type_: str, schema: type[BaseModel] | None, command: Command) -> None:
        """Route client messages of ``type_`` (validated against ``schema``) to ``command``."""
        if type_ in self._commands:
            raise ValueError(f"command {type_!r} registered twice")
        self._commands[type_] = (schema, command)

    def add_snapshot(self, provider: SnapshotProvider) -> None:
        self._snapshots.append(provider)

    def add_gate(self, gate: JoinGate) -> None:
        """Refuse sockets at join time (e.g. banned viewers): ``error`` + close FORBIDDEN."""
        self._gates.append(gate)

    async def snapshot(self, room: int) -> dict[str, Any]:
        parts = await asyncio.gather(*(provider(room) for provider in self._snapshots))
        merged: dict[str, Any] = {"viewers": await self._presence.count(room)}
        for part in parts:
            merged.update(part)
        return merged

    async def _cached_snapshot(self, room: int, position: StreamPosition) -> bytes:
        """The room's snapshot as JSON, rebuilt when the log moved or it is older than the TTL.

        Sharing one snapshot among the sockets that join at the same position is what
        keeps a crowd joining at once from turning into a query per viewer. It is
        correct because a snapshot built after reading ``position`` shows at least
        that state, and the events after ``position`` follow the hello.
        """
        cached = self._snapshot_cache.get(room)
        if (
            cached is not None
            and cached[0] == position
            and time.monotonic() - cached[1] < self._snapshot_ttl
        ):
            return cached[2]

        async def build() -> bytes:
            started = time.monotonic()
            snapshot = orjson.dumps(await self.snapshot(room))
            if len(self._snapshot_cache) >= SNAPSHOT_CACHE_PRUNE_AT:
                self._drop_stale_snapshots(time.monotonic())
            self._snapshot_cache[room] = (position, started, snapshot)
            return snapshot

        return await self._snapshot_flight.do((room, position), build)

    def _drop_stale_snapshots(self, now: float) -> None:
        ttl, cache = self._snapshot_ttl, self._snapshot_cache
        for room in [r for r, (_, built, _) in cache.items() if now - built >= ttl]:
            del cache[room]

    async def open(self, conn: Connection, since: int | None, epoch: str | None) -> bool:
        """Join the room and send ``hello`` plus whatever the client missed."""
        try:
            for gate in self._gates:
                await gate(conn)
        except LiveshelfError as exc:
            self._hub.send(conn, {"type": "error", **exc.to_dict(), "ref": None})
            self._hub.close(conn, CloseCode.FORBIDDEN, exc.code)
            return False
        await self._hub.join(conn)
        replay = None
        if since is not None and epoch:
            replay = await self._log.read_since(conn.room, since, epoch)
            if replay is not None and sum(map(len, replay)) > self._max_replay_bytes:
                # More than the socket's send bound could hold: replaying would close it
                # as a slow consumer at once, and again on every retry. A snapshot is
                # smaller and equivalent.
                replay = None
        hello: dict[str, Any] = {
            "type": "hello",
            "server_time": self._clock.now_ms(),
            "connection": {
                "id": conn.id,
                "user_id": conn.user_id,
                "role": conn.role,
                "display_name": conn.display_name,
            },
        }
        if replay is not None:
            assert since is not None and epoch is not None
            hello.update(seq=since, epoch=epoch, recovered=True, snapshot=None)
            self._hub.send(conn, hello)
            for raw in replay:
                self._hub.send_raw(conn, raw)
            after = since + len(replay)
        else:
            position = await self._log.position(conn.room)
            snapshot = await self._cached_snapshot(conn.room, position)
            hello.update(seq=position.seq, epoch=position.epoch, recovered=False)
            # {"type": "hello", ..., "snapshot": <cached JSON>}: serialised once per room state
            self._hub.send_raw(conn, orjson.dumps(hello)[:-1] + b',"snapshot":' + snapshot + b"}")
            after = position.seq
        return await self._hub.attach(conn, after)

    async def receive(self, conn: Connection, text: str) -> None:
        """Handle one client text message; a refusal becomes an ``error`` event."""
        ref: Any = None
        try:
            if len(text) > MAX_CLIENT_MESSAGE_BYTES:
                raise TooLarge(
                    "message_too_large", f"messages are at most {MAX_CLIENT_MESSAGE_BYTES} bytes"
                )
            if not self._bucket(conn).take(self._clock.now_ms()):
                raise RateLimited("rate_limited", "slow down: too many messages")
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput("invalid_json", "messages are JSON objects") from exc
            if isinstance(data, dict):
                ref = data.get("ref") if isinstance(data.get("ref"), str | int) else None
            # Parsed once above; both checks below validate the parsed object.
            envelope = validate(ClientMessage, data)
            entry = self._commands.get(envelope.type)
            if entry is None:
                raise InvalidInput("unknown_type", f"unknown message type {envelope.type!r}")
            schema, command = entry
            payload = data if schema is None else validate(schema, data).model_dump()
            await command(conn, payload)
        except LiveshelfError as exc:
            self.refuse(conn, exc, ref)

    def refuse(self, conn: Connection, exc: LiveshelfError, ref: Any = None) -> None:
        conn.errors += 1
        self._hub.send(conn, {"type": "error", **exc.to_dict(), "ref": ref})
        if conn.errors >= self._max_errors:
            self._hub.close(conn, CloseCode.TOO_MANY_ERRORS, "too many refused messages")

    async def close(self, conn: Connection) -> None:
        self._buckets.pop(conn.id, None)
        await self._hub.leave(conn)

    def _bucket(self, conn: Connection) -> Bucket:
        bucket = self._buckets.get(conn.id)
        if bucket is None:
            bucket = Bucket(self._message_rate, self._message_burst, self._clock.now_ms())
            self._buckets[conn.id] = bucket
        return bucket

    async def _ping(self, conn: Connection, message: dict[str, Any]) -> None:
        self._hub.send(
            conn, {"type": "pong", "ref": message.get("ref"), "server_time": self._clock.now_ms()}
        )
