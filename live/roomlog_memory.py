"""In-process room log: the default when no Redis is configured.

Bounded like the Redis twin's keys: a room keeps at most ``history_size`` events (the
oldest dropped first, as ``XADD MAXLEN`` trims the stream) and ``dedup_size`` dedup
keys (the oldest dropped first), and a room with no event for ``ttl_s`` (2 days, the
Redis keys' expiry) is forgotten when the next room starts. So the log holds at most
the rooms with an event in the last ``ttl_s``, each within those two caps.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from live.clock import Clock
from live.events import Event, StreamPosition, check_event_type, encode_event
from live.roomlog import Listener


@dataclass
class _Room:
    #: random per room history: a forgotten room that starts again gets a new one
    epoch: str
    #: at most ``history_size`` events; appending drops the oldest
    history: deque[bytes]
    #: when the last event was appended (or the room started), for ``ttl_s``
    last_ms: int
    seq: int = 0
    #: dedup key -> seq, at most ``dedup_size``; the oldest key is dropped first
    dedup: dict[str, int] = field(default_factory=dict)


class MemoryRoomLog:
    """A ``RoomLog`` held in this process's memory.

    The epoch is random per room history: a restarted server, or a room forgotten
    after ``ttl_s`` without an event, has lost its history and says so. Appending and
    delivery happen in one synchronous step, which is what makes the append atomic here.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        history_size: int = 2000,
        dedup_size: int = 10_000,
        ttl_s: int = 2 * 86400,
    ) -> None:
        self._clock = clock
        self._history_size = history_size
        self._dedup_size = dedup_size
        self._ttl_ms = ttl_s * 1000
        #: the rooms with an event in the last ``ttl_s`` (idle ones go in ``_start``)
        self._rooms: dict[int, _Room] = {}
        #: rooms with a local socket (``watch`` until ``unwatch``)
        self._watched: set[int] = set()
        self._listener: Listener | None = None
        self.appended = 0

    async def append(
        self,
        room: int,
        type_: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
    ) -> Event:
        check_event_type(type_)
        data_json = orjson.dumps(data)
        state = self._rooms.get(room) or self._start(room)
        if dedup_key is not None and dedup_key in state.dedup:
            earlier = self._find(state, state.dedup[dedup_key])
            if earlier is None:
                # A duplicate whose first copy was trimmed away: stored once, as in Redis.
                return Event(0, "", type_, 0, dict(data), b"")
            return Event.from_raw(earlier)
        state.seq += 1
        self.appended += 1
        ts = state.last_ms = self._clock.now_ms()
        raw = encode_event(state.seq, state.epoch, type_, ts, data_json)
        state.history.append(raw)
        if dedup_key is not None:
            state.dedup[dedup_key] = state.seq
            if len(state.dedup) > self._dedup_size:
                state.dedup.pop(next(iter(state.dedup)))
        if self._listener is not None and room in self._watched:
            self._listener(room, raw)
        return Event(state.seq, state.epoch, type_, ts, dict(data), raw)

    async def position(self, room: int) -> StreamPosition:
        state = self._rooms.get(room) or self._start(room)
        return StreamPosition(state.seq, state.epoch)

    async def read_since(self, room: int, since: int, epoch: str) -> list[bytes] | None:
        state = self._rooms.get(room)
        if state is None or epoch != state.epoch or since < 0 or since > state.seq:
            return None
        missing = state.seq - since
        if missing > len(state.history):
            return None
        return list(state.history)[len(state.history) - missing :] if missing else []

    def set_listener(self, listener: Listener) -> None:
        self._listener = listener

    async def watch(self, room: int) -> None:
        self._watched.add(room)

    async def unwatch(self, room: int) -> None:
        self._watched.discard(room)

    async def close(self) -> None:
        self._watched.clear()

    def _start(self, room: int) -> _Room:
        """A new history for ``room``; first forget the rooms idle for ``ttl_s``."""
        now = self._clock.now_ms()
        for idle in [r for r, s in self._rooms.items() if now - s.last_ms >= self._ttl_ms]:
            del self._rooms[idle]
        state = self._rooms[room] = _Room(
            secrets.token_hex(4), deque(maxlen=self._history_size), now
        )
        return state

    def _find(self, state: _Room, seq: int) -> bytes | None:
        index = len(state.history) - (state.seq - seq) - 1
        return state.history[index] if 0 <= index < len(state.history) else None
