"""Telling the room when a session's media goes live or pauses.

``RoomLogLifecycle`` is the ``MediaLifecycle`` that ``app.py`` hands the media
service: each call becomes one event in the session's room log, so every viewer
(and every process, with the Redis log) sees it in order with everything else.

- ``live.started`` ``{}``: the publisher's first media arrived.
- ``live.paused`` ``{"reason": ...}``: the publisher is gone; ``reason`` is a
  ``PublisherStopReason`` (``deleted``, ``ice_failed``, ``timeout``, ``ended``,
  ``shutdown``). A new publisher later appends ``live.started`` again.

It needs only ``append`` of the room log, so it takes anything shaped like it
(``media/`` imports nothing from ``shelf/`` or ``chat/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

LIVE_STARTED = "live.started"
LIVE_PAUSED = "live.paused"


class AppendsEvents(Protocol):
    """The part of ``live.roomlog.RoomLog`` this module uses."""

    async def append(
        self,
        room: int,
        type_: str,
        data: Mapping[str, Any],
        *,
        dedup_key: str | None = None,
    ) -> object: ...


class RoomLogLifecycle:
    """``MediaLifecycle`` appending ``live.started`` / ``live.paused`` to the room log."""

    def __init__(self, room_log: AppendsEvents) -> None:
        self._room_log = room_log

    async def on_publisher_started(self, session_id: int) -> None:
        await self._room_log.append(session_id, LIVE_STARTED, {})

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None:
        await self._room_log.append(session_id, LIVE_PAUSED, {"reason": reason})
