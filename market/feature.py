"""Wiring the market feature into the app (``live.feature``): rate cards, creator
profiles, the creator directory and paid deals (API.md). It needs to know who acts for
a host (``AgencyOf``), what hosts sold (``HostSales``), how long a show pinned a
product (``PinMinutes``) and whose a product is (``ProductBrands``): the shelf
implements them and ``app.py`` hands them over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from live.feature import Wiring
from market.deal_handlers import DealHandlers
from market.deal_money import DealMoney
from market.deal_protocol import PinMinutes, ProductBrands
from market.deal_timers import DealTimers
from market.deals import Deals
from market.directory import CreatorDirectory
from market.figures import CreatorFiguresWriter, FiguresRefresher
from market.handlers import MarketHandlers
from market.profiles import CreatorProfiles
from market.protocol import AgencyOf, HostSales
from market.rate_cards import RateCards


class MarketSettings(Protocol):
    """The settings the market reads (``live.settings.Settings`` has them)."""

    @property
    def market_figures_every_s(self) -> float: ...
    @property
    def market_figures_batch(self) -> int: ...
    @property
    def media_worker(self) -> int: ...
    #: how long a settled deal's commission is held (the shelf's hold, too)
    @property
    def commission_hold_days(self) -> int: ...


rate_cards_key = web.AppKey("rate_cards", RateCards)
figures_key = web.AppKey("creator_figures", FiguresRefresher)
deals_key = web.AppKey("deals", Deals)
deal_timers_key = web.AppKey("deal_timers", DealTimers)

DAY_MS = 86_400_000


def setup_market(
    wiring: Wiring,
    settings: MarketSettings,
    *,
    agencies: AgencyOf,
    sales: HostSales,
    pins: PinMinutes,
    products: ProductBrands,
) -> RateCards:
    """The market's services, routes, the periodic refresh of the creator figures and
    the deals' timers (in worker 0 only: one pass per node is enough)."""
    core = wiring.core
    writer = CreatorFiguresWriter(core.db, core.clock, sales)
    refresher = FiguresRefresher(
        core.db,
        writer,
        every_s=settings.market_figures_every_s,
        batch=settings.market_figures_batch,
    )
    cards = RateCards(
        core.db, core.clock, agencies, on_first_card=lambda host_id: writer.refresh([host_id])
    )
    wiring.app[rate_cards_key] = cards
    wiring.app[figures_key] = refresher
    handlers = MarketHandlers(
        cards, CreatorProfiles(core.db, core.clock), CreatorDirectory(core.db)
    )
    wiring.routes.extend(handlers.routes())
    money = DealMoney(hold_ms=settings.commission_hold_days * DAY_MS)
    deals = Deals(core.db, core.clock, money, agencies, pins, products)
    timers = DealTimers(core.db, core.clock, deals)
    wiring.app[deals_key] = deals
    wiring.app[deal_timers_key] = timers
    wiring.routes.extend(DealHandlers(deals).routes())

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if settings.media_worker == 0:
            await refresher.start()
            await timers.start()
        yield
        await timers.stop()
        await refresher.stop()

    wiring.app.cleanup_ctx.append(lifetime)
    return cards
