"""How fast one account may create products, edit shelves, pin and create flash sales
(``live/guard.py``, issue 17): past the burst a request is 429 with ``Retry-After`` and
a code, creates nothing, and holds back no other account. The app runs with its limits
on here (the suite's default is off)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from shelf_support import World, make_product, shelve
from support import Account, Api, checked

from app import Settings, create_app
from live.clock import ManualClock, iso


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings.model_copy(update={"limits": True}), clock=clock))


async def refused(res: aiohttp.ClientResponse, code: str, retry_after: str) -> None:
    assert res.status == 429, await res.text()
    assert (await res.json())["error"]["code"] == code
    assert res.headers["Retry-After"] == retry_after


async def post(api: Api, path: str, who: Account, body: dict[str, Any]) -> aiohttp.ClientResponse:
    return await api.client.post(path, json=body, headers=who.headers)


async def test_the_31st_product_in_a_burst_is_429(api: Api, clock: ManualClock) -> None:
    brand, other = await api.signup("brand"), await api.signup("brand")
    for n in range(30):
        await make_product(api, brand, title=f"Burst {n}")
    body = {"title": "One too many", "price_minor": 1, "currency": "EUR", "stock": 1}
    res = await post(api, "/api/products", brand, {**body, "commission_bps": 0})
    await refused(res, "too_many_products", "2")  # then one every 2 s
    listed = await api.call("GET", f"/api/brands/{brand.id}/products?include_archived=1")
    assert len(listed["products"]) == 30 and listed["next_before_id"] is None
    await make_product(api, other)  # another account is not held back
    clock.advance(2_000)
    await make_product(api, brand, title="After the wait")
    res = await post(api, "/api/products", brand, {**body, "commission_bps": 0})
    await refused(res, "too_many_products", "2")


async def test_the_31st_pin_in_a_burst_is_429(api: Api, world: World, clock: ManualClock) -> None:
    a, b, _ = world.pids
    await shelve(api, world, a, b)
    url = f"/api/sessions/{world.session_id}/pin"
    for n in range(30):
        await api.call("POST", url, world.host, json={"product_id": (a, b)[n % 2]}, expect=200)
    await refused(await post(api, url, world.host, {"product_id": a}), "too_many_pins", "1")
    pins = await api.call("GET", f"/api/sessions/{world.session_id}/pins?limit=200")
    assert len(pins["pins"]) == 30
    state = await api.call("GET", f"/api/sessions/{world.session_id}/shelf")
    assert state["pinned"]["product_id"] == b  # the 30th pin still shows
    clock.advance(1_000)
    await api.call("POST", url, world.host, json={"product_id": a}, expect=200)


async def test_the_21st_flash_sale_in_a_burst_is_429(
    api: Api, world: World, clock: ManualClock
) -> None:
    a = world.pids[0]
    await shelve(api, world, a)
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()

    def sale(n: int) -> dict[str, Any]:
        start = now + 3_600_000 + n * 120_000
        return {
            "product_id": a,
            "price_minor": 500,
            "quantity": 1,
            "per_buyer_limit": 1,
            "starts_at": iso(start),
            "ends_at": iso(start + 60_000),
        }

    for n in range(20):
        await api.call("POST", url, world.host, json=sale(n), expect=201)
    await refused(await post(api, url, world.host, sale(20)), "too_many_flash_sales", "5")
    listed = await api.call("GET", url)
    assert len(listed["flash_sales"]) == 20
    clock.advance(5_000)
    await api.call("POST", url, world.host, json=sale(20), expect=201)


async def test_the_101st_shelf_edit_in_a_burst_is_429(api: Api, world: World) -> None:
    a, b, _ = world.pids
    shelf = f"/api/sessions/{world.session_id}/shelf"
    await shelve(api, world, a)
    for _ in range(49):
        await api.call("POST", shelf, world.host, json={"product_id": b}, expect=201)
        await api.call("DELETE", f"{shelf}/{b}", world.host, expect=200)
    await api.call("PUT", f"{shelf}/order", world.host, json={"product_ids": [a]}, expect=200)
    await refused(
        await post(api, shelf, world.host, {"product_id": b}), "too_many_shelf_edits", "1"
    )
    state = await api.call("GET", shelf)
    assert [item["product_id"] for item in state["shelf"]] == [a]
