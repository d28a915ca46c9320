"""What a viewer sees over the room channel: shelf, pins and flash sales, in order;
and the same final state after reconnecting with ``since``."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from roomclient import SHELF_TYPES, comparable, connect, drain, fold, read_until
from shelf_support import World
from support import Api

from live.clock import ManualClock, iso
from shelf.feature import ShelfFeature


async def test_viewer_sees_shelf_pin_and_flash_in_order(
    api: Api,
    client: TestClient[Any, Any],
    world: World,
    clock: ManualClock,
    feature: ShelfFeature,
) -> None:
    sid, host = world.session_id, world.host
    a, b, _ = world.pids
    ws, hello = await connect(client, sid, world.viewer.token)
    assert hello["snapshot"]["shelf"] == [] and hello["snapshot"]["pinned"] is None
    resume = (hello["seq"], hello["epoch"])
    late, late_hello = await connect(client, sid)  # a guest who will drop out midway

    url = f"/api/sessions/{sid}"
    await api.call("POST", f"{url}/shelf", host, json={"product_id": a}, expect=201)
    await api.call("POST", f"{url}/shelf", host, json={"product_id": b}, expect=201)
    await api.call("PUT", f"{url}/shelf/order", host, json={"product_ids": [b, a]}, expect=200)
    await api.call("POST", f"{url}/pin", host, json={"product_id": a}, expect=200)
    await late.close()
    now = clock.now_ms()
    flash = await api.call(
        "POST",
        f"{url}/flash-sales",
        host,
        json={
            "product_id": a,
            "price_minor": 500,
            "quantity": 10,
            "per_buyer_limit": 2,
            "starts_at": iso(now + 60_000),
            "ends_at": iso(now + 110_000),
        },
        expect=201,
    )
    clock.advance(60_000)
    await feature.scheduler.run_due()
    clock.advance(60_000)
    await feature.scheduler.run_due()
    await api.call("DELETE", f"{url}/pin", host, expect=200)

    events = await read_until(ws, "card.hidden")
    events += await drain(ws)
    shown = [e for e in events if e["type"] in SHELF_TYPES - {"stock.changed"}]
    assert [e["type"] for e in shown] == [
        "shelf.updated",
        "shelf.updated",
        "shelf.updated",
        "card.shown",
        "flash.scheduled",
        "flash.started",
        "flash.ended",
        "card.hidden",
    ]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [i["product_id"] for i in shown[2]["data"]["shelf"]] == [b, a]
    assert shown[3]["data"]["product_id"] == a and shown[3]["data"]["price_minor"] == 1000
    # Countdown events carry the server's clock, whatever the client's clock says.
    scheduled, started, ended = shown[4]["data"], shown[5]["data"], shown[6]["data"]
    # (The test clock moves 1 ms per reading, hence the small tolerance.)
    assert now <= scheduled["server_time"] < now + 100
    assert scheduled["starts_ms"] == flash["starts_ms"] and scheduled["status"] == "scheduled"
    assert now + 60_000 <= started["server_time"] < now + 60_100
    assert started["status"] == "running"
    assert now + 120_000 <= ended["server_time"] < now + 120_200
    assert ended["id"] == flash["id"] and ended["status"] == "ended"
    # Stock moved: 10 reserved for the sale, then given back; the last event says 50.
    stock_a = [
        e["data"] for e in events if e["type"] == "stock.changed" and e["data"]["product_id"] == a
    ]
    assert stock_a and stock_a[-1]["stock"] == 50 and stock_a[-1]["flash"] is None
    assert [s["version"] for s in stock_a] == sorted({s["version"] for s in stock_a})

    fresh, fresh_hello = await connect(client, sid)
    final = fresh_hello["snapshot"]
    assert comparable(fold(hello["snapshot"], events)) == comparable(final)
    # Reconnecting with since/epoch replays exactly the missed events: same final state.
    again, again_hello = await connect(
        client, sid, world.viewer.token, since=resume[0], epoch=resume[1]
    )
    assert again_hello["recovered"] is True and again_hello["snapshot"] is None
    replayed = await drain(again)
    mine = [e["seq"] for e in events if e["type"] in SHELF_TYPES]
    assert [e["seq"] for e in replayed if e["type"] in SHELF_TYPES] == mine
    assert comparable(fold(hello["snapshot"], replayed)) == comparable(final)
    # The guest who left after the pin catches up from its own position.
    back, back_hello = await connect(
        client, sid, since=late_hello["seq"] + 4, epoch=late_hello["epoch"]
    )
    assert back_hello["recovered"] is True
    rest = await drain(back)
    assert rest[0]["seq"] == late_hello["seq"] + 5
    for sock in (ws, fresh, again, back):
        await sock.close()


async def test_hello_snapshot_holds_the_shelf_state(
    api: Api, client: TestClient[Any, Any], world: World
) -> None:
    sid, host = world.session_id, world.host
    a, _, c = world.pids
    for pid in (c, a):
        await api.call(
            "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201
        )
    card = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": a}, expect=200
    )
    await api.call("PATCH", f"/api/products/{a}", world.brand, json={"stock": 3}, expect=200)
    ws, hello = await connect(client, sid)
    snap = hello["snapshot"]
    assert [i["product_id"] for i in snap["shelf"]] == [c, a]
    assert snap["pinned"]["pin_id"] == card["pin_id"]
    assert snap["stock"][str(a)]["stock"] == 3 and snap["stock"][str(a)]["version"] == 1
    assert snap["flash_sales"] == []
    # A title edit is re-announced to the shelves that carry the product.
    await api.call(
        "PATCH", f"/api/products/{c}", world.brand, json={"title": "Renamed"}, expect=200
    )
    events = await read_until(ws, "shelf.updated")
    assert events[-1]["data"]["shelf"][0]["title"] == "Renamed"
    await ws.close()
