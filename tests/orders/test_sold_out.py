"""The sold-out gate (``shelf.soldout``): refused attempts on a sold-out product skip the
write transaction, and every answer stays exactly what the write path would give.

Each test runs on both backends (SQLite, PostgreSQL + Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from orders_support import Shop, many_viewers, open_shop, order, start_flash_sale
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection
from support import Api, backend_settings
from test_stock_race import race, sold_units

from app import create_app, db_key
from shelf.feature import orders_key
from shelf.models import Product
from shelf.order_store_postgres import PostgresOrderStore
from shelf.order_store_sqlite import SqliteOrderStore


class WriteCounter:
    """Counts the order path's writes: write transactions (``Database.write_connection``)
    and, on PostgreSQL, its one-statement writes (the take and the settlement)."""

    def __init__(self, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        db = api.client.app[db_key]
        original = db.write_connection

        def counting() -> AbstractAsyncContextManager[AsyncConnection]:
            self.count += 1
            return original()

        monkeypatch.setattr(db, "write_connection", counting)
        store = api.client.app[orders_key].store
        if isinstance(store, PostgresOrderStore):
            for prepared in (store._take_and_record, store._settle_paid):
                monkeypatch.setattr(prepared, "value", self._counting(prepared.value))

    def _counting(
        self, original: Callable[[Mapping[str, Any]], Awaitable[Any]]
    ) -> Callable[[Mapping[str, Any]], Awaitable[Any]]:
        async def counting(params: Mapping[str, Any]) -> Any:
            self.count += 1
            return await original(params)

        return counting


@pytest.fixture
def writes(api: Api, monkeypatch: pytest.MonkeyPatch) -> WriteCounter:
    return WriteCounter(api, monkeypatch)


async def stock_of(api: Api, shop: Shop) -> int:
    product = await api.call("GET", f"/api/products/{shop.products[0]['id']}", shop.brand)
    return int(product["stock"])


async def sell_out(api: Api, shop: Shop) -> list[dict[str, Any]]:
    """Buy every unit (one each), then see one refusal: the product is marked."""
    bodies = []
    for _ in range(await stock_of(api, shop)):
        status, body = await order(api, shop, await api.signup("viewer"))
        assert status == 201, body
        bodies.append(body)
    status, body = await order(api, shop, await api.signup("viewer"))
    assert (status, body["error"]["code"]) == (409, "out_of_stock")
    return bodies


async def test_refusals_after_sell_out_skip_the_write_transaction(
    api: Api, writes: WriteCounter
) -> None:
    shop = await open_shop(api, stock=2)
    await sell_out(api, shop)
    before = writes.count
    buyer = await api.signup("viewer")
    for _ in range(5):
        status, body = await order(api, shop, buyer)
        assert status == 409
        assert body == {"error": {"code": "out_of_stock", "message": "not enough units left"}}
    assert writes.count == before
    # a larger quantity than the refused one is refused on the read path too
    status, body = await order(api, shop, buyer, quantity=5)
    assert (status, body["error"]["code"]) == (409, "out_of_stock")
    assert writes.count == before


async def test_no_oversell_under_concurrency_with_the_gate(api: Api) -> None:
    shop = await open_shop(api, stock=15)
    buyers = await many_viewers(api, 120)
    # three waves: the first sells out and marks, the others race the gate; in between
    # a refund puts 3 units back (clears the mark) while the next wave is running
    first = await race(api, shop, buyers[:60], quantity=1)
    paid = [body for _, status, body in first if status == 201]
    assert len(paid) == 15
    refund = asyncio.create_task(
        api.call(
            "POST",
            f"/api/orders/{paid[0]['id']}/refund",
            shop.brand,
            json={"quantity": 1},
            expect=200,
        )
    )
    second = await race(api, shop, buyers[60:], quantity=1, attempts=2)
    await refund
    third = await race(api, shop, buyers[:30], quantity=1)
    results = first + second + third
    ok = [r for r in results if r[1] == 201]
    assert all(
        r[1] == 409 and r[2]["error"]["code"] == "out_of_stock" for r in results if r[1] != 201
    )
    # 15 sold, 1 refunded and sold again (at most once): never more than the stock
    assert len(ok) == 16
    assert await stock_of(api, shop) == 0
    assert await sold_units(api) == 16


async def test_refund_makes_it_buyable_at_once(api: Api) -> None:
    shop = await open_shop(api, stock=1)
    (sold,) = await sell_out(api, shop)
    await api.call("POST", f"/api/orders/{sold['id']}/refund", shop.brand, json={}, expect=200)
    status, body = await order(api, shop, await api.signup("viewer"))
    assert status == 201, body


async def test_stock_edit_makes_it_buyable_at_once(api: Api) -> None:
    shop = await open_shop(api, stock=1)
    await sell_out(api, shop)
    await api.call(
        "PATCH", f"/api/products/{shop.products[0]['id']}", shop.brand, json={"stock": 2}
    )
    buyer = await api.signup("viewer")
    assert (await order(api, shop, buyer, quantity=2))[0] == 201
    assert await stock_of(api, shop) == 0


async def test_a_restock_elsewhere_is_seen_by_the_next_attempt(
    api: Api, writes: WriteCounter
) -> None:
    """Another process (here: a bare UPDATE, no local stock hook) restocks: the gate
    only routes to a read of the current stock, so nothing is stale."""
    shop = await open_shop(api, stock=1)
    await sell_out(api, shop)
    async with api.client.app[db_key].transaction() as tx:
        await tx.execute(
            update(Product).where(Product.id == shop.products[0]["id"]).values(stock=1)
        )
    before = writes.count
    status, body = await order(api, shop, await api.signup("viewer"))
    assert status == 201, body
    assert writes.count > before  # it went on to the write path


async def test_cancelled_flash_sale_returns_its_units_at_once(api: Api) -> None:
    shop = await open_shop(api, stock=3)
    now = datetime.now(UTC)
    flash = await api.call(
        "POST",
        f"/api/sessions/{shop.session_id}/flash-sales",
        shop.host,
        json={
            "product_id": shop.products[0]["id"],
            "price_minor": 999,
            "quantity": 3,
            "per_buyer_limit": 1,
            # within the reservation lead time (60 s): the scheduler reserves at once
            "starts_at": (now + timedelta(seconds=30)).isoformat(),
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
        expect=201,
    )
    for _ in range(100):
        listed = await api.call("GET", f"/api/sessions/{shop.session_id}/flash-sales")
        if listed["flash_sales"][0]["reserved"]:
            break
        await asyncio.sleep(0.05)
    buyer = await api.signup("viewer")
    status, body = await order(api, shop, buyer)  # all 3 are reserved for the sale
    assert (status, body["error"]["code"]) == (409, "out_of_stock")
    await api.call(
        "DELETE", f"/api/sessions/{shop.session_id}/flash-sales/{flash['id']}", shop.host
    )
    status, body = await order(api, shop, buyer)
    assert status == 201, body


async def test_flash_sold_out_and_per_buyer_limit_stay_exact(
    api: Api, writes: WriteCounter
) -> None:
    shop = await open_shop(api, stock=10)
    await start_flash_sale(api, shop, price_minor=999, quantity=2, per_buyer_limit=1)
    a, b, c = [await api.signup("viewer") for _ in range(3)]
    assert (await order(api, shop, a))[0] == 201
    status, body = await order(api, shop, a)
    assert (status, body["error"]["code"]) == (409, "flash_limit_reached")
    sold_b = await order(api, shop, b)
    assert sold_b[0] == 201
    status, body = await order(api, shop, c)
    assert (status, body["error"]["code"]) == (409, "flash_sold_out")
    before = writes.count
    # marked: the same answers as the write path, in the same order of checks
    status, body = await order(api, shop, c)
    assert (status, body["error"]["code"]) == (409, "flash_sold_out")
    status, body = await order(api, shop, a)  # sold out is checked before the allowance
    assert (status, body["error"]["code"]) == (409, "flash_sold_out")
    status, body = await order(api, shop, c, quantity=2)  # over the per-buyer limit
    assert body["error"] == {"code": "flash_limit_reached", "message": "at most 1 per buyer"}
    assert writes.count == before
    # the regular stock of the product is untouched
    assert await stock_of(api, shop) == 8
    # a refund puts b's unit back into the running sale: c can buy it at once
    await api.call("POST", f"/api/orders/{sold_b[1]['id']}/refund", shop.brand, json={}, expect=200)
    status, body = await order(api, shop, c)
    assert status == 201, body
    assert body["unit_price_minor"] == 999


async def test_replays_after_sell_out_get_the_stored_answer(api: Api, writes: WriteCounter) -> None:
    shop = await open_shop(api, stock=2)
    buyer = await api.signup("viewer")
    first = await order(api, shop, buyer, key="mine")
    assert first[0] == 201
    await sell_out(api, shop)
    before = writes.count
    assert await order(api, shop, buyer, key="mine") == first
    # same key, other body: refused as a reuse, not as out of stock
    status, body = await order(api, shop, buyer, quantity=2, key="mine")
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    # a refused attempt stores nothing: its key is still free and still refused
    status, body = await order(api, shop, buyer, key="refused")
    assert (status, body["error"]["code"]) == (409, "out_of_stock")
    assert writes.count == before


async def test_session_end_answers_exactly_while_marked(api: Api) -> None:
    shop = await open_shop(api, stock=1)
    await sell_out(api, shop)
    await api.call("POST", f"/api/sessions/{shop.session_id}/end", shop.host, expect=200)
    status, body = await order(api, shop, await api.signup("viewer"))
    assert (status, body["error"]["code"]) == (409, "session_not_live")


async def test_the_read_path_answers_like_the_write_path(api: Api) -> None:
    """Routing *every* attempt through the read first (a gate that is always marked)
    changes no answer: the write path's own scenario, replayed. (PostgreSQL reads
    first anyway.)"""
    store = api.client.app[orders_key].store
    if isinstance(store, SqliteOrderStore):
        store._sold_out.routes_to_read = lambda *_: True  # type: ignore[method-assign]
    shop = await open_shop(api, stock=3)
    buyer = await api.signup("viewer")
    first = await order(api, shop, buyer, quantity=2, key="k")
    assert first[0] == 201
    assert await order(api, shop, buyer, quantity=2, key="k") == first
    status, body = await order(api, shop, buyer, quantity=2)
    assert body == {"error": {"code": "out_of_stock", "message": "not enough units left"}}
    assert (await order(api, shop, buyer, quantity=1))[0] == 201
    res = await api.client.post(
        f"/api/sessions/{shop.session_id}/orders",
        json={"product_id": 999_999, "quantity": 1},
        headers={**buyer.headers, "Idempotency-Key": "x"},
    )
    assert (res.status, (await res.json())["error"]["code"]) == (404, "not_on_shelf")
    res = await api.client.post(
        "/api/sessions/999999/orders",
        json={"product_id": 1, "quantity": 1},
        headers={**buyer.headers, "Idempotency-Key": "x"},
    )
    assert (res.status, (await res.json())["error"]["code"]) == (404, "session_not_found")
    await api.call("POST", f"/api/products/{shop.products[0]['id']}/archive", shop.brand)
    status, body = await order(api, shop, buyer)
    assert (status, body["error"]["code"]) == (409, "product_archived")


async def test_concurrent_attempts_share_reads_and_each_gets_its_own_answer(
    api: Api, writes: WriteCounter
) -> None:
    """Attempts arriving together on a sold-out product share the read path's round
    trips (PostgreSQL: one pair of reads per batch), and every one of them still gets
    the answer its own key and body call for."""
    shop = await open_shop(api, stock=4)
    buyers = await many_viewers(api, 24)
    first = {}
    for buyer in buyers[:4]:
        first[buyer.token] = await order(api, shop, buyer, key="mine")
        assert first[buyer.token][0] == 201
    status, _ = await order(api, shop, buyers[4])
    assert status == 409  # marked
    reads = api.client.app[orders_key].store.reads
    before_writes, before_trips = writes.count, reads.round_trips

    async def attempt(i: int) -> tuple[str, tuple[int, Any], Any]:
        buyer = buyers[i % len(buyers)]
        if buyer.token in first and i % 3 == 0:
            return "replay", await order(api, shop, buyer, key="mine"), first[buyer.token]
        if buyer.token in first and i % 3 == 1:
            return "reused", await order(api, shop, buyer, quantity=2, key="mine"), None
        return "fresh", await order(api, shop, buyer), None

    results = await asyncio.gather(*(attempt(i) for i in range(120)))
    kinds = {kind for kind, _, _ in results}
    assert kinds == {"replay", "reused", "fresh"}
    for kind, (status, body), expected in results:
        if kind == "replay":
            assert (status, body) == expected
        elif kind == "reused":
            assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
        else:
            assert (status, body["error"]["code"]) == (409, "out_of_stock")
    assert writes.count == before_writes
    trips = reads.round_trips - before_trips
    if api.client.app[db_key].is_sqlite:
        assert trips == 120  # one read each
    else:
        assert trips < 60, trips  # shared: far fewer round trips than attempts
    assert await stock_of(api, shop) == 0
    assert await sold_units(api) == 4


@pytest.fixture
async def pg_api(aiohttp_client: Any, tmp_path: Path) -> Api:
    """An app on PostgreSQL + Redis only: reads are shared there (SQLite reads alone)."""
    return Api(await aiohttp_client(create_app(backend_settings("postgres-redis", tmp_path))))


async def test_a_failed_shared_read_fails_its_waiters_and_the_next_read_works(
    pg_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = pg_api
    shop = await open_shop(api, stock=1)
    await sell_out(api, shop)
    reads = api.client.app[orders_key].store.reads
    original = reads._read_batch
    calls = 0

    async def failing_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)  # let the others join the batch
            raise OSError("connection to the database lost")
        return await original(*args)

    monkeypatch.setattr(reads, "_read_batch", failing_once)
    buyers = await many_viewers(api, 10)
    answers = await asyncio.wait_for(
        asyncio.gather(*(order(api, shop, buyer) for buyer in buyers)), 10
    )
    failed = [body for status, body in answers if status == 500]
    assert failed and all(b["error"]["code"] == "internal_error" for b in failed)
    assert all(status in (500, 409) for status, _ in answers)  # nobody hangs
    status, body = await order(api, shop, buyers[0])
    assert (status, body["error"]["code"]) == (409, "out_of_stock")
    assert len(reads._batches) == 0  # nothing left waiting


async def sold_out_reads(api: Api) -> tuple[Any, list[asyncio.Task[Any]]]:
    """The order service's shared reads and five buyers' reads of a sold-out product,
    started at once."""
    shop = await open_shop(api, stock=1)
    await sell_out(api, shop)
    reads = api.client.app[orders_key].store.reads
    buyers = await many_viewers(api, 5)
    pid = shop.products[0]["id"]
    waiters = [
        asyncio.create_task(reads.read(shop.session_id, pid, buyer.id, f"k{i}"))
        for i, buyer in enumerate(buyers)
    ]
    return reads, waiters


async def test_a_waiter_that_goes_away_does_not_disturb_the_others(pg_api: Api) -> None:
    reads, waiters = await sold_out_reads(pg_api)
    await asyncio.sleep(0)
    waiters[1].cancel()  # its client disconnected
    done = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 10)
    assert isinstance(done[1], asyncio.CancelledError)
    for answer in done[:1] + done[2:]:
        assert not isinstance(answer, BaseException)
        context, earlier = answer
        assert context is not None and context.stock == 0 and earlier is None
    assert len(reads._batches) == 0


async def test_the_attempt_running_the_shared_read_goes_away_and_the_others_are_answered(
    pg_api: Api,
) -> None:
    """The attempt whose task runs the batch's round trip is cancelled mid-read: the read
    is abandoned and the rest of its batch is answered by the next one."""
    reads, waiters = await sold_out_reads(pg_api)
    before = reads.round_trips  # no read has run yet: none of the tasks has started
    await asyncio.sleep(0)  # the first is reading, the others wait for the next read
    waiters[0].cancel()
    done = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 10)
    assert isinstance(done[0], asyncio.CancelledError)
    for answer in done[1:]:
        assert not isinstance(answer, BaseException)
        context, earlier = answer
        assert context is not None and context.stock == 0 and earlier is None
    assert reads.round_trips - before == 2  # the abandoned read and one for the rest
    assert len(reads._batches) == 0
