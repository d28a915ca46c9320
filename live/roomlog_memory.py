"""In-process room log: the default when no Redis is configured."""

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
    seq: int = 0
    history: deque[bytes] = field(default_factory=deque)
    dedup: dict[str, int] = field(default_factory=dict)


class MemoryRoomLog:
    """A ``RoomLog`` held in this process's memory.

    The epoch is random per instance: a restarted server has lost its history and says
    so. Appending and delivery happen in one synchronous step, which is what makes the
    append atomic here.
    """

    def __init__(self, clock: Clock, *, history_size: int = 2000, dedup_size: int = 10_000) -> None:
        self._clock = clock
        self._history_size = history_size
        self._dedup_size = dedup_size
        self._epoch = secrets.token_hex(4)
        self._rooms: dict[int, _Room] = {}
        self._watched: set[int] = set()
        self._listener: Listener | None = None

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
        state = self._rooms.setdefault(room, _Room(history=deque(maxlen=self._history_size)))
        if dedup_key is not None and dedup_key in state.dedup:
            earlier = self._find(state, state.dedup[dedup_key])
            if earlier is not None:
                return Event.from_raw(earlier)
        state.seq += 1
        ts = self._clock.now_ms()
        raw = encode_event(state.seq, self._epoch, type_, ts, data_json)
        state.history.append(raw)
        if dedup_key is not None:
            state.dedup[dedup_key] = state.seq
            if len(state.dedup) > self._dedup_size:
                state.dedup.pop(next(iter(state.dedup)))
        if self._listener is not None and room in self._watched:
            self._listener(room, raw)
        return Event(state.seq, self._epoch, type_, ts, dict(data), raw)

    async def position(self, room: int) -> StreamPosition:
        state = self._rooms.get(room)
        return StreamPosition(state.seq if state else 0, self._epoch)

    async def read_since(self, room: int, since: int, epoch: str) -> list[bytes] | None:
        state = self._rooms.get(room) or _Room()
        if epoch != self._epoch or since < 0 or since > state.seq:
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

    def _find(self, state: _Room, seq: int) -> bytes | None:
        index = len(state.history) - (state.seq - seq) - 1
        return state.history[index] if 0 <= index < len(state.history) else None
