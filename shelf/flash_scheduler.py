"""The flash-sale scheduler: starts and ends sales at their time on the server clock.

``FlashScheduler`` is a component with ``start()``/``stop()`` (run in a cleanup
context). Its contract:

* ``run_due()`` reserves the units of every scheduled sale that starts within
  ``reserve_lead_ms``, starts every scheduled sale whose ``starts_ms`` has come, ends
  every running sale whose ``ends_ms`` has come, and cancels every sale still waiting
  for the brand's approval when its window has passed (reason ``not_approved``), oldest
  first. A sale whose whole window passed while the server was down is started and
  ended in the same pass (``flash.started`` then ``flash.ended``), so clients always
  see both.
* Reserving takes ``min(quantity, stock)`` units (``StockService.reserve``): a sale
  that gets fewer than it asked for is announced again (``flash.scheduled``, or its
  ``flash.started``) with its new ``quantity``; one that gets none is cancelled
  (``flash.cancelled``, reason ``out_of_stock``). A sale never holds units before
  ``starts_ms - reserve_lead_ms``, however early it was scheduled.
* Each transition is a compare-and-set on the sale's status committed together with
  its outbox event (and, when ending, with the unsold units going back to stock), so
  several processes, or a restart in the middle, never emit one transition twice.
* ``start()`` runs ``run_due()`` once (catching up on everything that came due while
  the server was down) and then a loop that sleeps until the next due time, at most
  ``max_sleep_s`` (so it also notices sales created by other processes), or until
  ``wake()``.
* ``close_session(id)`` (the session ended): cancels its scheduled sales and those
  waiting for approval (reason ``session_ended``) and ends its running ones, returning
  their unsold units to stock.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.clock import Clock
from live.db import Database
from live.outages import report_failure
from live.outbox import Outbox, OutboxRelay
from live.settings import MAX_FLASH_RESERVE_LEAD_S
from live.tasks import reraise_if_cancelling
from shelf.models import FlashSale, FlashStatus
from shelf.publisher import StockPublisher
from shelf.stock import StockService
from shelf.views import flash_dict

log = logging.getLogger(__name__)

_SCHEDULED = FlashStatus.SCHEDULED.value
_RUNNING = FlashStatus.RUNNING.value
_PENDING = FlashStatus.PENDING.value
#: the longest lead time a sale may hold its units before it starts (the bound of
#: ``LIVESHELF_FLASH_RESERVE_LEAD_S``)
MAX_RESERVE_LEAD_MS = MAX_FLASH_RESERVE_LEAD_S * 1000
_EVENT = {
    FlashStatus.RUNNING: "flash.started",
    FlashStatus.ENDED: "flash.ended",
    FlashStatus.CANCELLED: "flash.cancelled",
}


# The scheduler's reads run every ``max_sleep_s`` for as long as the server runs, so
# they are built once with bound ``now`` / ``until``: building them per pass made ~70
# objects of cyclic garbage a pass (each comparison and its comparator point at each
# other), which the collector's young passes then had to find and free.
_NOW = bindparam("now", type_=BigInteger())
_UNTIL = bindparam("until", type_=BigInteger())


def _ids_in_order(where: Any, order: Any) -> Select[Any]:
    return select(FlashSale.id).where(where).order_by(order, FlashSale.id)


#: scheduled sales whose units are reserved from now on (``until`` = now + lead)
_RESERVE_DUE = _ids_in_order(
    (FlashSale.status == _SCHEDULED)
    & FlashSale.reserved_ms.is_(None)
    & (FlashSale.starts_ms <= _UNTIL)
    & (FlashSale.starts_ms > _NOW),
    FlashSale.starts_ms,
)
_START_DUE = _ids_in_order(
    (FlashSale.status == _SCHEDULED) & (FlashSale.starts_ms <= _NOW), FlashSale.starts_ms
)
_END_DUE = _ids_in_order(
    (FlashSale.status == _RUNNING) & (FlashSale.ends_ms <= _NOW), FlashSale.ends_ms
)
_CANCEL_DUE = _ids_in_order(
    (FlashSale.status == _PENDING) & (FlashSale.ends_ms <= _NOW), FlashSale.ends_ms
)
_NEXT_RESERVE = select(func.min(FlashSale.starts_ms)).where(
    FlashSale.status == _SCHEDULED, FlashSale.reserved_ms.is_(None)
)
_NEXT_START = select(func.min(FlashSale.starts_ms)).where(FlashSale.status == _SCHEDULED)
_NEXT_END = select(func.min(FlashSale.ends_ms)).where(FlashSale.status.in_((_RUNNING, _PENDING)))


class FlashScheduler:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        stock: StockService,
        publisher: StockPublisher,
        outbox: Outbox,
        relay: OutboxRelay,
        *,
        max_sleep_s: float = 1.0,
        reserve_lead_ms: int = 60_000,
    ) -> None:
        if not 0 <= reserve_lead_ms <= MAX_RESERVE_LEAD_MS:
            raise ValueError(f"reserve_lead_ms must be 0..{MAX_RESERVE_LEAD_MS}")
        self._lead = reserve_lead_ms
        self._db = db
        self._clock = clock
        self._stock = stock
        self._publisher = publisher
        self._outbox = outbox
        self._relay = relay
        self._max_sleep = max_sleep_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    def wake(self) -> None:
        """Something was scheduled or cancelled: look again now."""
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        await self.run_due()
        self._task = asyncio.create_task(self._run(), name="FlashScheduler")

    async def stop(self) -> None:
        """Stop between transitions (never cancel one mid-transaction: its statement
        could keep running in the database and hold locks)."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                self._task.cancel()
                with suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    async def run_due(self) -> int:
        """Make every transition that is due now; returns how many were made."""
        async with self._lock:
            now = self._clock.now_ms()
            made = 0
            for flash_id in await self._due(_RESERVE_DUE, now, until=now + self._lead):
                made += await self._reserve_ahead(flash_id, now)
            for flash_id in await self._due(_START_DUE, now):
                made += await self._move(flash_id, _SCHEDULED, FlashStatus.RUNNING, now)
            for flash_id in await self._due(_END_DUE, now):
                made += await self._move(flash_id, _RUNNING, FlashStatus.ENDED, now)
            for flash_id in await self._due(_CANCEL_DUE, now):
                made += await self._move(
                    flash_id, _PENDING, FlashStatus.CANCELLED, now, reason="not_approved"
                )
        return made

    async def _due(self, ids: Select[Any], now: int, until: int | None = None) -> list[int]:
        params = {"now": now} if until is None else {"now": now, "until": until}
        async with self._db.read() as s:
            return list(await s.scalars(ids, params))

    async def close_session(self, session_id: int) -> int:
        """The session ended: cancel its scheduled and pending sales, end its running ones."""
        async with self._lock:
            now = self._clock.now_ms()
            async with self._db.read() as s:
                rows = (
                    await s.execute(
                        select(FlashSale.id, FlashSale.status).where(
                            FlashSale.session_id == session_id,
                            FlashSale.status.in_((_SCHEDULED, _RUNNING, _PENDING)),
                        )
                    )
                ).all()
            made = 0
            for flash_id, status in rows:
                if status == _RUNNING:
                    made += await self._move(flash_id, status, FlashStatus.ENDED, now)
                else:
                    made += await self._move(
                        flash_id, status, FlashStatus.CANCELLED, now, reason="session_ended"
                    )
        return made

    async def next_due_ms(self) -> int | None:
        async with self._db.read() as s:
            reserve = await s.scalar(_NEXT_RESERVE)
            starts = await s.scalar(_NEXT_START)
            ends = await s.scalar(_NEXT_END)
        due = [t for t in (starts, ends) if t is not None]
        if reserve is not None:
            due.append(reserve - self._lead)
        return min(due) if due else None

    async def _reserve_ahead(self, flash_id: int, now: int) -> int:
        """Reserve a scheduled sale's units a lead time before it starts."""
        async with self._db.transaction() as tx:
            claimed = await tx.execute(
                update(FlashSale)
                .where(
                    FlashSale.id == flash_id,
                    FlashSale.status == _SCHEDULED,
                    FlashSale.reserved_ms.is_(None),
                )
                .values(reserved_ms=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return 0  # another process (or a cancel) got there first
            flash = await tx.get(FlashSale, flash_id, populate_existing=True)
            assert flash is not None
            asked = flash.quantity
            event = None
            if not await self._reserve_or_cancel(tx, flash, now):
                event = "flash.cancelled"
            elif flash.quantity < asked:
                event = "flash.scheduled"  # the sale holds fewer units than announced
            row = (
                None
                if event is None
                else self._outbox.add(tx, flash.session_id, event, flash_dict(flash, now))
            )
        if row is not None:
            await self._relay.publish([row])
        self._publisher.changed(flash.product_id)
        return 1

    async def _reserve_or_cancel(self, tx: AsyncSession, flash: FlashSale, now: int) -> bool:
        """Reserve ``flash``'s units (as many as there are, up to its quantity); with
        none in stock cancel it instead (reason ``out_of_stock``). ``flash`` is reloaded."""
        reserved = await self._stock.reserve(tx, flash, now)
        if not reserved:
            await tx.execute(
                update(FlashSale)
                .where(FlashSale.id == flash.id)
                .values(
                    status=FlashStatus.CANCELLED.value,
                    started_ms=None,
                    closed_ms=now,
                    reserved_ms=None,
                    cancel_reason="out_of_stock",
                )
            )
        await tx.refresh(flash)
        return reserved > 0

    async def _move(
        self,
        flash_id: int,
        source: str,
        target: FlashStatus,
        now: int,
        *,
        reason: str | None = None,
    ) -> int:
        async with self._db.transaction() as tx:
            values: dict[str, object] = {"status": target.value}
            values["started_ms" if target is FlashStatus.RUNNING else "closed_ms"] = now
            if reason is not None:
                values["cancel_reason"] = reason
            moved = await tx.execute(
                update(FlashSale)
                .where(FlashSale.id == flash_id, FlashSale.status == source)
                .values(values)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                return 0  # another process (or a cancel) got there first
            flash = await tx.get(FlashSale, flash_id, populate_existing=True)
            assert flash is not None
            event = _EVENT[target]
            if target is FlashStatus.RUNNING:
                if flash.reserved_ms is None and not await self._reserve_or_cancel(tx, flash, now):
                    event = _EVENT[FlashStatus.CANCELLED]
                await self._stock.bump(tx, flash.product_id)
            else:
                await self._stock.release(tx, flash_id, flash.product_id)
            data = flash_dict(flash, now)
            row = self._outbox.add(tx, flash.session_id, event, data)
        await self._relay.publish([row])
        self._publisher.changed(flash.product_id)
        return 1

    async def _run(self) -> None:
        while not self._stopping:
            try:
                due = await self.next_due_ms()
                wait = self._max_sleep
                if due is not None:
                    wait = min(wait, max(0.01, (due - self._clock.now_ms()) / 1000))
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
                if not self._stopping:
                    await self.run_due()
            except Exception as exc:
                reraise_if_cancelling()
                report_failure(log, f"FlashScheduler({id(self)})", exc)
                await asyncio.sleep(self._max_sleep)
