"""``stock_figures``: regular, reserved and flash units told apart, the same in the
product API, the session's shelf (the room snapshot) and ``stock.changed``."""

from __future__ import annotations

from typing import Any

from shelf_support import World, shelve
from support import Api

from live.clock import ManualClock, iso
from shelf.feature import ShelfFeature


def figures(
    regular: int, flash: int = 0, reserved: int = 0, price: int | None = None, running: bool = False
) -> dict[str, Any]:
    return {
        "regular": regular,
        "flash": flash,
        "reserved": reserved,
        "flash_price_minor": price,
        "flash_running": running,
    }


async def seen(api: Api, world: World, pid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The product's figures from the product API and from the session's shelf."""
    product = await api.call("GET", f"/api/products/{pid}", expect=200)
    state = await api.call("GET", f"/api/sessions/{world.session_id}/shelf", expect=200)
    entry = state["stock"][str(pid)]
    assert product["stock"] == product["stock_figures"]["regular"] == entry["stock"]
    return product["stock_figures"], entry["stock_figures"]


async def test_figures_through_a_flash_sale(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    pid = world.pids[0]
    await shelve(api, world, pid)
    await api.call("PATCH", f"/api/products/{pid}", world.brand, json={"stock": 10}, expect=200)
    assert await seen(api, world, pid) == (figures(10), figures(10))
    now = clock.now_ms()
    await api.call(
        "POST",
        f"/api/sessions/{world.session_id}/flash-sales",
        world.host,
        json={
            "product_id": pid,
            "price_minor": 300,
            "quantity": 4,
            "per_buyer_limit": 2,
            "starts_at": iso(now + 30_000),
            "ends_at": iso(now + 90_000),
        },
        expect=201,
    )
    await feature.scheduler.run_due()  # within the reserve lead: the units are held
    reserved = figures(6, reserved=4, price=300)
    assert await seen(api, world, pid) == (reserved, reserved)
    brand_list = await api.call("GET", f"/api/brands/{world.brand.id}/products", expect=200)
    listed = next(p for p in brand_list["products"] if p["id"] == pid)
    assert listed["stock_figures"] == reserved

    clock.advance(30_000)
    await feature.scheduler.run_due()
    assert await seen(api, world, pid) == (figures(6, 4, 0, 300, True),) * 2
    await api.call(
        "POST",
        f"/api/sessions/{world.session_id}/orders",
        world.viewer,
        json={"product_id": pid, "quantity": 1},
        headers={"Idempotency-Key": "figures-1"},
        expect=201,
    )
    assert await seen(api, world, pid) == (figures(6, 3, 0, 300, True),) * 2

    clock.advance(60_000)
    await feature.scheduler.run_due()  # ended: the 3 unsold units are regular again
    assert await seen(api, world, pid) == (figures(9), figures(9))
