"""Transactional outbox: room events committed with the change that caused them.

A service that changes money or stock writes its room events with ``Outbox.add`` in
the same database transaction, then calls ``OutboxRelay.kick()`` after commit. The
relay appends pending rows to the room log (``dedup_key`` = the row's identity, so a
row appended twice is stored once) and deletes them. A crash between commit and
publish loses nothing: the relay drains whatever is left at start-up and every
``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.clock import Clock
from live.db import Database
from live.models import OutboxEvent
from live.roomlog import RoomLog

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def add(self, tx: AsyncSession, room: int, type_: str, data: Mapping[str, Any]) -> None:
        """Queue a room event inside the caller's open transaction."""
        tx.add(
            OutboxEvent(
                session_id=room,
                type=type_,
                data=orjson.dumps(data).decode(),
                created_ms=self._clock.now_ms(),
            )
        )


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        room_log: RoomLog,
        *,
        poll_interval_s: float = 1.0,
        batch_size: int = 200,
    ) -> None:
        self._db = db
        self._log = room_log
        self._poll_interval = poll_interval_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def kick(self) -> None:
        """Something was committed to the outbox: publish it soon."""
        self._wake.set()

    async def start(self) -> None:
        await self.drain()
        self._task = asyncio.create_task(self._run(), name="OutboxRelay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def drain(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        async with self._lock:
            while True:
                published = await self._publish_batch()
                total += published
                if published < self._batch_size:
                    return total

    async def _publish_batch(self) -> int:
        async with self._db.transaction() as tx:
            query = select(OutboxEvent).order_by(OutboxEvent.id).limit(self._batch_size)
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list(await tx.scalars(query))
            for row in rows:
                await self._log.append(
                    row.session_id,
                    row.type,
                    orjson.loads(row.data),
                    dedup_key=f"outbox:{row.id}:{row.created_ms}",
                )
            if rows:
                await tx.execute(
                    delete(OutboxEvent).where(OutboxEvent.id.in_([r.id for r in rows]))
                )
        return len(rows)

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                await self.drain()
            except Exception:
                log.exception("OutboxRelay(%s) publishing failed; retrying", id(self))
                await asyncio.sleep(self._poll_interval)
