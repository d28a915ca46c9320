"""Flash sales: windows on the server clock, refusals, cancelling, the scheduler."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from roomclient import connect, read_until
from shelf_support import World, sale, shelve, stock_of
from support import Api

from live.clock import ManualClock
from shelf.feature import ShelfFeature


async def test_windows_and_refusals(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    a, b, c = world.pids
    await shelve(api, world, a, b)
    await feature.scheduler.stop()  # nothing is reserved behind the test's back
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    first = await api.call(
        "POST", url, world.host, json=sale(a, now + 60_000, now + 120_000), expect=201
    )
    assert first["status"] == "scheduled" and first["remaining"] == 10
    assert first["currency"] == "EUR" and first["server_time"] >= now
    assert first["reserved"] is False and first["cancel_reason"] is None
    assert await stock_of(api, a) == 50  # nothing reserved before the sale starts
    cases = [
        (sale(a, now + 90_000, now + 150_000), 409, "flash_sale_overlaps"),
        (sale(a, now + 30_000, now + 61_000), 409, "flash_sale_overlaps"),
        (sale(a, now + 120_000, now + 60_000), 422, "invalid_window"),
        (sale(a, now + 60_000, now + 60_000), 422, "invalid_window"),
        (sale(a, now - 120_000, now - 60_000), 422, "window_in_past"),
        (sale(a, now + 1000, now + 90_000_000), 422, "window_too_long"),
        (sale(a, now + 40 * 86_400_000, now + 40 * 86_400_000 + 1000), 422, "window_too_far"),
        (sale(c, now + 1000, now + 2000), 409, "not_on_shelf"),
        (sale(b, now + 1000, now + 2000, price_minor=5000), 422, "flash_price_not_lower"),
        (
            sale(b, now + 1000, now + 2000, quantity=51, per_buyer_limit=1),
            409,
            "insufficient_stock",
        ),
        (sale(999999, now + 1000, now + 2000), 404, "product_not_found"),
        (sale(b, now + 1000, now + 2000, per_buyer_limit=11), 422, "invalid_input"),
        (sale(b, now + 1000, now + 2000, quantity=0), 422, "invalid_input"),
        (sale(b, now + 1000, now + 2000, price_minor=-1), 422, "invalid_input"),
        (
            {**sale(b, now + 1000, now + 2000), "starts_at": "2026-01-01T10:00:00"},
            422,
            "invalid_input",
        ),
        ({**sale(b, now + 1000, now + 2000), "currency": "USD"}, 422, "invalid_input"),
        ({"product_id": b}, 422, "invalid_input"),
    ]
    for body, status, code in cases:
        res = await api.call("POST", url, world.host, json=body, expect=status)
        assert res["error"]["code"] == code, body
    # Right after the first one ends is fine: windows only touching do not overlap.
    await api.call("POST", url, world.host, json=sale(a, now + 120_000, now + 130_000), expect=201)
    # An archived product cannot get a flash sale.
    await api.call("POST", f"/api/products/{b}/archive", world.brand, expect=200)
    res = await api.call("POST", url, world.host, json=sale(b, now + 1000, now + 2000), expect=409)
    assert res["error"]["code"] == "product_archived"
    # Refusals changed nothing.
    listed = (await api.call("GET", url, expect=200))["flash_sales"]
    assert len(listed) == 2 and await stock_of(api, b) == 50 and await stock_of(api, a) == 50


async def test_role_checks(api: Api, world: World, clock: ManualClock) -> None:
    a = world.pids[0]
    await shelve(api, world, a)
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    body = sale(a, now + 1000, now + 60_000)
    for account, code in (
        (world.viewer, "role_not_allowed"),
        (world.brand, "role_not_allowed"),
        (await api.signup("host"), "not_your_session"),
    ):
        res = await api.call("POST", url, account, json=body, expect=403)
        assert res["error"]["code"] == code
    await api.call("POST", url, json=body, expect=401)
    created = await api.call("POST", url, world.host, json=body, expect=201)
    res = await api.call("DELETE", f"{url}/{created['id']}", world.viewer, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    assert (await api.call("GET", url, expect=200))["flash_sales"][0]["status"] == "scheduled"


async def test_cancel_returns_the_reservation(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    a = world.pids[0]
    await shelve(api, world, a)
    await feature.scheduler.stop()
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    created = await api.call(
        "POST", url, world.host, json=sale(a, now + 60_000, now + 90_000), expect=201
    )
    assert await feature.scheduler.run_due() == 1  # within the lead time: reserved
    assert await stock_of(api, a) == 40
    cancelled = await api.call("DELETE", f"{url}/{created['id']}", world.host, expect=200)
    assert cancelled["status"] == "cancelled"
    assert await stock_of(api, a) == 50
    res = await api.call("DELETE", f"{url}/{created['id']}", world.host, expect=409)
    assert res["error"]["code"] == "flash_sale_not_scheduled"
    await api.call("DELETE", f"{url}/999999", world.host, expect=404)
    # A running sale cannot be cancelled; it ends at its time.
    running = await api.call("POST", url, world.host, json=sale(a, now, now + 90_000), expect=201)
    await feature.scheduler.run_due()
    res = await api.call("DELETE", f"{url}/{running['id']}", world.host, expect=409)
    assert res["error"]["details"]["status"] == "running"


async def test_scheduler_catches_up_after_a_restart(
    api: Api,
    client: TestClient[Any, Any],
    world: World,
    clock: ManualClock,
    feature: ShelfFeature,
) -> None:
    a, b = world.pids[:2]
    await shelve(api, world, a, b)
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    missed = await api.call(
        "POST", url, world.host, json=sale(a, now + 10_000, now + 20_000), expect=201
    )
    begun = await api.call(
        "POST", url, world.host, json=sale(b, now + 10_000, now + 90_000), expect=201
    )
    ws, _ = await connect(client, world.session_id)
    await feature.scheduler.stop()  # "the server is down"
    clock.advance(30_000)
    await feature.scheduler.start()  # catches up at once
    events = await read_until(ws, "flash.ended")
    events += (
        await read_until(ws, "flash.started")
        if sum(e["type"] == "flash.started" for e in events) < 2
        else []
    )
    kinds = [(e["type"], e["data"]["id"]) for e in events if e["type"].startswith("flash.")]
    assert kinds.index(("flash.started", missed["id"])) < kinds.index(("flash.ended", missed["id"]))
    assert ("flash.started", begun["id"]) in kinds
    assert ("flash.ended", begun["id"]) not in kinds
    statuses = {
        f["id"]: f["status"] for f in (await api.call("GET", url, expect=200))["flash_sales"]
    }
    assert statuses == {missed["id"]: "ended", begun["id"]: "running"}
    assert await stock_of(api, a) == 50  # unsold units are back
    assert await stock_of(api, b) == 40
    assert await feature.scheduler.run_due() == 0  # nothing happens twice
    await ws.close()


async def test_session_end_finishes_its_sales(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    a, b = world.pids[:2]
    await shelve(api, world, a, b)
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    await api.call("POST", url, world.host, json=sale(a, now, now + 60_000), expect=201)
    await api.call("POST", url, world.host, json=sale(b, now + 30_000, now + 60_000), expect=201)
    await feature.scheduler.run_due()
    await api.call("POST", f"/api/sessions/{world.session_id}/end", world.host, expect=200)
    statuses = sorted(f["status"] for f in (await api.call("GET", url, expect=200))["flash_sales"])
    assert statuses == ["cancelled", "ended"]
    assert await stock_of(api, a) == 50 and await stock_of(api, b) == 50
    res = await api.call("POST", url, world.host, json=sale(a, now + 1000, now + 2000), expect=409)
    assert res["error"]["code"] == "session_ended"


@pytest.mark.parametrize("n", [1])
async def test_server_time_not_client_time(
    api: Api, world: World, clock: ManualClock, n: int
) -> None:
    """A client whose clock is an hour off still gets the server's time in the sale."""
    a = world.pids[0]
    await shelve(api, world, a)
    clock.advance(3_600_000 * n)
    now = clock.now_ms()
    created = await api.call(
        "POST",
        f"/api/sessions/{world.session_id}/flash-sales",
        world.host,
        json=sale(a, now - 3_600_000 * n, now + 60_000),
        expect=201,
    )
    # A start in the past (by the client's clock) means "now" on the server's.
    assert now <= created["starts_ms"] <= created["server_time"] < now + 100


