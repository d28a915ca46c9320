"""A scripted session on a manual clock, with real aiortc peers through WHIP/WHEP and
real room sockets: the stats come out exactly as scripted.

    second 0  publisher live
    second 1  viewer A (signed in) starts watching
    second 2  guest B starts watching; the host pins the mug; A and B see the card,
              A taps it and buys two; A follows the host
    second 3  A and B leave (DELETE)
    second 4  their room sockets close
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import insert
from support import Account, Api, checked, poster, room_events

from app import Settings, create_app, db_key, hub_key, room_log_key
from live.clock import ManualClock
from live.models import LiveSession, WatchInterval
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.feature import audience_key
from shelf.feature import cards_key

T0 = 1_764_000_000_000  # a whole second
S0 = T0 // 1000
PRICE = 2_500


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audience_sample_s": 0})  # the test samples by hand


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings, clock=clock))


async def _room_event(app: web.Application, sid: int, type_: str) -> None:
    room_log = app[room_log_key]
    async with asyncio.timeout(10):
        while True:
            if any(event["type"] == type_ for event in await room_events(room_log, sid)):
                return
            await asyncio.sleep(0.02)


async def _on_shelf(
    api: Api, host: Account, brand: Account, sid: int, title: str = "Mug", price: int = PRICE
) -> int:
    """A product of ``brand``'s under an accepted agreement, on session ``sid``'s shelf."""
    product = await api.call(
        "POST",
        "/api/products",
        brand,
        expect=201,
        json={
            "title": title,
            "price_minor": price,
            "currency": "EUR",
            "stock": 20,
            "commission_bps": 1000,
        },
    )
    coop = await api.call(
        "POST",
        "/api/cooperations",
        brand,
        expect=201,
        json={"host_id": host.id, "product_ids": [product["id"]], "commission_bps": 1000},
    )
    await api.call("POST", f"/api/cooperations/{coop['id']}/accept", host, expect=200)
    await api.call(
        "POST", f"/api/sessions/{sid}/shelf", host, expect=201, json={"product_id": product["id"]}
    )
    return int(product["id"])


async def _shop(api: Api) -> tuple[Account, Account, int, int]:
    host, brand = await api.signup("host"), await api.signup("brand")
    sid = int((await api.live_session(host))["id"])
    return host, brand, sid, await _on_shelf(api, host, brand, sid)


async def test_scripted_session_gives_exact_stats(
    api: Api, app: web.Application, clock: ManualClock, tmp_path: Path
) -> None:
    client = api.client
    host, brand, sid, pid = await _shop(api)
    viewer = await api.signup("viewer")
    # A watched an earlier show of this host: A is a returning viewer.
    async with app[db_key].transaction() as tx:
        earlier = (
            await tx.execute(
                insert(LiveSession).returning(LiveSession.id),
                [
                    {
                        "host_id": host.id,
                        "title": "Earlier",
                        "status": "ended",
                        "created_ms": T0 - 10**7,
                    }
                ],
            )
        ).scalar_one()
        await tx.execute(
            insert(WatchInterval),
            [
                {
                    "session_id": earlier,
                    "resource_id": "earlier-a",
                    "user_id": viewer.id,
                    "joined_ms": T0 - 10**6,
                    "left_ms": T0 - 10**6 + 60_000,
                    "reason": "deleted",
                }
            ],
        )
    audience = app[audience_key]
    config = MediaConfig(ice_addresses=("127.0.0.1",), recordings_dir=tmp_path / "rec")
    pub = PublisherClient(config)
    a = ViewerClient(config, decode=False)
    b = ViewerClient(config, decode=False)
    try:
        # second 0: the publisher goes live
        await pub.connect(poster(client, f"/whip/{sid}", host))
        await _room_event(app, sid, "live.started")  # marked at T0, before the clock moves
        await audience.sample()

        # second 1: A watches
        clock.advance(1000)
        await a.connect(poster(client, f"/whep/{sid}", viewer))
        await a.wait_for("video", encoded=5, within_s=15)
        await audience.sample()

        # second 2: B (a guest) watches, the host pins, A and B see the card, A buys
        clock.advance(1000)
        await b.connect(poster(client, f"/whep/{sid}", None))
        await b.wait_for("video", encoded=5, within_s=15)
        pin = await api.call(
            "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": pid}, expect=200
        )
        ws_a = await client.ws_connect(f"/api/sessions/{sid}/ws", headers=viewer.headers)
        ws_b = await client.ws_connect(f"/api/sessions/{sid}/ws")
        for ws in (ws_a, ws_b):
            assert (await ws.receive_json())["type"] == "hello"
            await ws.send_json({"type": "card.impression", "pin_id": pin["pin_id"]})
            await ws.send_json({"type": "card.impression", "pin_id": pin["pin_id"]})  # once
        await ws_a.send_json({"type": "card.click", "pin_id": pin["pin_id"], "ref": "c"})
        await ws_a.send_json({"type": "card.click", "pin_id": 10**9, "ref": "bad"})
        while True:
            msg = await ws_a.receive_json()
            if msg["type"] == "error":
                assert (msg["code"], msg["ref"]) == ("pin_not_found", "bad")
                break
        await api.call(
            "POST",
            f"/api/sessions/{sid}/orders",
            viewer,
            expect=201,
            json={"product_id": pid, "quantity": 2},
            headers={"Idempotency-Key": "a-1"},
        )
        await api.call("POST", f"/api/hosts/{host.id}/follow", viewer, expect=200)
        await audience.sample()

        # second 3: both leave
        clock.advance(1000)
        for v in (a, b):
            assert v.resource is not None
            res = await client.delete(v.resource.location)
            assert res.status == 200
        await audience.sample()
        await app[cards_key].flush()

        # second 4: their room sockets close too
        clock.advance(1000)
        await ws_a.close()
        await ws_b.close()
        for _ in range(500):  # the server sees the closes a moment later
            if not app[hub_key].local_sockets(sid):
                break
            await asyncio.sleep(0.01)
        assert app[hub_key].local_sockets(sid) == 0
        await audience.sample()
    finally:
        for peer in (a, b, pub):
            await peer.close()

    stats = await api.call("GET", f"/api/sessions/{sid}/stats", host, expect=200)
    aud = stats["audience"]
    assert [
        (
            c["second"] - S0,
            c["media_viewers"],
            c["sockets"],
            c["joins"],
            c["leaves"],
            c["socket_joins"],
            c["socket_leaves"],
        )
        for c in aud["curve"]
    ] == [
        (0, 0, 0, 0, 0, 0, 0),
        (1, 1, 0, 1, 0, 0, 0),
        (2, 2, 2, 1, 0, 2, 0),
        (3, 0, 2, 0, 2, 0, 0),
        (4, 0, 0, 0, 0, 0, 2),
    ]
    assert (aud["viewers"], aud["average_watch_s"], aud["median_watch_s"]) == (2, 1.5, 1.5)
    assert aud["peak_viewers"] == 2
    assert aud["retention"] == [
        {"t": 0, "share": 1.0},
        {"t": 1, "share": 0.5},
        {"t": 2, "share": 0.0},
    ]
    assert aud["leave_reasons"] == {"deleted": 2}
    (drop,) = aud["drop_offs"]
    assert (drop["second"] - S0, drop["leaves"], drop["viewers_before"]) == (3, 2, 2)
    assert [(m["kind"], m["seconds_before"]) for m in drop["after"]] == [
        ("pin.start", 1.0),
        ("live.started", 3.0),
    ]
    assert drop["after"][0]["title"] == "Mug"

    (window,) = stats["funnel"]["pins"]
    assert window["pin_id"] == pin["pin_id"]
    assert window["start_ms"] == T0 + 2000
    assert {
        k: window[k]
        for k in (
            "viewers_at_start",
            "peak_viewers",
            "impressions",
            "clicks",
            "orders",
            "units",
            "gmv_minor",
            "click_rate",
            "conversion_rate",
        )
    } == {
        "viewers_at_start": 2,
        "peak_viewers": 2,
        "impressions": 2,
        "clicks": 1,
        "orders": 1,
        "units": 2,
        "gmv_minor": {"EUR": 2 * PRICE},
        "click_rate": 0.5,
        "conversion_rate": 0.5,
    }
    (product,) = stats["funnel"]["products"]
    assert (product["product_id"], product["title"], product["pins"], product["units"]) == (
        pid,
        "Mug",
        1,
        2,
    )
    assert stats["funnel"]["session"] == {
        "impressions": 2,
        "clicks": 1,
        "orders": 1,
        "units": 2,
        "gmv_minor": {"EUR": 2 * PRICE},
        "orders_outside_pins": 0,
    }
    fans = stats["fans"]
    assert (fans["followers"], fans["followers_gained"], fans["followers_lost"]) == (1, 1, 0)
    assert fans["viewers"] == {"returning": 1, "new": 0, "guests": 1}
    assert fans["followers_over_time"][-1]["followers"] == 1

    # Who may read them: the host (above), a brand on the shelf; nobody else.
    await api.call("GET", f"/api/sessions/{sid}/stats", brand, expect=200)
    refusals = [
        (await api.signup("brand"), 403, "not_on_this_shelf"),
        (await api.signup("host"), 403, "not_your_session"),
        (viewer, 403, "role_not_allowed"),
        (None, 401, "sign_in_required"),
    ]
    for who, status, code in refusals:
        body = await api.call("GET", f"/api/sessions/{sid}/stats", who, expect=status)
        assert body["error"]["code"] == code


async def test_a_guest_who_signs_in_while_watching_counts_as_the_user(
    api: Api, app: web.Application, tmp_path: Path
) -> None:
    client = api.client
    host, _brand, sid, _pid = await _shop(api)
    other_sid = int((await api.live_session(host, "Other show"))["id"])
    viewer = await api.signup("viewer")
    config = MediaConfig(ice_addresses=("127.0.0.1",), recordings_dir=tmp_path / "rec")
    pub = PublisherClient(config)
    guest = ViewerClient(config, decode=False)
    try:
        await pub.connect(poster(client, f"/whip/{sid}", host))
        await guest.connect(poster(client, f"/whep/{sid}", None))  # no token: a guest
        await guest.wait_for("video", encoded=5, within_s=15)
        assert guest.resource is not None
        resource_id = guest.resource.location.rsplit("/", 1)[1]

        async def refused(path_sid: int, token: str | None, resource: str) -> str:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with client.ws_connect(f"/api/sessions/{path_sid}/ws", headers=headers) as ws:
                assert (await ws.receive_json())["type"] == "hello"
                await ws.send_json({"type": "watch.identify", "resource_id": resource, "ref": 1})
                await ws.send_json({"type": "ping", "ref": 2})
                while True:
                    msg = await ws.receive_json(timeout=3)
                    if msg["type"] == "error" and msg["ref"] == 1:
                        return str(msg["code"])
                    if msg["type"] == "pong":
                        return "accepted"

        assert await refused(sid, None, resource_id) == "sign_in_required"
        assert await refused(sid, viewer.token, "no-such-resource") == "not_found"
        assert await refused(other_sid, viewer.token, resource_id) == "not_found"
        assert await refused(sid, viewer.token, resource_id) == "accepted"
        assert await refused(sid, viewer.token, resource_id) == "not_found"  # claimed once
        await app[audience_key].sample()
    finally:
        for peer in (guest, pub):
            await peer.close()
    await app[audience_key].sample()
    stats = await api.call("GET", f"/api/sessions/{sid}/stats", host, expect=200)
    assert stats["fans"]["viewers"] == {"returning": 0, "new": 1, "guests": 0}
    assert stats["audience"]["viewers"] == 1


async def test_a_brand_reads_its_own_products_figures_and_the_audience(api: Api) -> None:
    """Two brands on one show: each reads its own product's pins, orders and GMV, the
    session's totals made of them, and the show's audience; never the other brand's
    figures nor the host's followers. The host reads everything."""
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    sid = int((await api.live_session(host))["id"])
    brands, products = [], []
    for price in (PRICE, 3 * PRICE):
        brand = await api.signup("brand")
        product = {"id": await _on_shelf(api, host, brand, sid, f"P{price}", price)}
        await api.call(
            "POST",
            f"/api/sessions/{sid}/pin",
            host,
            json={"product_id": product["id"]},
            expect=200,
        )
        for n in range(len(brands) + 1):  # one order of the first, two of the second
            await api.call(
                "POST",
                f"/api/sessions/{sid}/orders",
                viewer,
                json={"product_id": product["id"]},
                headers={"Idempotency-Key": f"{product['id']}-{n}"},
                expect=201,
            )
        brands.append(brand)
        products.append(int(product["id"]))
    await api.call("POST", f"/api/hosts/{host.id}/follow", viewer, expect=200)

    whole = await api.call("GET", f"/api/sessions/{sid}/stats", host, expect=200)
    assert sorted(p["product_id"] for p in whole["funnel"]["products"]) == sorted(products)
    assert whole["funnel"]["session"]["orders"] == 3 and "followers" in whole["fans"]
    for brand, product, orders, price in zip(
        brands, products, (1, 2), (PRICE, 3 * PRICE), strict=True
    ):
        mine = await api.call("GET", f"/api/sessions/{sid}/stats", brand, expect=200)
        funnel = mine["funnel"]
        assert [p["product_id"] for p in funnel["products"]] == [product]
        assert {p["product_id"] for p in funnel["pins"]} == {product}
        assert funnel["session"]["orders"] == orders
        assert funnel["session"]["gmv_minor"] == {"EUR": orders * price}
        assert mine["fans"] == {"viewers": whole["fans"]["viewers"]}
        assert mine["audience"]["viewers"] == whole["audience"]["viewers"]
