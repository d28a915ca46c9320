"""Transactional outbox: room events committed with the change that caused them.

A service that changes money or stock writes its room events with ``Outbox.add`` in
the same database transaction, then, after commit, ``await relay.publish(rows)``:
the rows are appended to the room log at once (``dedup_key`` = the row's identity, so
a row appended twice is stored once) and queued for deletion in batches. When the
caller's request returns, its events are in the room log.

A crash between commit and publish loses nothing: the relay drains whatever is left
at start-up and every ``poll_interval_s`` (a row published but not yet deleted is
appended again and deduplicated).

``publish`` never raises: the caller's change is committed, so its answer must say so
(an order that was paid is answered 201, whatever happens to its room event). When the
room log cannot be reached (Redis down), the rows stay in the outbox; the relay is then
*behind*: later ``publish`` calls leave their rows to the poll too, so events still
reach the room in commit order, and the first drain that succeeds catches up and ends
it. One log line when it falls behind, one when it catches up. Start-up does not wait
for the room log either: ``start`` tries a drain and leaves the rest to the poll.

Deleting published rows is the relay's only work per event, and it is batched: a
publication wakes the relay, which waits ``forget_after_s`` (0.1 s) for more and then
deletes every id published so far in one transaction. In a flash sale, one
transaction per order to delete its one row (and a scan for unpublished rows) cost
more CPU than the rest of the order. A row stays in the outbox that much longer,
which costs nothing: if the process dies first, the row is appended again at start-up
and deduplicated. Only the poll (every ``poll_interval_s``, publications or not) and
start-up look for rows nobody published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.clock import Clock
from live.db import Database
from live.models import OutboxEvent
from live.outages import dependency_of
from live.roomlog import RoomLog
from live.tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenEvent:
    """An outbox row a statement of its own inserted (no ORM object): what the relay
    publishes of it."""

    id: int
    session_id: int
    type: str
    data: str
    created_ms: int


class Outbox:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def add(self, tx: AsyncSession, room: int, type_: str, data: Mapping[str, Any]) -> OutboxEvent:
        """Queue a room event inside the caller's open transaction; publish it after commit."""
        row = OutboxEvent(
            session_id=room,
            type=type_,
            data=orjson.dumps(data).decode(),
            created_ms=self._clock.now_ms(),
        )
        tx.add(row)
        return row


class OutboxRelay:
    """Publishes outbox rows and deletes them in batches (module docstring).

    Not on ``live.coalesce``: nobody waits for a deletion; it waits ``forget_after_s`` on purpose.
    """

    def __init__(
        self,
        db: Database,
        room_log: RoomLog,
        *,
        poll_interval_s: float = 1.0,
        batch_size: int = 200,
        forget_after_s: float = 0.1,
    ) -> None:
        self._db = db
        self._log = room_log
        self._poll_interval = poll_interval_s
        self._batch_size = batch_size
        self._forget_after_s = forget_after_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: ids published since the last deletion (about ``forget_after_s``' worth):
        #: emptied by every ``_forget_published``, even one that fails (a row left then
        #: is published again by the poll, deduplicated)
        self._published: list[int] = []
        #: a publication failed: the poll publishes everything (in order) until a
        #: drain succeeds
        self._behind = False

    @property
    def behind(self) -> bool:
        """Whether events wait in the outbox for the room log to be reachable again."""
        return self._behind

    async def publish(self, rows: Sequence[OutboxEvent | WrittenEvent]) -> None:
        """Append just-committed rows to the room log now; delete them later in a batch.
        Never raises: rows it cannot append are left to the poll (module doc)."""
        if not self._behind:
            try:
                for row in rows:
                    await self._append(row)
                    self._published.append(row.id)
            except Exception as exc:
                reraise_if_cancelling()
                self._fell_behind(exc)
        self._wake.set()

    async def start(self) -> None:
        try:
            await self.drain()
        except Exception as exc:
            reraise_if_cancelling()
            self._fell_behind(exc)
        self._task = asyncio.create_task(self._run(), name="OutboxRelay")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def drain(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        async with self._lock:
            while True:
                published = await self._publish_batch()
                total += published
                if published < self._batch_size:
                    break
        if self._behind:
            self._behind = False
            log.warning("OutboxRelay(%s): the room log answers again; caught up", id(self))
        return total

    def _fell_behind(self, exc: BaseException) -> None:
        if not self._behind:
            log.warning(
                "OutboxRelay(%s): room events wait in the outbox (%r); retried every %.1f s",
                id(self),
                exc,
                self._poll_interval,
            )
        self._behind = True

    async def _append(self, row: OutboxEvent | WrittenEvent) -> None:
        await self._log.append(
            row.session_id,
            row.type,
            orjson.loads(row.data),
            dedup_key=f"outbox:{row.id}:{row.created_ms}",
        )

    async def _forget_published(self) -> None:
        done, self._published = self._published, []
        for start in range(0, len(done), 500):
            async with self._db.transaction() as tx:
                chunk = done[start : start + 500]
                await tx.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(chunk)))

    async def _publish_batch(self) -> int:
        await self._forget_published()
        async with self._db.transaction() as tx:
            query = select(OutboxEvent).order_by(OutboxEvent.id).limit(self._batch_size)
            if not self._db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list(await tx.scalars(query))
            for row in rows:
                await self._append(row)
            if rows:
                await tx.execute(
                    delete(OutboxEvent).where(OutboxEvent.id.in_([r.id for r in rows]))
                )
        return len(rows)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time() + self._poll_interval
        while True:
            woken = True
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_scan - loop.time()))
            except TimeoutError:
                woken = False
            self._wake.clear()
            try:
                if woken:
                    await asyncio.sleep(self._forget_after_s)  # gather a burst's ids
                if loop.time() >= next_scan:  # however busy: publications never stop it
                    next_scan = loop.time() + self._poll_interval
                    await self.drain()
                else:
                    await self._forget_published()
            except Exception as exc:
                reraise_if_cancelling()
                if not self._behind and dependency_of(exc) is None:
                    log.exception("OutboxRelay(%s) publishing failed; retrying", id(self))
                self._fell_behind(exc)
                await asyncio.sleep(self._poll_interval)
