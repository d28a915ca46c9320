"""Helpers for the shelf tests: products, cooperations and a ready-made world."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support import Account, Api

from live.clock import iso


async def make_product(api: Api, brand: Account, **overrides: Any) -> dict[str, Any]:
    body = {
        "title": "Merino scarf",
        "price_minor": 3900,
        "currency": "EUR",
        "stock": 50,
        "commission_bps": 1500,
    }
    body.update(overrides)
    return dict(await api.call("POST", "/api/products", brand, json=body, expect=201))


async def cooperate(
    api: Api,
    brand: Account,
    host: Account,
    product_ids: list[int],
    bps: int = 1200,
    **terms: Any,
) -> dict[str, Any]:
    """Propose ``product_ids`` to ``host`` and accept: returns the accepted cooperation
    (flash sales allowed at any price above 0 unless ``terms`` say otherwise)."""
    body = {"host_id": host.id, "product_ids": product_ids, "commission_bps": bps}
    body.update({"flash_min_price_bps": 1, **terms})
    proposal = await api.call("POST", "/api/cooperations", brand, json=body, expect=201)
    return dict(
        await api.call("POST", f"/api/cooperations/{proposal['id']}/accept", host, expect=200)
    )


@dataclass
class World:
    brand: Account
    host: Account
    viewer: Account
    products: list[dict[str, Any]]
    cooperation: dict[str, Any]
    session_id: int

    @property
    def pids(self) -> list[int]:
        return [p["id"] for p in self.products]


async def make_world(api: Api, n_products: int = 3) -> World:
    brand = await api.signup("brand")
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    products = [
        await make_product(api, brand, title=f"Product {i}", price_minor=1000 + i)
        for i in range(n_products)
    ]
    coop = await cooperate(api, brand, host, [p["id"] for p in products])
    session = await api.live_session(host)
    return World(brand, host, viewer, products, coop, session["id"])


async def shelve(api: Api, world: World, *pids: int) -> None:
    """Put the products on the world's session shelf."""
    for pid in pids:
        await api.call(
            "POST",
            f"/api/sessions/{world.session_id}/shelf",
            world.host,
            json={"product_id": pid},
            expect=201,
        )


def sale(pid: int, start_ms: int, end_ms: int, **over: Any) -> dict[str, Any]:
    """A flash-sale body: 10 units at 500, 2 per buyer, unless ``over`` says otherwise."""
    body = {
        "product_id": pid,
        "price_minor": 500,
        "quantity": 10,
        "per_buyer_limit": 2,
        "starts_at": iso(start_ms),
        "ends_at": iso(end_ms),
    }
    return {**body, **over}


async def stock_of(api: Api, pid: int) -> int:
    """The product's regular stock, as the API answers it."""
    return int((await api.call("GET", f"/api/products/{pid}", expect=200))["stock"])
