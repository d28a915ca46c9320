"""Building the shelf feature: every service of ``shelf/`` and how ``app.py`` uses them.

``build_shelf`` creates the services with their collaborators; ``app.py`` then
registers ``snapshot`` with the room channel, ``details`` with ``GET
/api/sessions/{id}``, ``on_session_status`` with the session service, the routes,
and ``start``/``stop`` in a cleanup context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from live.clock import Clock
from live.db import Database
from live.guard import Guard
from live.models import SessionStatus
from live.outbox import Outbox, OutboxRelay
from live.roomlog import RoomLog
from live.sessions import SessionService
from shelf.catalogue import CatalogueService
from shelf.cooperation import CooperationService
from shelf.flash import FlashSaleService
from shelf.flash_approvals import FlashApprovalHandlers, FlashApprovals
from shelf.flash_scheduler import FlashScheduler
from shelf.handlers import ShelfHandlers
from shelf.live_shelf import ShelfService
from shelf.pins import MediaTime, PinService, no_media_time
from shelf.publisher import StockPublisher
from shelf.state import SessionLocks
from shelf.stock import StockService


@dataclass(frozen=True, slots=True)
class ShelfFeature:
    stock: StockService
    publisher: StockPublisher
    catalogue: CatalogueService
    cooperations: CooperationService
    pins: PinService
    shelf: ShelfService
    flash: FlashSaleService
    scheduler: FlashScheduler
    handlers: ShelfHandlers
    approvals: FlashApprovals
    approval_handlers: FlashApprovalHandlers

    async def snapshot(self, session_id: int) -> dict[str, Any]:
        """The room snapshot part: shelf, shelf_version, pinned, stock, flash_sales."""
        return await self.shelf.snapshot(session_id)

    async def details(self, session_id: int, _session: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /api/sessions/{id}`` part: the ordered shelf."""
        return await self.shelf.details(session_id)

    async def on_session_status(self, session_id: int, status: SessionStatus) -> None:
        """A session ended: close its pin window and finish its flash sales."""
        if status is SessionStatus.ENDED:
            await self.pins.session_ended(session_id)
            await self.scheduler.close_session(session_id)

    async def start(self) -> None:
        await self.publisher.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.publisher.stop()


def build_shelf(
    db: Database,
    clock: Clock,
    sessions: SessionService,
    room_log: RoomLog,
    outbox: Outbox,
    relay: OutboxRelay,
    *,
    guard: Guard,
    media_time: MediaTime = no_media_time,
    flash_max_sleep_s: float = 1.0,
    flash_reserve_lead_ms: int = 60_000,
) -> ShelfFeature:
    locks = SessionLocks()
    stock = StockService(clock)
    publisher = StockPublisher(db, outbox, relay)
    catalogue = CatalogueService(db, clock, stock, publisher)
    cooperations = CooperationService(db, clock)
    pins = PinService(db, clock, sessions, room_log, locks, media_time)
    shelf = ShelfService(db, clock, sessions, cooperations, pins, room_log, locks)
    catalogue.add_listener(shelf.product_changed)
    scheduler = FlashScheduler(
        db,
        clock,
        stock,
        publisher,
        outbox,
        relay,
        max_sleep_s=flash_max_sleep_s,
        reserve_lead_ms=flash_reserve_lead_ms,
    )
    flash = FlashSaleService(db, clock, sessions, stock, publisher, outbox, relay, scheduler.wake)
    handlers = ShelfHandlers(catalogue, cooperations, shelf, pins, flash, guard=guard)
    approvals = FlashApprovals(db, clock, outbox, relay, scheduler.wake)
    return ShelfFeature(
        stock,
        publisher,
        catalogue,
        cooperations,
        pins,
        shelf,
        flash,
        scheduler,
        handlers,
        approvals,
        FlashApprovalHandlers(approvals),
    )
