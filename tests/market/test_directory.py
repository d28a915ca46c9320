"""The creator directory: filters, sorts and pages over several hosts; its verified
figures equal the same figures recomputed here from the raw rows (follows, audience
seconds, watch intervals, orders placed and refunded through the API)."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from market_support import DAY, T0, buy, publish, service, shop
from sqlalchemy import insert, select, update
from support import Account, Api, checked

from app import Settings, create_app, db_key
from live import analytics
from live.clock import ManualClock, iso
from live.models import AudienceSecond, Follow, LiveSession, WatchInterval
from market.feature import figures_key
from shelf.order_models import Order

WINDOW = 30 * DAY


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    """On the scripted clock; the periodic pass an hour apart (the tests call it)."""
    hourly = settings.model_copy(update={"market_figures_every_s": 3600.0})
    yield from checked(create_app(hourly, clock=clock))


async def _follow(api: Api, host: Account, n: int) -> None:
    for _ in range(n):
        fan = await api.signup("viewer")
        await api.call("POST", f"/api/hosts/{host.id}/follow", fan, expect=200)


async def _ids(api: Api, query: str) -> list[int]:
    answer = await api.call("GET", f"/api/creators{query}", None, expect=200)
    return [c["host_id"] for c in answer["creators"]]


async def test_filters_sorts_and_pages(api: Api, app: web.Application) -> None:
    h1, h2, h3, h4 = [await api.signup("host") for _ in range(4)]
    await publish(api, h1, [service("live_segment", 5_000), service("shelf_slot", 2_000)])
    await publish(api, h2, [service("shelf_slot", 1_000, currency="USD")])
    await publish(api, h3, [service("shelf_slot", 8_000)])
    await publish(api, h4, [service("live_segment", 3_000)])
    unlisted = await api.signup("host")  # no card: not in the directory
    profiles = [
        (h1, {"tags": ["beauty", "skincare"], "region": "FR"}),
        (h2, {"tags": ["gaming"], "region": "US-CA"}),
        (h3, {"tags": ["beauty"], "region": "DE"}),
        (unlisted, {"tags": ["beauty"], "region": "FR"}),
    ]
    for host, body in profiles:
        await api.call("PUT", "/api/me/creator-profile", host, json=body, expect=200)
    for host, fans in ((h1, 3), (h2, 1), (h3, 2)):
        await _follow(api, host, fans)
    assert await app[figures_key].run_once() == 4

    assert await _ids(api, "") == [h1.id, h3.id, h2.id, h4.id]  # by followers
    paged, after = [], ""
    for _ in range(5):
        answer = await api.call("GET", f"/api/creators?limit=1{after}", None, expect=200)
        paged += [c["host_id"] for c in answer["creators"]]
        if answer["next_after"] is None:
            break
        after = f"&after={answer['next_after']}"
    assert paged == [h1.id, h3.id, h2.id, h4.id]
    assert await _ids(api, "?tag=beauty") == [h1.id, h3.id]
    assert await _ids(api, "?region=US") == [h2.id]
    assert await _ids(api, "?region=US-CA") == [h2.id]
    assert await _ids(api, "?region=FR&tag=skincare") == [h1.id]
    assert await _ids(api, "?kind=live_segment") == [h1.id, h4.id]
    assert await _ids(api, "?currency=EUR&max_price=3000") == [h1.id, h4.id]
    assert await _ids(api, "?currency=EUR&min_price=4000&max_price=9000") == [h1.id, h3.id]
    assert await _ids(api, "?currency=USD") == [h2.id]
    assert await _ids(api, "?min_followers=2") == [h1.id, h3.id]
    assert await _ids(api, "?sort=price&currency=EUR") == [h1.id, h4.id, h3.id]
    by_price = "?sort=price&currency=EUR&kind=live_segment"
    assert await _ids(api, by_price) == [h4.id, h1.id]
    answer = await api.call("GET", f"/api/creators{by_price}&limit=1", None, expect=200)
    assert answer["next_after"] == f"3000.{h4.id}"
    rest = f"/api/creators{by_price}&limit=1&after={answer['next_after']}"
    assert [c["host_id"] for c in (await api.call("GET", rest, None))["creators"]] == [h1.id]

    one = await api.call("GET", f"/api/creators/{h1.id}", None, expect=200)
    assert one["profile"]["tags"] == ["beauty", "skincare"]
    assert one["rate_card"]["version"] == 1 and one["verified"]["followers"] == 3
    refusals = [
        ("?sort=gmv", 400, "currency_required"),
        ("?min_price=10", 400, "currency_required"),
        ("?currency=EUR&min_price=10&max_price=5", 400, "invalid_query"),
        ("?sort=fame", 400, "invalid_query"),
        ("?tag=Beauty", 400, "invalid_query"),
        ("?currency=eur", 400, "invalid_query"),
        ("?after=abc", 400, "invalid_query"),
        ("?limit=51", 422, "page_too_large"),
        (f"/{unlisted.id}", 404, "creator_not_found"),
        ("/999999", 404, "creator_not_found"),
    ]
    for query, status, code in refusals:
        answer = await api.call("GET", f"/api/creators{query}", None, expect=status)
        assert answer["error"]["code"] == code, query


async def test_verified_figures_are_the_raw_rows_recomputed(
    api: Api, app: web.Application, clock: ManualClock
) -> None:
    brand, host, session_id, product_id = await shop(api, 2_000)
    db = app[db_key]
    other = await api.signup("host")
    await _follow(api, host, 3)
    leaver = await api.signup("viewer")
    await api.call("POST", f"/api/hosts/{host.id}/follow", leaver, expect=200)
    await api.call("DELETE", f"/api/hosts/{host.id}/follow", leaver, expect=200)

    # orders through the API: four kept, one refunded whole, one in part, one aged
    buyer = await api.signup("viewer")
    placed = []
    for quantity in (1, 2, 1, 3, 2, 1, 1):
        placed.append(await buy(api, buyer, session_id, product_id, quantity))
    await api.call(
        "POST", f"/api/orders/{placed[4]}/refund", brand, json={"quantity": 2}, expect=200
    )
    await api.call(
        "POST", f"/api/orders/{placed[5]}/refund", brand, json={"quantity": 1}, expect=200
    )
    await api.call(  # a part of an order of three
        "POST", f"/api/orders/{placed[3]}/refund", brand, json={"quantity": 1}, expect=200
    )
    async with db.transaction() as tx:  # an order paid 31 days ago
        await tx.execute(update(Order).where(Order.id == placed[6]).values(paid_ms=T0 - 31 * DAY))

    # the audience: two shows in the window (one seen by two processes), one before it
    async with db.transaction() as tx:
        sessions = (
            (
                await tx.execute(
                    insert(LiveSession).returning(LiveSession.id),
                    [
                        {"host_id": host.id, "title": t, "status": "ended", "created_ms": T0 - ago}
                        | {"ended_ms": T0 - ago + 3_600_000}
                        for t, ago in (("a", 2 * DAY), ("b", DAY), ("old", 40 * DAY))
                    ],
                )
            )
            .scalars()
            .all()
        )
        a, b, old = sessions
        s_a, s_b, s_old = ((T0 - ago) // 1000 for ago in (2 * DAY, DAY, 40 * DAY))
        seconds = [
            (a, s_a, "p1", 4), (a, s_a, "p2", 3), (a, s_a + 1, "p1", 5), (a, s_a + 4, "p1", 2),
            (b, s_b, "p1", 1), (b, s_b + 1, "p1", 9), (b, s_b + 2, "p2", 6),
            (old, s_old, "p1", 50),
        ]  # fmt: skip
        await tx.execute(
            insert(AudienceSecond),
            [
                {"session_id": sid, "second": sec, "process": proc, "media_viewers": n}
                | {"sockets": n, "joins": 0, "leaves": 0}
                for sid, sec, proc, n in seconds
            ],
        )
        ms_a, ms_b, ms_old = (s * 1000 for s in (s_a, s_b, s_old))
        intervals = [
            (a, "r1", buyer.id, None, ms_a, ms_a + 60_000),
            (a, "r2", buyer.id, None, ms_a + 30_000, ms_a + 90_000),  # overlaps r1
            (a, "r3", None, "g:guest", ms_a, ms_a + 20_000),
            (b, "r4", buyer.id, None, ms_b, ms_b + 45_000),
            (b, "r5", None, None, ms_b, None),  # still open: counts until now
            (old, "r6", buyer.id, None, ms_old, ms_old + 999_000),
        ]
        await tx.execute(
            insert(WatchInterval),
            [
                {"session_id": sid, "resource_id": rid, "user_id": uid, "viewer": person}
                | {"joined_ms": joined, "left_ms": left, "reason": "deleted" if left else None}
                for sid, rid, uid, person, joined, left in intervals
            ],
        )

    await publish(api, other, [service(price=900)])
    first = await publish(api, host, [service("live_segment", 4_000)])
    # published first card: figures at once, as of now
    verified = (await api.call("GET", f"/api/creators/{host.id}", None, expect=200))["verified"]
    assert verified["as_of_ms"] == T0
    clock.advance(60_000)
    assert await app[figures_key].run_once() == 2
    creator = await api.call("GET", f"/api/creators/{host.id}", None, expect=200)
    assert creator["rate_card"] == first
    verified = creator["verified"]
    assert verified["as_of_ms"] == T0 + 60_000
    assert verified == await _recomputed(db, host.id, T0 + 60_000)
    # and the figures themselves, counted by hand
    assert verified["followers"] == 3
    assert verified["peak_concurrent_viewers"] == 9
    assert verified["orders"] == 3  # 0, 1, 2 (3 refunded in part, 4 and 5 whole, 6 aged)
    assert verified["gmv"] == [{"currency": "EUR", "orders": 3, "gmv_minor": 2_000 * 4}]
    assert verified["on_time_delivery_rate"] is None
    assert await _ids(api, "?sort=gmv&currency=EUR") == [host.id, other.id]
    assert await _ids(api, "?sort=peak_viewers") == [host.id, other.id]
    assert await _ids(api, "?min_peak_viewers=10") == []


async def _recomputed(db: Any, host_id: int, now: int) -> dict[str, Any]:
    """The verified figures straight from the rows, the way the session stats count."""
    since = now - WINDOW
    async with db.read() as s:
        followers = len(
            (
                await s.execute(
                    select(Follow.id).where(Follow.host_id == host_id, Follow.removed_ms.is_(None))
                )
            ).all()
        )
        session_ids = list(
            await s.scalars(select(LiveSession.id).where(LiveSession.host_id == host_id))
        )
        curve: list[int] = []
        watch: list[float] = []
        for sid in session_ids:
            rows = (
                await s.execute(select(AudienceSecond).where(AudienceSecond.session_id == sid))
            ).scalars()
            kept = [r for r in rows if since // 1000 <= r.second <= now // 1000]
            curve += [c["media_viewers"] for c in analytics.concurrency(kept)]
            found = (
                await s.execute(select(WatchInterval).where(WatchInterval.session_id == sid))
            ).scalars()
            intervals = [
                analytics.Interval(
                    analytics.viewer_key(i.user_id, i.viewer, i.resource_id),
                    i.joined_ms,
                    i.left_ms if i.left_ms is not None else now,
                    i.reason,
                )
                for i in found
                if since <= i.joined_ms <= now
            ]
            watch += analytics.watch_times_s(intervals).values()
        orders = (await s.execute(select(Order).where(Order.host_id == host_id))).scalars().all()
    sold = [o for o in orders if o.status == "paid" and not o.refunded_quantity]
    sold = [o for o in sold if o.paid_ms is not None and o.paid_ms >= since]
    by_currency: dict[str, list[Order]] = {}
    for o in sold:
        by_currency.setdefault(o.currency, []).append(o)
    return {
        "as_of_ms": now,
        "as_of": iso(now),
        "window_days": 30,
        "followers": followers,
        "avg_concurrent_viewers": round(statistics.fmean(curve), 2) if curve else 0.0,
        "peak_concurrent_viewers": max(curve, default=0),
        "avg_watch_s": round(statistics.fmean(watch), 3) if watch else 0.0,
        "orders": len(sold),
        "gmv": [
            {"currency": c, "orders": len(os), "gmv_minor": sum(o.amount_minor for o in os)}
            for c, os in sorted(by_currency.items())
        ],
        "on_time_delivery_rate": None,
    }


async def test_the_periodic_pass_refreshes_the_figures(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    fast = settings.model_copy(update={"market_figures_every_s": 0.1})
    for app in checked(create_app(fast, clock=clock)):
        api = Api(await aiohttp_client(app))
        host = await api.signup("host")
        await publish(api, host, [service()])
        path = f"/api/creators/{host.id}"
        assert (await api.call("GET", path, None, expect=200))["verified"]["followers"] == 0
        await _follow(api, host, 2)
        for _ in range(200):  # the next pass, a tenth of a second later
            verified = (await api.call("GET", path, None, expect=200))["verified"]
            if verified["followers"] == 2:
                break
            await asyncio.sleep(0.05)
        assert verified["followers"] == 2
