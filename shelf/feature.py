"""Wiring the shelf feature into the app (``live.feature``): catalogues, cooperations,
the live shelf, pins and flash sales (``setup_shelf``); orders, refunds, the commission
ledger and reports (``setup_orders``); the session stats (``setup_stats``). See API.md.

``build_shelf`` creates the shelf's services with their collaborators; ``setup_shelf``
registers ``snapshot`` with the room channel, ``details`` with ``GET
/api/sessions/{id}``, ``on_session_status`` with the session service, the routes, and
``start``/``stop`` in a cleanup context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from live.analytics import AudienceReport
from live.clock import Clock
from live.db import Database
from live.feature import Wiring
from live.guard import Guard
from live.http import SECURITY_HEADERS
from live.models import SessionStatus
from live.openapi import not_in_api
from live.outbox import Outbox, OutboxRelay
from live.roomlog import RoomLog
from live.sessions import SessionService
from live.user_events import UserEvents, create_user_log
from live.user_events_handlers import UserEventHandlers
from shelf.catalogue import CatalogueService
from shelf.cooperation import CooperationNews, CooperationService
from shelf.flash import FlashSaleService
from shelf.flash_approvals import FlashApprovalHandlers, FlashApprovals
from shelf.flash_scheduler import FlashScheduler
from shelf.funnel import CardEvents
from shelf.handlers import ShelfHandlers, StatsHandlers
from shelf.ledger import CommissionLedger
from shelf.live_shelf import ShelfService
from shelf.order_handlers import OrderHandlers
from shelf.order_store import order_store_for
from shelf.orders import BuyerGate, OrderService
from shelf.payments import TestPaymentProvider
from shelf.pins import MediaTime, PinService, no_media_time
from shelf.publisher import StockPublisher
from shelf.recovery import OrderRecovery
from shelf.reports import ReportService
from shelf.state import SessionLocks
from shelf.stats import StatsService
from shelf.stock import StockService


class ShelfSettings(Protocol):
    """The settings the shelf reads (``live.settings.Settings`` has them)."""

    @property
    def flash_reserve_lead_s(self) -> int: ...
    @property
    def redis_prefix(self) -> str: ...


class OrderSettings(Protocol):
    """The settings the orders read (``live.settings.Settings`` has them)."""

    @property
    def commission_hold_days(self) -> int: ...
    @property
    def platform_fee_bps(self) -> int: ...
    @property
    def order_recovery_every_s(self) -> float: ...
    @property
    def order_recovery_after_s(self) -> float: ...


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
    news: CooperationNews | None = None,
) -> ShelfFeature:
    """``news``: where the parties of an agreement hear of each step (the per-user
    event streams)."""
    locks = SessionLocks()
    stock = StockService(clock)
    publisher = StockPublisher(db, outbox, relay)
    catalogue = CatalogueService(db, clock, stock, publisher)
    cooperations = CooperationService(db, clock, news)
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


shelf_key = web.AppKey("shelf", ShelfFeature)
orders_key = web.AppKey("orders", OrderService)
cards_key = web.AppKey("cards", CardEvents)
user_events_key = web.AppKey("user_events", UserEvents)


def setup_shelf(wiring: Wiring, settings: ShelfSettings, *, media_time: MediaTime) -> ShelfFeature:
    """The shelf's services, routes and lifetime. Pins are stamped with the
    recording's ``media_time``. Also the per-user event streams (``GET
    /api/me/events``, ``live.user_events``) the cooperations tell the parties on."""
    core = wiring.core
    events = UserEvents(create_user_log(core.redis, core.clock, prefix=settings.redis_prefix))
    wiring.app[user_events_key] = events
    shelf = build_shelf(
        core.db,
        core.clock,
        core.sessions,
        core.room_log,
        core.outbox,
        core.relay,
        guard=core.guard,
        media_time=media_time,
        flash_reserve_lead_ms=settings.flash_reserve_lead_s * 1000,
        news=events,
    )
    wiring.app[shelf_key] = shelf
    core.channel.add_snapshot(shelf.snapshot)
    core.session_details.append(shelf.details)
    core.sessions.add_listener(shelf.on_session_status)
    wiring.routes.extend(shelf.handlers.routes())
    wiring.routes.extend(shelf.approval_handlers.routes())
    wiring.routes.extend(UserEventHandlers(events, core.tokens, core.clock).routes())

    async def end_streams(_app: web.Application) -> None:
        events.end_all()  # before the server waits for its open answers

    wiring.app.on_shutdown.append(end_streams)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        # stock not yet announced and flash-sale transitions due are caught up first
        await core.startup.run("starting the shelf", shelf.start)
        yield
        await shelf.stop()
        await events.close()

    wiring.app.cleanup_ctx.append(lifetime)
    return shelf


def setup_orders(
    wiring: Wiring,
    settings: OrderSettings,
    shelf: ShelfFeature,
    *,
    gates: Sequence[BuyerGate] = (),
) -> OrderService:
    """Orders, refunds, the commission ledger and reports; ``gates`` may refuse a buyer
    (e.g. one banned from the chat). Orders a crash left half-done are settled at
    start-up."""
    core = wiring.core
    orders = OrderService(
        order_store_for(
            core.db,
            core.clock,
            shelf.stock,
            shelf.publisher,
            CommissionLedger(hold_ms=settings.commission_hold_days * 86_400_000),
            core.outbox,
        ),
        core.clock,
        shelf.publisher,
        TestPaymentProvider(),
        core.relay,
        platform_fee_bps=settings.platform_fee_bps,
        gates=gates,
    )
    stats = orders.stats
    core.metrics.counter(
        "orders_answered",
        "Order requests answered with an order, by its state (a repeated request counts again)",
        lambda: {(state,): float(n) for state, n in stats.answered.items()},
        labels=("state",),
    )
    core.metrics.counter(
        "orders_refused",
        "Order requests refused, by error code",
        lambda: {(code,): float(n) for code, n in stats.refused.items()},
        labels=("reason",),
    )
    wiring.app[orders_key] = orders
    reports = ReportService(core.db, core.clock)
    wiring.routes.extend(OrderHandlers(orders, reports, core.clock).routes())

    recovery = OrderRecovery(
        orders, every_s=settings.order_recovery_every_s, after_s=settings.order_recovery_after_s
    )

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await core.startup.run("settling orders left half-done", orders.recover)
        await recovery.start()  # and from then on, orders a failure leaves placed
        yield
        await recovery.stop()
        await orders.close()

    wiring.app.cleanup_ctx.append(lifetime)
    return orders


def setup_stats(wiring: Wiring) -> None:
    """Analytics: product-card reports over the room channel, the stats API and the
    charting library the dashboard uses (served from the plotly package)."""
    core = wiring.core
    cards = CardEvents(core.db, core.clock)
    wiring.app[cards_key] = cards
    cards.attach(core.channel)
    stats = StatsService(core.db, core.clock, AudienceReport(core.db), core.follows)
    wiring.routes.extend(StatsHandlers(stats).routes())
    plotly_js = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))

    @not_in_api("a vendored script file (plotly.js) for the stats dashboard page")
    async def charts(_request: web.Request) -> web.FileResponse:
        headers = {"Cache-Control": "max-age=86400", **SECURITY_HEADERS}
        return web.FileResponse(plotly_js, headers=headers)

    wiring.app.router.add_get("/vendor/plotly.min.js", charts)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        cards.start()
        yield
        await cards.stop()

    wiring.app.cleanup_ctx.append(lifetime)
