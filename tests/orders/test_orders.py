"""Placing orders: the happy path, idempotency, refusals, payment failure, bans."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from orders_support import open_shop, order, start_flash_sale, wait_flash_status
from sqlalchemy import func, select
from support import Api, backend_settings, room_events

from app import create_app, db_key, room_log_key
from live import db as live_db
from live.errors import Conflict
from live.ledger_models import LedgerEntry
from shelf import order_sql
from shelf.feature import orders_key
from shelf.order_context import Attempt
from shelf.order_models import Order, OrderSource
from shelf.order_reads import Earlier
from shelf.order_store_base import Placed
from shelf.order_store_postgres import PostgresOrderStore
from shelf.orders import mask_name
from shelf.payments import TestPaymentProvider


async def product_stock(api: Api, shop: Any, index: int = 0) -> int:
    product = await api.call("GET", f"/api/products/{shop.products[index]['id']}", shop.brand)
    return int(product["stock"])


async def settled_events(api: Api, session_id: int) -> list[dict[str, Any]]:
    await asyncio.sleep(0.3)  # throttled stock events
    return await room_events(api.client.app[room_log_key], session_id)


async def test_place_an_order(api: Api) -> None:
    shop = await open_shop(api, stock=10, price_minor=2500, commission_bps=1200)
    buyer = await api.signup("viewer", "alice")
    status, body = await order(api, shop, buyer, quantity=2)
    assert status == 201, body
    assert body["status"] == "paid"
    assert body["quantity"] == 2
    assert body["unit_price_minor"] == 2500
    assert body["amount_minor"] == 5000
    assert body["currency"] == "EUR"
    assert body["commission_bps"] == 1200  # the agreed rate, not the product's 900
    assert await product_stock(api, shop) == 8
    events = await settled_events(api, shop.session_id)
    placed = [e for e in events if e["type"] == "order.placed"]
    assert [e["data"]["buyer"] for e in placed] == ["a***e"]
    assert placed[0]["data"]["quantity"] == 2
    stock = [e for e in events if e["type"] == "stock.changed"]
    assert stock and stock[-1]["data"]["stock"] == 8
    mine = await api.call("GET", "/api/me/orders", buyer, expect=200)
    assert [o["id"] for o in mine["orders"]] == [body["id"]]


async def test_an_order_is_settled_once(api: Api) -> None:
    """Settling a paid order again (start-up recovery racing the request, say) writes
    nothing and gives the stored answer: the one-statement settlement on PostgreSQL
    finds the order no longer placed, and so does the transactional one."""
    shop = await open_shop(api, stock=5)
    status, body = await order(api, shop, await api.signup("viewer"))
    assert status == 201, body
    orders, db = api.client.app[orders_key], api.client.app[db_key]

    async def written() -> tuple[int, str | None, str | None]:
        async with db.read() as s:
            lines = await s.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.order_id == body["id"])
            )
            paid = await s.scalar(select(Order).where(Order.id == body["id"]))
        assert lines is not None and paid is not None
        return lines, paid.payment_ref, paid.response_json

    before = await written()
    assert before[0] == 4
    async with db.read() as s:
        row = await s.scalar(select(Order).where(Order.id == body["id"]))
    assert row is not None
    placed = Placed(row.id, {name: getattr(row, name) for name in order_sql.ORDER_COLUMNS})
    # PostgreSQL: the one statement finds it paid, then the transaction gives the answer
    again = await orders._settle(placed, True, "second-capture", "x")
    assert (again.status, again.body) == (201, body)
    assert await written() == before
    placed = [e for e in await settled_events(api, shop.session_id) if e["type"] == "order.placed"]
    assert [e["data"]["order_id"] for e in placed] == [body["id"]]


async def test_same_key_same_answer_and_no_second_take(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    first = await order(api, shop, buyer, quantity=2, key="k-1")
    again = await order(api, shop, buyer, quantity=2, key="k-1")
    assert first == again
    assert first[0] == 201
    assert await product_stock(api, shop) == 3
    status, body = await order(api, shop, buyer, quantity=3, key="k-1")
    assert status == 422
    assert body["error"]["code"] == "idempotency_key_reused"
    assert await product_stock(api, shop) == 3
    # another buyer may use the same key string
    other = await api.signup("viewer")
    assert (await order(api, shop, other, quantity=1, key="k-1"))[0] == 201


async def test_concurrent_retries_of_one_key_make_one_order(api: Api) -> None:
    shop = await open_shop(api, stock=50)
    buyer = await api.signup("viewer")
    results = await asyncio.gather(
        *(order(api, shop, buyer, quantity=3, key="same") for _ in range(25))
    )
    assert {status for status, _ in results} == {201}
    assert len({orjson.dumps(body) for _, body in results}) == 1
    assert await product_stock(api, shop) == 47
    async with api.client.app[db_key].read() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"product_id": 1, "quantity": 0}, 422, "invalid_input"),
        ({"product_id": 1, "quantity": 100}, 422, "invalid_input"),
        ({"product_id": 1, "quantity": "2"}, 422, "invalid_input"),
        ({"product_id": 1.5}, 422, "invalid_input"),
        ({"quantity": 1}, 422, "invalid_input"),
        ({"product_id": 1, "quantity": 1, "price_minor": 1}, 422, "invalid_input"),
    ],
)
async def test_bad_bodies_change_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    if body.get("product_id") == 1:
        body = {**body, "product_id": shop.products[0]["id"]}
    res = await api.client.post(
        f"/api/sessions/{shop.session_id}/orders",
        json=body,
        headers={**buyer.headers, "Idempotency-Key": "x"},
    )
    assert res.status == status
    assert (await res.json())["error"]["code"] == code
    assert await product_stock(api, shop) == 5


async def test_refusals(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    viewer = await api.signup("viewer")
    path = f"/api/sessions/{shop.session_id}/orders"
    body = {"product_id": shop.products[0]["id"], "quantity": 1}
    key = {"Idempotency-Key": "r1"}
    # guests, hosts and brands cannot buy
    assert (await api.call("POST", path, json=body, headers=key, expect=401))["error"][
        "code"
    ] == "sign_in_required"
    for account in (shop.host, shop.brand):
        res = await api.call("POST", path, account, json=body, headers=key, expect=403)
        assert res["error"]["code"] == "role_not_allowed"
    # no key
    res = await api.call("POST", path, viewer, json=body, expect=400)
    assert res["error"]["code"] == "idempotency_key_required"
    # not on the shelf
    other_brand = await api.signup("brand")
    stray = await api.call(
        "POST",
        "/api/products",
        other_brand,
        json={"title": "x", "price_minor": 1, "currency": "EUR", "stock": 5, "commission_bps": 0},
        expect=201,
    )
    res = await api.call(
        "POST", path, viewer, json={"product_id": stray["id"]}, headers=key, expect=404
    )
    assert res["error"]["code"] == "not_on_shelf"
    # more than there is
    status, res = await order(api, shop, viewer, quantity=6)
    assert status == 409 and res["error"]["code"] == "out_of_stock"
    # unknown session
    await api.call(
        "POST", "/api/sessions/999999/orders", viewer, json=body, headers=key, expect=404
    )
    # the session ended
    await api.call("POST", f"/api/sessions/{shop.session_id}/end", shop.host, expect=200)
    status, res = await order(api, shop, viewer)
    assert status == 409 and res["error"]["code"] == "session_not_live"
    assert await product_stock(api, shop) == 5


async def test_declined_payment_returns_the_units(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    orders = api.client.app[orders_key]
    orders._payments = TestPaymentProvider(decline_buyers=frozenset({buyer.id}))
    status, body = await order(api, shop, buyer, quantity=2, key="card")
    assert status == 402
    assert body["error"]["code"] == "payment_declined"
    assert body["order"]["status"] == "cancelled"
    assert await product_stock(api, shop) == 5
    assert await order(api, shop, buyer, quantity=2, key="card") == (status, body)
    async with api.client.app[db_key].read() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 0


async def test_banned_viewer_cannot_buy(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    await api.call(
        "POST",
        f"/api/sessions/{shop.session_id}/chat/bans",
        shop.host,
        json={"user_id": buyer.id},
        expect=201,
    )
    status, body = await order(api, shop, buyer)
    assert status == 403
    assert body["error"]["code"] == "banned"
    assert await product_stock(api, shop) == 5


async def test_flash_price_only_inside_the_window(api: Api) -> None:
    shop = await open_shop(api, stock=20, price_minor=5000)
    buyer = await api.signup("viewer")
    flash = await start_flash_sale(
        api, shop, price_minor=1999, quantity=5, per_buyer_limit=2, lasts_s=2.5
    )
    status, body = await order(api, shop, buyer, quantity=2)
    assert status == 201, body
    assert body["unit_price_minor"] == 1999
    assert body["flash_sale_id"] == flash["id"]
    status, body = await order(api, shop, buyer, quantity=1)
    assert status == 409
    assert body["error"]["code"] == "flash_limit_reached"
    # after the window (server clock): the regular price, from regular stock
    await wait_flash_status(api, shop, flash["id"], "ended")
    status, body = await order(api, shop, buyer, quantity=1)
    assert status == 201, body
    assert body["unit_price_minor"] == 5000
    assert body["flash_sale_id"] is None


def test_mask_name() -> None:
    assert mask_name("alice") == "a***e"
    assert mask_name("al") == "a*"
    assert mask_name("") == "?*"


async def test_the_payment_waits_for_the_order_to_be_on_disk(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """PostgreSQL: the take commits without waiting for its WAL flush (the product row
    is free for the next buyer at once), and the order is flushed to disk before its
    payment is captured: a database crash can lose a take nobody was told about, never
    one that was charged."""
    api = Api(await aiohttp_client(create_app(backend_settings("postgres-redis", tmp_path))))
    shop = await open_shop(api, stock=12)
    orders = api.client.app[orders_key]
    db = api.client.app[db_key]
    store = orders.store
    assert isinstance(store, PostgresOrderStore)
    early = await db._early_release_pool()
    async with early.acquire() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    dsn = db.url.replace("postgresql+asyncpg://", "postgresql://")
    probe = await asyncpg.connect(dsn)
    written_up_to: dict[int, int] = {}  # order id -> WAL written when its take returned
    flushed_at_capture: dict[int, int] = {}  # order id -> WAL flushed when it was charged
    take = store._take_and_record.value
    probing = asyncio.Lock()  # one query at a time on the probe connection

    async def lsn(which: str) -> int:
        async with probing:
            return int(await probe.fetchval(_LSN.format(which)))

    async def take_then_note(params: Any) -> Any:
        order_id = await take(params)
        written_up_to[order_id] = await lsn("insert")
        return order_id

    class NotingProvider(TestPaymentProvider):
        async def capture(self, order_id: int, amount: int, currency: str, buyer: int) -> Any:
            flushed_at_capture[order_id] = await lsn("flush")
            return await super().capture(order_id, amount, currency, buyer)

    store._take_and_record.value = take_then_note  # type: ignore[method-assign]
    orders._payments = NotingProvider()
    buyers = [await api.signup("viewer") for _ in range(12)]
    try:
        for n, buyer in enumerate(buyers[:3]):  # one at a time
            status, _ = await order(api, shop, buyer, key=f"k{n}")
            assert status == 201
        # at once: they share flushes, and each still waits for its own take's
        answers = await asyncio.gather(
            *(order(api, shop, buyer, key=f"c{n}") for n, buyer in enumerate(buyers[3:]))
        )
        assert [status for status, _ in answers] == [201] * 9
    finally:
        await probe.close()
    assert len(written_up_to) == len(flushed_at_capture) == 12
    for order_id, written in written_up_to.items():
        assert flushed_at_capture[order_id] >= written


#: The WAL position (``insert``: written to the buffers; ``flush``: on disk) as bytes.
_LSN = "SELECT pg_current_wal_{}_lsn() - '0/0'::pg_lsn"


async def test_without_the_flush_statement_takes_wait_for_the_flush_as_before(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """PostgreSQL, a database that refuses the flush barrier (say, a role without the
    right): start-up warns, and orders are taken on ordinary synchronous connections."""
    monkeypatch.setattr(live_db, "FLUSH_SQL", "SELECT liveshelf_no_such_function()")
    api = Api(await aiohttp_client(create_app(backend_settings("postgres-redis", tmp_path))))
    db = api.client.app[db_key]
    assert db._early_release is False
    assert "early lock release is off" in caplog.text
    shop = await open_shop(api, stock=2)
    for buyer in range(2):
        status, _ = await order(api, shop, await api.signup("viewer"), key=f"k{buyer}")
        assert status == 201
    assert await product_stock(api, shop) == 0
    assert db._early_pool is None  # never opened


async def test_a_retry_whose_unsettled_order_vanished_is_told_to_retry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry waiting for an order still being processed, whose take a database crash
    lost before it reached the disk (early lock release): a clean 409
    ``order_in_progress`` (nothing was charged; the next retry orders anew), not a 500."""
    orders = api.client.app[orders_key]

    async def vanished(_buyer_id: int, _key: str) -> None:
        return None

    monkeypatch.setattr(orders.store, "find", vanished)
    attempt = Attempt(1, 2, 1, "k", 0, 1, OrderSource.LIVE)
    placed = Earlier(order_id=1, request_hash=attempt.request_hash(), response_json=None)
    with pytest.raises(Conflict) as refused:
        await orders._answer_again(placed, attempt)
    assert refused.value.code == "order_in_progress"


