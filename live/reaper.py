"""Connections that do not finish a request in time are closed (slowloris, idle).

aiohttp closes a keep-alive connection after ``keepalive_timeout`` but never one that
has not finished sending its first request's headers: 2,000 connections that sent
nothing, or trickled a header byte now and then, stayed open for good. The
``ConnectionReaper`` looks at the server's connections once a ``period_s`` and closes:

* one that has not finished its first request's headers ``header_timeout_s`` after it
  opened;
* one that has been waiting for its next request (idle, or trickling its headers) for
  ``idle_timeout_s`` (also aiohttp's ``keepalive_timeout``).

A request being handled is never cut (handlers bound their own work, and a room
socket leaves aiohttp's list when it is taken over). Room sockets that never complete
a frame are closed by the room hub's heartbeat (``live.roomsocket``).

Reaches into aiohttp (checked by ``check_compatible`` at start-up):
``RequestHandler._request_count`` (requests whose headers it read) and
``RequestHandler._request_in_progress`` (one is being handled), both in its
``__slots__``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)

_PRIVATE = ("_request_count", "_request_in_progress")


def check_compatible() -> None:
    """Raise ``RuntimeError`` if aiohttp no longer has what the reaper reads."""
    slots = getattr(RequestHandler, "__slots__", ())
    missing = [name for name in _PRIVATE if name not in slots]
    if missing:
        raise RuntimeError(f"aiohttp's RequestHandler lacks {missing}: update live/reaper.py")


class ConnectionReaper:
    def __init__(
        self,
        server: web.Server,
        *,
        header_timeout_s: float = 10.0,
        idle_timeout_s: float = 60.0,
        period_s: float | None = None,
    ) -> None:
        check_compatible()
        self._server = server
        self._header_timeout = header_timeout_s
        self._idle_timeout = idle_timeout_s
        # a connection is closed at most a period late (and first seen a period late)
        self._period = period_s or min(1.0, header_timeout_s / 4, idle_timeout_s / 4)
        #: handler -> (requests read when last seen moving, when that was); only the
        #: server's current connections (a handler has no weak references)
        self._seen: dict[RequestHandler, tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self.reaped = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ConnectionReaper({id(self)})")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    def sweep(self) -> int:
        """Close the connections past their timeout; returns how many."""
        now = asyncio.get_running_loop().time()
        closed = 0
        connections = self._server.connections
        self._seen = {h: self._seen[h] for h in connections if h in self._seen}
        for handler in connections:
            count = handler._request_count
            seen = self._seen.get(handler)
            if handler._request_in_progress or seen is None or seen[0] != count:
                self._seen[handler] = (count, now)  # new, busy, or it moved on
                continue
            # Waiting for a request: the first one's headers, or the next one.
            limit = self._header_timeout if count == 0 else self._idle_timeout
            if now - seen[1] >= limit and handler.transport is not None:
                handler.transport.close()
                closed += 1
        self.reaped += closed
        return closed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                closed = self.sweep()
            except Exception:
                reraise_if_cancelling()
                log.exception("ConnectionReaper(%s) sweep failed", id(self))
                continue
            if closed:
                log.info(
                    "ConnectionReaper(%s): closed %d slow or idle connections", id(self), closed
                )
