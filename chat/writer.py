"""The chat writer: stores accepted messages in batches, then publishes them.

Order of work, and what a crash does:

1. ``submit`` queues a message; the sender hears back only if it fails.
2. The writer task takes everything queued, inserts it in one transaction (group
   commit: one commit however many messages arrived meanwhile), then appends the
   messages to their rooms' logs and answers the waiting senders.

A message is published only after it is committed, so every message anyone saw is in
the database (and in the CSV export). A crash before the commit loses queued messages
whose senders never saw them delivered (no ``chat.message``, the socket dropped); a
crash between commit and publish leaves committed messages that were never broadcast
live, but are in the snapshot and the export.

Delivery mode per room: while a room accepted more than ``batch_threshold_per_s``
messages in the last second (and until it falls below half of that), its messages
leave as one ``chat.batch`` event every ``batch_interval_s``, so each viewer gets a
bounded number of frames a second; otherwise each message is its own
``chat.message`` event as soon as it is committed. Either way they are room-log
events in commit order, so seq, replay and ordering hold across the switch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from chat.models import ChatMessage
from chat.repository import message_view
from live.db import Database
from live.errors import Unavailable
from live.outages import report_failure
from live.roomlog import RoomLog
from live.settings import ChatSettings
from live.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)


class ChatUnavailable(Unavailable):
    """The chat cannot store or deliver right now (the database or the room log is
    down, or the chat is stopping): a 503 kind, with the room channel's ``error``."""

    default_code = "chat_unavailable"


@dataclass(slots=True)
class _Queued:
    row: ChatMessage
    done: asyncio.Future[dict[str, Any]]


@dataclass(slots=True)
class _RoomQueue:
    #: messages waiting for the next commit: what the room's rate (``Room.room_bucket``)
    #: lets in while one commit runs, or one ``batch_interval_s``
    queued: list[_Queued] = field(default_factory=list)
    #: monotonic times of the submits in the last second (older ones dropped)
    recent: deque[float] = field(default_factory=deque)
    batching: bool = False
    next_flush: float = 0.0


class ChatWriter:
    """Stores accepted messages in batches, then publishes them (module docstring).

    Not on ``live.coalesce``: ``submit`` must not wait, and batching rooms flush on a timer.
    """

    def __init__(self, db: Database, room_log: RoomLog, config: ChatSettings) -> None:
        self._db = db
        self._log = room_log
        self._threshold = config.batch_threshold_per_s
        self._interval = config.batch_interval_s
        #: one per room with a message queued or submitted in the last second; an idle
        #: one is dropped (``_take_due``)
        self._rooms: dict[int, _RoomQueue] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = True

    def batching(self, session_id: int) -> bool:
        queue = self._rooms.get(session_id)
        return queue is not None and queue.batching

    def submit(self, row: ChatMessage) -> asyncio.Future[dict[str, Any]]:
        """Queue ``row`` to be stored and published; the future resolves to the message as
        published, or fails with ``ChatUnavailable``. Never waits: a sender's socket keeps
        being read while its message is on the way."""
        if self._closed:
            raise ChatUnavailable("chat_unavailable", "chat is not available right now")
        queue = self._rooms.get(row.session_id)
        if queue is None:
            queue = self._rooms[row.session_id] = _RoomQueue()
        queue.recent.append(time.monotonic())
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        queue.queued.append(_Queued(row, done))
        self._wake.set()
        return done

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self._closed = False
        self._task = asyncio.create_task(self._run(), name="ChatWriter")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Refuse new messages, flush the queued ones, stop."""
        self._closed = True
        if self._task is None:
            return
        deadline = time.monotonic() + timeout_s
        while any(q.queued for q in self._rooms.values()) and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        for queue in self._rooms.values():
            for item in queue.queued:
                if not item.done.done():
                    item.done.set_exception(ChatUnavailable(message="chat is shutting down"))
            queue.queued.clear()

    # -- the writer task ---------------------------------------------------------

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            due = self._take_due(now)
            if not due:
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._next_deadline(now))
                continue
            try:
                await self._flush(due)
            except Exception as exc:
                reraise_if_cancelling()
                report_failure(log, f"ChatWriter({id(self)}) flush", exc)

    def _take_due(self, now: float) -> list[tuple[int, bool, list[_Queued]]]:
        due: list[tuple[int, bool, list[_Queued]]] = []
        for session_id, queue in list(self._rooms.items()):
            recent = queue.recent
            while recent and now - recent[0] > 1.0:
                recent.popleft()
            rate = len(recent)
            if rate > self._threshold:
                queue.batching = True
            elif rate < self._threshold / 2:
                queue.batching = False
            if not queue.queued:
                if not recent:
                    del self._rooms[session_id]
                continue
            if queue.batching and now < queue.next_flush:
                continue
            due.append((session_id, queue.batching, queue.queued))
            queue.queued = []
            queue.next_flush = now + self._interval
        return due

    def _next_deadline(self, now: float) -> float | None:
        waits = [q.next_flush - now for q in self._rooms.values() if q.queued and q.batching]
        if waits:
            return max(0.0, min(waits))
        # Rooms with recent submits must be looked at again to switch batching off.
        return 1.0 if self._rooms else None

    async def _flush(self, due: list[tuple[int, bool, list[_Queued]]]) -> None:
        items = [item for _room, _batching, queued in due for item in queued]
        try:
            async with self._db.transaction() as tx:
                tx.add_all([item.row for item in items])
        except Exception as exc:
            report_failure(log, f"ChatWriter({id(self)}) storing messages", exc)
            for item in items:
                if not item.done.done():
                    item.done.set_exception(ChatUnavailable(message="the message was not sent"))
            return
        for session_id, batching, queued in due:
            views = [message_view(item.row) for item in queued]
            try:
                if batching:
                    await self._log.append(session_id, "chat.batch", {"messages": views})
                else:
                    for view in views:
                        await self._log.append(session_id, "chat.message", view)
            except Exception as exc:
                report_failure(log, f"ChatWriter({id(self)}) publishing", exc)
                for item in queued:
                    if not item.done.done():
                        item.done.set_exception(
                            ChatUnavailable(message="stored, but not delivered live")
                        )
                continue
            for item, view in zip(queued, views, strict=True):
                if not item.done.done():
                    item.done.set_result(view)
