"""A flash sale holds the brand's units only from its start (or a short lead time
before), and a sale outside the agreed terms waits for the brand when the agreement
says so (issue 17: "a host can give a brand's stock away")."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from roomclient import connect, drain, read_until
from shelf_support import cooperate, make_product, sale, stock_of
from support import Account, Api

from live.clock import ManualClock
from shelf.feature import ShelfFeature

DAY_MS = 86_400_000
LEAD_MS = 60_000  # the default LIVESHELF_FLASH_RESERVE_LEAD_S


async def shop(api: Api, *, stock: int, price_minor: int = 3900, **terms: Any) -> dict[str, Any]:
    b, h, v = [await api.signup(role) for role in ("brand", "host", "viewer")]
    pid = (await make_product(api, b, price_minor=price_minor, stock=stock))["id"]
    await cooperate(api, b, h, [pid], **terms)
    sid = int((await api.live_session(h))["id"])
    await api.call("POST", f"/api/sessions/{sid}/shelf", h, json={"product_id": pid}, expect=201)
    return {"brand": b, "host": h, "viewer": v, "pid": pid, "sid": sid}


async def buy(api: Api, sid: int, pid: int, buyer: Account, quantity: int) -> dict[str, Any]:
    res = await api.client.post(
        f"/api/sessions/{sid}/orders",
        json={"product_id": pid, "quantity": quantity},
        headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert res.status == 201, await res.text()
    return dict(await res.json())


async def test_a_sale_weeks_ahead_holds_no_stock_until_it_starts(
    api: Api, client: TestClient[Any, Any], clock: ManualClock, feature: ShelfFeature
) -> None:
    """The review's finding: a 300-unit sale 29 days ahead took all 300 units at once
    and regular orders got 409 out_of_stock. Now regular orders go on until the lead
    time before the start; the sale then holds what is left (fewer than asked: it is
    announced again with its real quantity)."""
    s = await shop(api, stock=300, flash_min_price_bps=1)
    await feature.scheduler.stop()  # the test moves the clock and runs the scheduler
    url = f"/api/sessions/{s['sid']}/flash-sales"
    starts = clock.now_ms() + 29 * DAY_MS
    made = await api.call(
        "POST",
        url,
        s["host"],
        json=sale(s["pid"], starts, starts + 3_600_000, quantity=300, per_buyer_limit=5),
        expect=201,
    )
    assert made["status"] == "scheduled" and made["reserved"] is False
    assert await stock_of(api, s["pid"]) == 300
    assert (await buy(api, s["sid"], s["pid"], s["viewer"], 2))["status"] == "paid"
    assert await stock_of(api, s["pid"]) == 298
    ws, _ = await connect(client, s["sid"])

    clock.advance(starts - LEAD_MS - clock.now_ms() - 1000)
    assert await feature.scheduler.run_due() == 0  # not yet within the lead time
    assert await stock_of(api, s["pid"]) == 298
    clock.advance(2000)
    assert await feature.scheduler.run_due() == 1
    again = [e for e in await read_until(ws, "flash.scheduled") if e["type"] == "flash.scheduled"]
    assert again[0]["data"]["id"] == made["id"]
    assert again[0]["data"]["quantity"] == 298 and again[0]["data"]["reserved"] is True
    assert await stock_of(api, s["pid"]) == 0
    assert await feature.scheduler.run_due() == 0  # reserved once

    clock.advance(LEAD_MS)
    assert await feature.scheduler.run_due() == 1
    started = [e for e in await read_until(ws, "flash.started") if e["type"] == "flash.started"]
    assert started[0]["data"]["quantity"] == 298 and started[0]["data"]["remaining"] == 298
    clock.advance(3_600_000)
    assert await feature.scheduler.run_due() == 1  # ended: the units go back
    assert await stock_of(api, s["pid"]) == 298
    await ws.close()


async def test_a_sale_with_nothing_left_at_its_start_is_cancelled(
    api: Api, client: TestClient[Any, Any], clock: ManualClock, feature: ShelfFeature
) -> None:
    s = await shop(api, stock=5, flash_min_price_bps=1)
    await feature.scheduler.stop()
    url = f"/api/sessions/{s['sid']}/flash-sales"
    starts = clock.now_ms() + 10 * LEAD_MS
    made = await api.call(
        "POST",
        url,
        s["host"],
        json=sale(s["pid"], starts, starts + 60_000, quantity=5),
        expect=201,
    )
    await api.call("PATCH", f"/api/products/{s['pid']}", s["brand"], json={"stock": 0}, expect=200)
    ws, _ = await connect(client, s["sid"])
    clock.advance(10 * LEAD_MS)
    assert await feature.scheduler.run_due() == 1
    events = await read_until(ws, "flash.cancelled")
    cancelled = [e["data"] for e in events if e["type"] == "flash.cancelled"]
    assert cancelled[0]["id"] == made["id"] and cancelled[0]["cancel_reason"] == "out_of_stock"
    assert not any(e["type"] == "flash.started" for e in events)
    assert await stock_of(api, s["pid"]) == 0
    listed = (await api.call("GET", url, expect=200))["flash_sales"]
    assert [(f["status"], f["reserved"]) for f in listed] == [("cancelled", False)]
    # Cancelled for good: nothing later gives back units it never held.
    await api.call("PATCH", f"/api/products/{s['pid']}", s["brand"], json={"stock": 3}, expect=200)
    clock.advance(120_000)
    assert await feature.scheduler.run_due() == 0
    assert await stock_of(api, s["pid"]) == 3
    await ws.close()


async def test_a_sale_beyond_the_terms_waits_for_the_brand(
    api: Api, client: TestClient[Any, Any], clock: ManualClock, feature: ShelfFeature
) -> None:
    """With ``flash_ask_brand`` a sale under the floor or over the cap is not refused
    but waits; viewers never see it; the brand sees it with the terms, and approves or
    declines, and the room hears the answer."""
    s = await shop(
        api, stock=300, flash_min_price_bps=5000, flash_max_units=40, flash_ask_brand=True
    )
    await feature.scheduler.stop()
    brand, host, sid, pid = s["brand"], s["host"], s["sid"], s["pid"]
    url = f"/api/sessions/{sid}/flash-sales"
    approvals = f"/api/brands/{brand.id}/flash-approvals"
    ws, _ = await connect(client, sid)
    now = clock.now_ms()
    giveaway = await api.call(
        "POST",
        url,
        host,
        json=sale(pid, now + 600_000, now + 900_000, price_minor=0, quantity=40),
        expect=201,
    )
    assert giveaway["status"] == "pending_approval" and await stock_of(api, pid) == 300
    # The window is held: no second sale over it, pending or not.
    res = await api.call(
        "POST",
        url,
        host,
        json=sale(pid, now + 700_000, now + 800_000, price_minor=2000),
        expect=409,
    )
    assert res["error"]["code"] == "flash_sale_overlaps"
    assert not [e for e in await drain(ws) if e["type"].startswith("flash.")]
    for who in (None, s["viewer"], brand):
        assert (await api.call("GET", url, who, expect=200))["flash_sales"] == []
    mine = (await api.call("GET", url, host, expect=200))["flash_sales"]
    assert [(f["id"], f["status"]) for f in mine] == [(giveaway["id"], "pending_approval")]

    waiting = (await api.call("GET", approvals, brand, expect=200))["flash_sales"]
    assert [w["id"] for w in waiting] == [giveaway["id"]]
    assert waiting[0]["terms"]["floor_minor"] == 1950 and waiting[0]["terms"]["max_units"] == 40
    assert waiting[0]["host"]["id"] == host.id and waiting[0]["product"]["price_minor"] == 3900
    other = await api.signup("brand")
    for who, status, code in (
        (other, 403, "not_your_product"),
        (host, 403, "role_not_allowed"),
        (s["viewer"], 403, "role_not_allowed"),
    ):
        res = await api.call("GET", f"/api/brands/{brand.id}/flash-approvals", who, expect=status)
        assert res["error"]["code"] == code
        answer = f"/api/flash-sales/{giveaway['id']}/approve"
        res = await api.call("POST", answer, who, expect=status)
        assert res["error"]["code"] == code
    await api.call("POST", "/api/flash-sales/999999/approve", brand, expect=404)

    declined = await api.call(
        "POST", f"/api/flash-sales/{giveaway['id']}/decline", brand, expect=200
    )
    assert declined["status"] == "declined"
    heard = [e for e in await read_until(ws, "flash.declined") if e["type"] == "flash.declined"]
    assert heard[0]["data"]["id"] == giveaway["id"]
    res = await api.call("POST", f"/api/flash-sales/{giveaway['id']}/approve", brand, expect=409)
    assert res["error"]["code"] == "flash_sale_not_pending"
    assert res["error"]["details"]["status"] == "declined"
    assert (await api.call("GET", approvals, brand, expect=200))["flash_sales"] == []

    # Over the cap, approved: scheduled like any other sale, and it runs.
    big = await api.call(
        "POST",
        url,
        host,
        json=sale(pid, now + 600_000, now + 900_000, price_minor=2000, quantity=60),
        expect=201,
    )
    assert big["status"] == "pending_approval"
    approved = await api.call("POST", f"/api/flash-sales/{big['id']}/approve", brand, expect=200)
    assert approved["status"] == "scheduled" and approved["quantity"] == 60
    heard = [e for e in await read_until(ws, "flash.scheduled") if e["type"] == "flash.scheduled"]
    assert heard[0]["data"]["id"] == big["id"]
    clock.advance(600_000)
    assert await feature.scheduler.run_due() == 1
    assert await stock_of(api, pid) == 240

    # Unanswered until its window passed: cancelled, and too late to approve.
    late = await api.call(
        "POST",
        url,
        host,
        json=sale(pid, now + 1_000_000, now + 1_100_000, price_minor=100),
        expect=201,
    )
    clock.advance(600_000)
    res = await api.call("POST", f"/api/flash-sales/{late['id']}/approve", brand, expect=409)
    assert res["error"]["code"] == "flash_sale_expired"
    assert await feature.scheduler.run_due() == 2  # the big one ends, the late one expires
    statuses = {
        f["id"]: (f["status"], f["cancel_reason"])
        for f in (await api.call("GET", url, host, expect=200))["flash_sales"]
    }
    assert statuses[late["id"]] == ("cancelled", "not_approved")
    assert await stock_of(api, pid) == 300
    await ws.close()


async def test_the_host_withdraws_a_pending_sale(
    api: Api, clock: ManualClock, feature: ShelfFeature
) -> None:
    s = await shop(api, stock=50, flash_min_price_bps=9000, flash_ask_brand=True)
    url = f"/api/sessions/{s['sid']}/flash-sales"
    now = clock.now_ms()
    made = await api.call(
        "POST", url, s["host"], json=sale(s["pid"], now + 600_000, now + 700_000), expect=201
    )
    assert made["status"] == "pending_approval"
    gone = await api.call("DELETE", f"{url}/{made['id']}", s["host"], expect=200)
    assert gone["status"] == "cancelled"
    res = await api.call("POST", f"/api/flash-sales/{made['id']}/approve", s["brand"], expect=409)
    assert res["error"]["details"]["status"] == "cancelled"


async def test_asking_the_brand_needs_flash_sales_agreed(api: Api) -> None:
    brand, host = await api.signup("brand"), await api.signup("host")
    pid = (await make_product(api, brand))["id"]
    body = {
        "host_id": host.id,
        "product_ids": [pid],
        "commission_bps": 1000,
        "flash_ask_brand": True,
    }
    res = await api.call("POST", "/api/cooperations", brand, json=body, expect=422)
    assert res["error"]["code"] == "invalid_input"


async def test_a_show_holds_at_most_50_planned_sales(api: Api, clock: ManualClock) -> None:
    """Every viewer's snapshot carries the scheduled and running sales: their number
    is bounded, whatever the creation rate lets through over time."""
    s = await shop(api, stock=300, flash_min_price_bps=1)
    url = f"/api/sessions/{s['sid']}/flash-sales"
    start = clock.now_ms() + 600_000
    for i in range(50):
        window = (start + i * 10_000, start + i * 10_000 + 5_000)
        await api.call("POST", url, s["host"], json=sale(s["pid"], *window), expect=201)
    late = (start + 600_000, start + 605_000)
    res = await api.call("POST", url, s["host"], json=sale(s["pid"], *late), expect=409)
    assert res["error"]["code"] == "too_many_flash_sales_planned"
    assert res["error"]["details"] == {"max_planned": 50}
    first = (await api.call("GET", url, expect=200))["flash_sales"][0]
    await api.call("DELETE", f"{url}/{first['id']}", s["host"], expect=200)
    await api.call("POST", url, s["host"], json=sale(s["pid"], *late), expect=201)
