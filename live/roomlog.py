"""The room log: one ordered, gap-free event stream per live session.

Contract (both implementations):

* ``append`` assigns the next ``seq`` of the room, stores the event in the retained
  history and hands it to every listener, as one atomic step: no listener ever sees
  seq N+1 before N, and what is stored is exactly what was published.
* ``epoch`` identifies the history. It changes whenever history is lost (a new
  process for the in-memory log, a flushed or expired Redis), so a client holding
  ``(seq, epoch)`` can always tell whether ``since`` still means anything.
* ``read_since`` returns every retained event after ``since`` in order, or ``None``
  when that is impossible (other epoch, trimmed history, ``since`` in the future).
* ``dedup_key`` makes an append idempotent: a second append with the same key stores
  nothing and returns the first event (the outbox relies on it).
* Listeners are per process: ``watch(room)`` starts delivering that room's events to
  the listener set with ``set_listener``; ``unwatch`` stops it.

Implementations: ``MemoryRoomLog`` (one process) and ``RedisRoomLog`` (Streams +
pub/sub, many processes). ``create_room_log`` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from live.events import Event, StreamPosition

#: Called with (room, encoded event) for each event of a watched room, in seq order.
Listener = Callable[[int, bytes], None]


class RoomLog(Protocol):
    #: events this process appended (Redis: a deduplicated re-publication, after a
    #: crash, counts again)
    appended: int

    async def append(
        self,
        room: int,
        type_: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
    ) -> Event: ...

    async def position(self, room: int) -> StreamPosition: ...

    async def read_since(self, room: int, since: int, epoch: str) -> list[bytes] | None: ...

    def set_listener(self, listener: Listener) -> None: ...

    async def watch(self, room: int) -> None: ...

    async def unwatch(self, room: int) -> None: ...

    async def close(self) -> None: ...
