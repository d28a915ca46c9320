"""Likes: taps are counted in memory and published as one ``likes.updated`` per room at
most every ``likes_interval_s``, never one event per tap.

Each tick adds the room's pending taps to its stored total (one atomic upsert, so any
number of processes can add to the same room) and publishes ``{"total", "delta"}``.
A crash loses at most the last interval's taps, which were never shown to anyone.
"""

from __future__ import annotations

import asyncio
import logging

from chat.repository import ChatRepository
from live.outages import report_failure
from live.roomlog import RoomLog
from live.tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)


class LikeCounter:
    def __init__(self, repo: ChatRepository, room_log: RoomLog, *, interval_s: float) -> None:
        self._repo = repo
        self._log = room_log
        self._interval = interval_s
        #: session -> taps since the last flush: one per room tapped meanwhile (a failed
        #: store keeps its room for the next flush)
        self._pending: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, session_id: int, taps: int) -> None:
        self._pending[session_id] = self._pending.get(session_id, 0) + taps

    async def flush(self) -> None:
        """Store and publish every room's pending taps now."""
        pending, self._pending = self._pending, {}
        for session_id, delta in pending.items():
            try:
                total = await self._repo.add_likes(session_id, delta)
            except Exception as exc:
                reraise_if_cancelling()
                report_failure(log, f"LikeCounter({id(self)}) storing likes", exc)
                self.add(session_id, delta)  # try again next tick
                continue
            try:
                await self._log.append(
                    session_id, "likes.updated", {"total": total, "delta": delta}
                )
            except Exception as exc:
                reraise_if_cancelling()
                report_failure(log, f"LikeCounter({id(self)}) publishing", exc)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="LikeCounter")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._pending:
                await self.flush()
