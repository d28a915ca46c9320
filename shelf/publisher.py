"""``stock.changed``: announcing stock changes to every room that shows the product.

Contract:

* Whoever changed ``Product.stock`` or a flash sale's ``sold`` (and so bumped
  ``Product.stock_version``, see ``shelf.stock``) calls ``changed(product_id)`` after
  the commit. It never blocks and never fails.
* Per product at most one event per ``min_interval_s`` (0.2 s: 5 a second) leaves this
  process. Changes in between are coalesced: the publication reads the product's
  *current* row, so the latest value always goes out within ``min_interval_s``.
* A publication is one transaction: it reads the product, moves its
  ``StockAnnouncement`` up to that ``stock_version`` with a compare-and-set (so one
  version is announced once, even with several processes, and never after a later
  one), and writes one ``stock.changed`` per non-ended session with the product on its
  shelf to the transactional outbox. ``sweep()`` (run at start-up) announces whatever a
  crashed process left unannounced.
* It never locks the product row. Every buyer of the product queues on that row (the
  conditional UPDATE of ``shelf.stock``), and a publication's transaction lasts several
  round trips and a synchronous commit: during a flash sale, holding the row that long
  five times a second stalled every take behind it. The announcement row is locked
  only by publications of the same product.
* The snapshot never depends on this: it reads the product row (latest value).
* Change listeners (``add_change_listener``) hear every ``changed`` at once, before
  any coalescing: the sold-out gate (``shelf.soldout``) forgets the product there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import suppress

from sqlalchemy import func, select

from live.db import Database, upsert
from live.outages import report_failure
from live.outbox import Outbox, OutboxRelay
from shelf.models import FlashSale, FlashStatus, Product, StockAnnouncement
from shelf.state import HOLDING_UNITS, sessions_showing
from shelf.views import stock_entry

log = logging.getLogger(__name__)


def _running(sales: Iterable[FlashSale]) -> FlashSale | None:
    return next((f for f in sales if f.status == FlashStatus.RUNNING.value), None)


class StockPublisher:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        relay: OutboxRelay,
        *,
        min_interval_s: float = 0.2,
    ) -> None:
        self.db = db
        self._outbox = outbox
        self._relay = relay
        self._interval = min_interval_s
        #: one per product whose publication waits for its interval (gone when it starts)
        self._scheduled: dict[int, asyncio.Task[None]] = {}
        #: publications waiting or running, each removed when done
        self._tasks: dict[asyncio.Task[None], int] = {}
        self._stopped = False
        #: product -> when it was last published: past 1,024 products, those older than
        #: ``min_interval_s`` (which no longer delay anything) are dropped
        self._last_sent: dict[int, float] = {}
        self._listeners: list[Callable[[int], None]] = []

    def add_change_listener(self, listener: Callable[[int], None]) -> None:
        """``listener(product_id)`` runs inside every ``changed`` call; it must be quick
        and must not raise."""
        self._listeners.append(listener)

    def changed(self, product_id: int) -> None:
        """The product's stock changed (committed): announce it within ``min_interval_s``."""
        for listener in self._listeners:
            listener(product_id)
        if product_id in self._scheduled or self._stopped:
            return  # the scheduled publication will read the latest value
        loop = asyncio.get_running_loop()
        last = self._last_sent.get(product_id)
        delay = 0.0 if last is None else max(0.0, last + self._interval - loop.time())
        task = loop.create_task(
            self._later(product_id, delay), name=f"StockPublisher({product_id})"
        )
        self._scheduled[product_id] = task
        self._tasks[task] = product_id
        task.add_done_callback(self._tasks.pop)

    async def _later(self, product_id: int, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        loop = asyncio.get_running_loop()
        # From here on a new change schedules a new publication (not before the interval).
        self._scheduled.pop(product_id, None)
        self._last_sent[product_id] = loop.time()
        self._forget_old(loop.time())
        try:
            await self.publish(product_id)
        except Exception as exc:
            report_failure(log, f"StockPublisher({id(self)}) publishing", exc)

    def _forget_old(self, now: float) -> None:
        if len(self._last_sent) > 1024:
            for pid, at in list(self._last_sent.items()):
                if at + self._interval < now:
                    del self._last_sent[pid]

    async def publish(self, product_id: int) -> bool:
        """Announce the product's current stock now, unless that version is announced."""
        async with self.db.transaction() as tx:
            # The product first: what is read after it (the running flash sales) is at
            # least as new as its version, and any later change has a later version,
            # hence a publication of its own.
            product = await tx.get(Product, product_id, populate_existing=True)
            if product is None or product.stock_version == 0:
                return False  # gone, or untouched since it was created
            version = product.stock_version
            announced = await tx.scalar(
                upsert(tx, StockAnnouncement)
                .values(product_id=product_id, version=version)
                .on_conflict_do_update(
                    index_elements=[StockAnnouncement.product_id],
                    set_={"version": version},
                    where=StockAnnouncement.version < version,
                )
                .returning(StockAnnouncement.product_id)
            )
            if announced is None:
                return False  # this version, or a later one, is announced already
            sessions = await sessions_showing(tx, product_id)
            # The product's sales holding units (running, or reserved ahead), by show.
            held: dict[int, list[FlashSale]] = {}
            for f in await tx.scalars(
                select(FlashSale)
                .where(FlashSale.product_id == product_id, HOLDING_UNITS)
                .order_by(FlashSale.id)
            ):
                held.setdefault(f.session_id, []).append(f)
            rows = [
                self._outbox.add(
                    tx,
                    sid,
                    "stock.changed",
                    stock_entry(product, _running(held.get(sid, ())), held.get(sid, ())),
                )
                for sid in sessions
            ]
        await self._relay.publish(rows)
        return True

    async def sweep(self) -> int:
        """Announce every product whose latest stock version is not announced yet."""
        async with self.db.read() as s:
            ids = list(
                await s.scalars(
                    select(Product.id)
                    .outerjoin(StockAnnouncement, StockAnnouncement.product_id == Product.id)
                    .where(Product.stock_version > func.coalesce(StockAnnouncement.version, 0))
                )
            )
        for product_id in ids:
            await self.publish(product_id)
        return len(ids)

    async def start(self) -> None:
        self._stopped = False
        await self.sweep()

    async def stop(self) -> None:
        """Stop: publications in flight finish (a cancelled one could leave its statement
        running in the database); waiting ones are published now."""
        self._stopped = True
        waiting = set(self._scheduled.values())
        tasks = dict(self._tasks)
        self._scheduled.clear()
        for task in tasks:
            if task in waiting:
                task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        for task, product_id in tasks.items():
            if task not in waiting:
                continue
            try:
                await self.publish(product_id)
            except Exception:
                log.exception("StockPublisher(%s) final publish of %s failed", id(self), product_id)
