"""Wiring the market feature into the app (``live.feature``): rate cards, creator
profiles and the creator directory (API.md). It needs to know who acts for a host
(``AgencyOf``) and what hosts sold (``HostSales``): the shelf implements both and
``app.py`` hands them over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aiohttp import web

from live.feature import Wiring
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


rate_cards_key = web.AppKey("rate_cards", RateCards)
figures_key = web.AppKey("creator_figures", FiguresRefresher)


def setup_market(
    wiring: Wiring, settings: MarketSettings, *, agencies: AgencyOf, sales: HostSales
) -> RateCards:
    """The market's services, routes and the periodic refresh of the creator figures
    (in worker 0 only: one pass per node is enough)."""
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

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if settings.media_worker == 0:
            await refresher.start()
        yield
        await refresher.stop()

    wiring.app.cleanup_ctx.append(lifetime)
    return cards