async def test_the_brands_terms_bound_every_flash_sale(api: Api, clock: ManualClock) -> None:
    """The agreement the product is on the shelf under says whether flash sales may
    be held, how low their price may go and how many units one may hold: a sale at
    price 0 for all the stock is refused, and nothing is reserved."""
    from shelf_support import cooperate, make_product

    brand, host = await api.signup("brand"), await api.signup("host")
    scarf = (await make_product(api, brand, price_minor=3900, stock=300))["id"]
    mug = (await make_product(api, brand, price_minor=1001, stock=300))["id"]
    plain = (await make_product(api, brand, price_minor=3900, stock=300))["id"]
    coop = await cooperate(
        api, brand, host, [scarf, mug], flash_min_price_bps=5000, flash_max_units=40
    )
    assert (coop["flash_min_price_bps"], coop["flash_max_units"]) == (5000, 40)
    no_flash = await cooperate(api, brand, host, [plain], flash_min_price_bps=None)
    assert no_flash["flash_min_price_bps"] is None
    sid = int((await api.live_session(host))["id"])
    for pid in (scarf, mug, plain):
        await api.call(
            "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201
        )
    url = f"/api/sessions/{sid}/flash-sales"
    now = clock.now_ms()
    window = (now + 60_000, now + 120_000)
    for body, status, code, details in (
        (
            sale(scarf, *window, price_minor=0, quantity=40),
            422,
            "flash_price_below_floor",
            {"floor_minor": 1950},
        ),
        (
            sale(scarf, *window, price_minor=1949),
            422,
            "flash_price_below_floor",
            {"floor_minor": 1950},
        ),
        (
            sale(mug, *window, price_minor=500),
            422,
            "flash_price_below_floor",
            {"floor_minor": 501},
        ),  # half of 1001, rounded up
        (
            sale(scarf, *window, price_minor=1950, quantity=41, per_buyer_limit=1),
            422,
            "flash_quantity_over_cap",
            {"max_units": 40},
        ),
        (sale(plain, *window, price_minor=3000), 409, "flash_not_agreed", None),
    ):
        res = await api.call("POST", url, host, json=body, expect=status)
        assert res["error"]["code"] == code, res
        assert res["error"].get("details") == details
    for pid in (scarf, mug, plain):
        assert await stock_of(api, pid) == 300  # nothing reserved by a refusal
    made = await api.call(
        "POST", url, host, json=sale(scarf, *window, price_minor=1950, quantity=40), expect=201
    )
    assert made["price_minor"] == 1950 and made["quantity"] == 40


async def test_an_idle_scheduler_pass_leaves_no_cyclic_garbage(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    """The scheduler looks every second for as long as the server runs: its passes must
    not feed the cyclic collector (built per pass, its statements left ~70 objects of
    cyclic garbage each; issue 27's collector pauses)."""
    a = world.pids[0]
    await shelve(api, world, a)
    await feature.scheduler.stop()
    url = f"/api/sessions/{world.session_id}/flash-sales"
    now = clock.now_ms()
    await api.call("POST", url, world.host, json=sale(a, now + 600_000, now + 700_000), expect=201)
    scheduler = feature.scheduler
    await scheduler.next_due_ms()
    await scheduler.run_due()  # warm: the statements compiled and cached
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            assert await scheduler.next_due_ms() is not None
            assert await scheduler.run_due() == 0
        garbage = gc.collect()
    finally:
        gc.enable()
    assert garbage < 20, f"20 idle passes left {garbage} objects for the cyclic collector"
