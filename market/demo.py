"""The demo's market (``python app.py --demo``): the demo host's rate card, published
once, so the brand console's creator directory lists a creator from the first start.

It runs after the shelf's demo seeding, which creates the demo accounts; a card that is
already there (a restart on the same database) is left as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from live.auth import Principal
from live.feature import Core
from live.models import Role
from market.rate_cards import RateCards
from market.schemas import RateCardBody, ServiceBody

DEMO_SERVICES = (
    ServiceBody(
        kind="live_segment",
        minutes=10,
        price_minor=25_000,
        currency="EUR",
        turnaround_days=7,
        description="Ten pinned minutes in a live show, with a try-on",
    ),
    ServiceBody(
        kind="shelf_slot",
        price_minor=5_000,
        currency="EUR",
        turnaround_days=3,
        description="Your product on the shelf for one show",
    ),
)


def demo_market(
    core: Core, cards: RateCards, host_username: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context publishing the demo host's first rate card at start-up."""

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        host = await core.accounts.by_username(host_username)
        if not await cards.has_card(host.id):
            caller = Principal(host.id, host.username, Role.HOST, host.display_name)
            body = RateCardBody(services=list(DEMO_SERVICES), base_version=0)
            await cards.publish(caller, host.id, body)
        yield

    return lifetime
