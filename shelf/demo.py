"""Demo data for ``python app.py --demo``: three products of the demo brand, under an
accepted cooperation with the demo host, on the demo session's shelf. Idempotent."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from live.auth import Principal
from live.errors import Conflict
from live.paging import Page
from shelf.feature import ShelfFeature
from shelf.schemas import CreateProductBody, ProposeBody

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