async def test_an_order_at_a_price_the_buyer_did_not_see_is_refused(api: Api) -> None:
    """The card showed 39.00 EUR; the brand changed the price meanwhile: the order
    carrying the price it saw gets 409 price_changed with the price now, and nothing is
    taken or charged. At the price it sees now, it goes through."""
    shop = await open_shop(api, stock=10, price_minor=3900)
    buyer = await api.signup("viewer")
    seen = {"expected_unit_price_minor": 3900, "currency": "EUR"}
    status, body = await order(api, shop, buyer, **seen)
    assert (status, body["unit_price_minor"]) == (201, 3900), body
    product_id = shop.products[0]["id"]
    await api.call(
        "PATCH",
        f"/api/products/{product_id}",
        shop.brand,
        json={"price_minor": 10**12},
        expect=200,
    )
    for expected in (seen, {"expected_unit_price_minor": 3900}, {"currency": "KWD"}):
        status, body = await order(api, shop, buyer, quantity=99, **expected)
        assert status == 409, body
        assert body["error"]["code"] == "price_changed"
        assert body["error"]["details"] == {"unit_price_minor": 10**12, "currency": "EUR"}
    assert await product_stock(api, shop) == 9
    mine = await api.call("GET", "/api/me/orders", buyer, expect=200)
    assert len(mine["orders"]) == 1
    status, body = await order(api, shop, buyer, expected_unit_price_minor=10**12, currency="EUR")
    assert (status, body["amount_minor"]) == (201, 10**12), body


async def test_inside_a_flash_sale_the_expected_price_is_the_flash_price(api: Api) -> None:
    shop = await open_shop(api, stock=20, price_minor=5000)
    buyer = await api.signup("viewer")
    await start_flash_sale(api, shop, price_minor=1999, quantity=5, per_buyer_limit=2)
    status, body = await order(api, shop, buyer, expected_unit_price_minor=5000)
    assert (status, body["error"]["code"]) == (409, "price_changed")
    assert body["error"]["details"]["unit_price_minor"] == 1999
    status, body = await order(api, shop, buyer, expected_unit_price_minor=1999, currency="EUR")
    assert (status, body["unit_price_minor"]) == (201, 1999), body


@pytest.mark.parametrize("field", ["product_id", "quantity", "expected_unit_price_minor"])
async def test_integers_past_64_bits_are_422(api: Api, field: str) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    body = {"product_id": shop.products[0]["id"], "quantity": 1, field: 10**30}
    res = await api.client.post(
        f"/api/sessions/{shop.session_id}/orders",
        json=body,
        headers={**buyer.headers, "Idempotency-Key": "big"},
    )
    assert res.status == 422, await res.text()
    assert (await res.json())["error"]["code"] == "invalid_input"
    assert await product_stock(api, shop) == 5
