"""Demo data for ``python app.py --demo``: the demo accounts, a live session of the demo
host, and three products of the demo brand, under an accepted cooperation with the demo
host, on that session's shelf. Idempotent. ``demo_show`` tells the demo's publisher
(``media.demo_publisher``, wired by ``app.py``) where to publish."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

from aiohttp import web

from live.auth import Principal
from live.errors import Conflict
from live.feature import Core
from live.models import Role, SessionStatus
from live.paging import Page
from shelf.feature import ShelfFeature
from shelf.schemas import CreateProductBody, ProposeBody

DEMO_PASSWORD = "liveshelf-demo"
#: the demo host's username (the market's demo publishes its rate card: ``app.py``)
DEMO_HOST = "demo-host"
_DAY_MS = 86_400_000

_DEMO_PRODUCTS = (
    ("Merino scarf", "Soft, warm, made to last.", 3900, 120),
    ("Ceramic pour-over set", "Dripper, carafe and two cups.", 5400, 40),
    ("Wool hiking socks (3 pairs)", "Cushioned, breathable, in three colours.", 2400, 300),
)


async def seed_shelf(
    feature: ShelfFeature, brand: Principal, host: Principal, session_id: int
) -> list[dict[str, Any]]:
    """Make sure the demo shelf exists; returns the three products."""
    newest = Page(len(_DEMO_PRODUCTS))
    products = (await feature.catalogue.list_for_brand(brand, brand.user_id, newest)).items
    for title, description, price, stock in _DEMO_PRODUCTS[len(products) :]:
        body = CreateProductBody(
            title=title,
            description=description,
            price_minor=price,
            currency="EUR",
            stock=stock,
            commission_bps=1500,
        )
        products.append(await feature.catalogue.create(brand, body))
    ids = [p["id"] for p in products]
    uncovered = [
        pid for pid in ids if await feature.cooperations.rate_for(host.user_id, pid) is None
    ]
    if uncovered:
        proposal = await feature.cooperations.propose(
            brand,
            ProposeBody(
                host_id=host.user_id,
                product_ids=uncovered,
                commission_bps=1500,
                flash_min_price_bps=5000,  # flash sales down to half price
                flash_max_units=50,
            ),
        )
        await feature.cooperations.accept(host, proposal["id"])
    on_shelf = {item["product_id"] for item in (await feature.shelf.snapshot(session_id))["shelf"]}
    for pid in ids:
        if pid not in on_shelf:
            # Conflict: already there (a concurrent seed) or the shelf is full.
            with suppress(Conflict):
                await feature.shelf.add(host, session_id, pid)
    return products


def demo_data(
    core: Core, shelf: ShelfFeature, host: str, port: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context seeding the demo at start-up (after the features started)."""

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await seed_demo(core, shelf, host, port)
        yield

    return lifetime


async def seed_demo(core: Core, shelf: ShelfFeature, host: str, port: int) -> dict[str, Any]:
    """Create the demo accounts and a live session unless they exist; print how to sign in."""
    accounts, sessions = core.accounts, core.sessions
    users = {}
    for username, role, name in (
        (DEMO_HOST, Role.HOST, "Mia (demo host)"),
        ("demo-brand", Role.BRAND, "Acme Goods (demo brand)"),
        ("demo-viewer", Role.VIEWER, "Sam (demo viewer)"),
    ):
        try:
            users[username] = await accounts.create(username, DEMO_PASSWORD, role, name)
        except Conflict:
            users[username] = await accounts.by_username(username)
    host_user = users[DEMO_HOST]
    host_principal = Principal(host_user.id, host_user.username, Role.HOST, host_user.display_name)
    live = (await sessions.list(Page(1), status=SessionStatus.LIVE, host_id=host_user.id)).items
    if live:
        session = live[0]
    else:
        created = await sessions.create(host_principal, "Autumn picks: live demo")
        session = await sessions.start(host_principal, created["id"])
    # The live show above is the built-in publisher's (``media.demo_publisher``); this
    # one is the host's to go live with from the studio's camera.
    scheduled = (
        await sessions.list(Page(1), status=SessionStatus.SCHEDULED, host_id=host_user.id)
    ).items
    own = scheduled[0] if scheduled else None
    if own is None:
        tomorrow = (core.clock.now_ms() // _DAY_MS + 1) * _DAY_MS + 18 * 3_600_000
        own = await sessions.create(
            host_principal, "Your first show: go live from the studio", scheduled_ms=tomorrow
        )
    brand = users["demo-brand"]
    brand_principal = Principal(brand.id, brand.username, Role.BRAND, brand.display_name)
    products = await seed_shelf(shelf, brand_principal, host_principal, session["id"])
    await seed_shelf(shelf, brand_principal, host_principal, own["id"])
    base = f"http://{host}:{port}"
    print(
        f"\nliveshelf demo on {base}\n"
        f"  home:   {base}/\n"
        f"  watch:  {base}/watch/{session['id']}  (the live show)\n"
        f'  studio: {base}/studio  (sign in as demo-host; "{own["title"]}" is yours to go'
        " live with)\n"
        f"  brand:  {base}/brand  (sign in as demo-brand)\n"
        f"  accounts (password '{DEMO_PASSWORD}'): "
        + ", ".join(f"{name} ({user.role})" for name, user in users.items())
        + "\n",
        flush=True,
    )
    return {"users": users, "session": session, "own_show": own, "products": products}


async def demo_show(core: Core) -> tuple[int, str] | None:
    """The demo host's live show and a bearer token of the host (for the demo's
    publisher, ``media.demo_publisher``); None when the host has no live show."""
    user = await core.accounts.by_username(DEMO_HOST)
    live = (await core.sessions.list(Page(1), status=SessionStatus.LIVE, host_id=user.id)).items
    if not live:
        return None
    return live[0]["id"], core.tokens.issue(user.id, user.username, user.role, user.display_name)
