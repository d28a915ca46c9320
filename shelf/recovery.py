"""Orders left ``placed`` are settled while the server runs, not only at its start.

A request that took its units and inserted its order, then lost its database (a
restart) or its payment call, leaves the order ``placed`` with its units taken; every
retry of it answers ``409 order_in_progress``. ``OrderRecovery`` looks every
``every_s`` for orders ``placed`` for longer than ``after_s`` (a request in flight
settles its own well within that) and settles them with ``OrderService.recover``:
the capture is keyed by the order id (a repeat is answered with the first result,
``shelf.payments``) and settling is a compare-and-set on the locked order row, so with
several workers doing this each order is charged and settled once. A pass that fails
(the database still down) is logged once per outage, and the next pass tries again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from live.tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)


class Recoverable(Protocol):
    async def recover(self, older_than_ms: int = 0) -> int: ...


class OrderRecovery:
    def __init__(self, orders: Recoverable, *, every_s: float = 5.0, after_s: float = 10.0) -> None:
        self._orders = orders
        self._every_s = every_s
        self._after_ms = int(after_s * 1000)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"OrderRecovery({id(self)})")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def run_once(self) -> int:
        """One pass; returns how many orders it settled (0 when it failed)."""
        try:
            settled = await self._orders.recover(self._after_ms)
        except Exception as exc:
            reraise_if_cancelling()
            if not self._failing:
                log.warning("OrderRecovery(%s): cannot settle stuck orders: %r", id(self), exc)
            self._failing = True
            return 0
        if self._failing:
            log.warning("OrderRecovery(%s): settling stuck orders again", id(self))
            self._failing = False
        if settled:
            log.info("OrderRecovery(%s): settled %d stuck orders", id(self), settled)
        return settled

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            await self.run_once()
