"""Stock as orders take it: atomic takes, flash allowances, throttled stock.changed."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from roomclient import connect, drain
from shelf_support import World, shelve
from sqlalchemy import text
from support import Account, Api

from live.clock import ManualClock, iso
from live.db import Database
from live.errors import Conflict
from shelf.feature import ShelfFeature


def feature_db(feature: ShelfFeature) -> Database:
    """The app's Database (the one the orders feature shares)."""
    return feature.publisher.db


@dataclass(frozen=True)
class Taken:
    """What an order sold: the price charged and where the units came from."""

    unit_price_minor: int
    flash_sale_id: int | None


async def take(api: Api, world: World, pid: int, buyer: Account, qty: int = 1) -> Taken:
    """Order ``qty`` units (a new key each time); a 409 refusal raises ``Conflict``."""
    res = await api.client.post(
        f"/api/sessions/{world.session_id}/orders",
        json={"product_id": pid, "quantity": qty},
        headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    body = await res.json()
    if res.status == 409:
        raise Conflict(body["error"]["code"], body["error"]["message"])
    assert res.status == 201, body
    return Taken(body["unit_price_minor"], body["flash_sale_id"])


async def test_concurrent_takes_never_oversell(
    api: Api, world: World, feature: ShelfFeature
) -> None:
    pid = world.pids[0]
    await shelve(api, world, pid)
    await api.call("PATCH", f"/api/products/{pid}", world.brand, json={"stock": 10}, expect=200)
    results = await asyncio.gather(
        *(take(api, world, pid, world.viewer) for _ in range(25)), return_exceptions=True
    )
    sold = [r for r in results if isinstance(r, Taken)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(sold) == 10 and len(refused) == 15
    assert {r.code for r in refused} == {"out_of_stock"}
    assert all(t.unit_price_minor == 1000 and t.flash_sale_id is None for t in sold)
    product = await api.call("GET", f"/api/products/{pid}", expect=200)
    assert product["stock"] == 0 and product["stock_version"] == 11


async def test_flash_takes_use_the_sale(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    pid = world.pids[0]
    await shelve(api, world, pid)
    now = clock.now_ms()
    flash = await api.call(
        "POST",
        f"/api/sessions/{world.session_id}/flash-sales",
        world.host,
        json={
            "product_id": pid,
            "price_minor": 300,
            "quantity": 3,
            "per_buyer_limit": 2,
            "starts_at": iso(now),
            "ends_at": iso(now + 60_000),
        },
        expect=201,
    )
    await feature.scheduler.run_due()
    other = await api.signup("viewer")
    first = await take(api, world, pid, world.viewer, 2)
    assert (first.unit_price_minor, first.flash_sale_id) == (300, flash["id"])
    with pytest.raises(Conflict) as limit:
        await take(api, world, pid, world.viewer, 1)
    assert limit.value.code == "flash_limit_reached"
    with pytest.raises(Conflict) as sold_out:
        await take(api, world, pid, other, 2)
    assert sold_out.value.code == "flash_sold_out"
    await take(api, world, pid, other, 1)
    # A refund during the sale gives the unit back to the sale and the buyer's allowance.
    async with feature_db(feature).transaction() as tx:
        await feature.stock.put_back(
            tx, product_id=pid, quantity=1, buyer_id=other.id, flash_sale_id=flash["id"]
        )
    await take(api, world, pid, other, 1)
    state = await api.call("GET", f"/api/sessions/{world.session_id}/shelf", expect=200)
    assert state["stock"][str(pid)]["flash"] == {"id": flash["id"], "remaining": 0}
    assert state["stock"][str(pid)]["stock"] == 47
    clock.advance(60_000)
    await feature.scheduler.run_due()
    # The sale is over: the regular price again.
    regular = await take(api, world, pid, other, 1)
    assert regular.unit_price_minor == 1000 and regular.flash_sale_id is None
    assert (await api.call("GET", f"/api/products/{pid}", expect=200))["stock"] == 46


async def test_stock_changed_is_throttled_and_the_latest_gets_out(
    api: Api, client: TestClient[Any, Any], world: World, feature: ShelfFeature
) -> None:
    pid = world.pids[0]
    await shelve(api, world, pid)
    ws, _ = await connect(client, world.session_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(40):  # heavy buying for about a second
        await take(api, world, pid, world.viewer)
        await asyncio.sleep(0.025)
    elapsed = loop.time() - started
    events = await drain(ws, quiet_s=0.6)
    changes = [e for e in events if e["type"] == "stock.changed"]
    assert 2 <= len(changes) <= 5 * elapsed + 2
    versions = [e["data"]["version"] for e in changes]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert changes[-1]["data"]["stock"] == 10 and changes[-1]["data"]["version"] == 40
    _, hello = await connect(client, world.session_id)
    assert hello["snapshot"]["stock"][str(pid)]["stock"] == 10
    assert hello["snapshot"]["stock"][str(pid)]["version"] == 40
    await ws.close()


async def test_sweep_announces_what_was_left_unannounced(
    api: Api, client: TestClient[Any, Any], world: World, feature: ShelfFeature
) -> None:
    pid = world.pids[0]
    await shelve(api, world, pid)
    async with feature_db(feature).transaction() as tx:  # a change nobody announced
        await feature.stock.set_stock(tx, pid, 7)
    ws, _ = await connect(client, world.session_id)
    assert await feature.publisher.sweep() == 1
    assert await feature.publisher.sweep() == 0
    events = [e for e in await drain(ws) if e["type"] == "stock.changed"]
    assert [e["data"]["stock"] for e in events] == [7]
    await ws.close()


@pytest.mark.parametrize("backend", ["postgres-redis"], indirect=True)  # row locks
async def test_announcing_stock_never_waits_for_the_product_row(
    api: Api, client: TestClient[Any, Any], world: World, feature: ShelfFeature
) -> None:
    """A buyer holds the product row (a take in flight): the announcement still goes out
    at once. Buyers queue on that row, so an announcement that locked it stalled them."""
    pid = world.pids[0]
    await shelve(api, world, pid)
    ws, _ = await connect(client, world.session_id)
    async with feature_db(feature).transaction() as tx:
        await feature.stock.set_stock(tx, pid, 7)
    async with feature_db(feature).engine.connect() as buyer:
        # the row lock a take holds until it commits
        take = text("UPDATE products SET stock = stock - 1 WHERE id = :id")
        await buyer.execute(take, {"id": pid})
        assert await asyncio.wait_for(feature.publisher.publish(pid), timeout=5)
        await buyer.rollback()
    events = [e for e in await drain(ws) if e["type"] == "stock.changed"]
    assert [e["data"]["stock"] for e in events] == [7]
    assert not await feature.publisher.publish(pid)  # that version is announced
    await ws.close()
