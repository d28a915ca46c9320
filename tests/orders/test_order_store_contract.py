"""The OrderStore contract (``shelf.order_store``), run against both twins: the SQLite
store on a SQLite file and the PostgreSQL store on PostgreSQL (the ``api`` fixture's
backends). The stores are driven directly, with ``OrderService.decide`` as the rules."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from orders_support import Shop, open_shop, start_flash_sale
from sqlalchemy import func, select
from support import Account, Api

from app import db_key
from live.errors import Conflict, NotFound, Unprocessable
from live.ledger_models import LedgerEntry
from live.paging import Page
from shelf.feature import orders_key
from shelf.models import FlashPurchase, FlashSale, Product
from shelf.order_context import Attempt
from shelf.order_models import Order, OrderSource, OrderStatus, SettledOrder
from shelf.order_reads import Earlier
from shelf.order_store import OrderStore
from shelf.order_store_base import Placed, Settlement
from shelf.order_store_postgres import PostgresOrderStore
from shelf.order_store_sqlite import SqliteOrderStore
from shelf.orders import OrderService


class Store:
    """The app's store, and the attempts and settlements its contract is stated in."""

    def __init__(self, api: Api, shop: Shop) -> None:
        self.api = api
        self.shop = shop
        self.orders: OrderService = api.client.app[orders_key]
        self.store: OrderStore = self.orders.store
        self.db = api.client.app[db_key]

    def attempt(self, buyer: Account, key: str, quantity: int = 1) -> Attempt:
        return Attempt(
            self.shop.session_id,
            self.shop.products[0]["id"],
            buyer.id,
            key,
            _now_ms(),
            quantity,
            OrderSource.LIVE,
        )

    async def take(self, buyer: Account, key: str, quantity: int = 1) -> Placed | Earlier | None:
        attempt = self.attempt(buyer, key, quantity)
        return await self.store.take(attempt, self.orders.decide)

    def settlement(self, placed: Placed, paid: bool, answer: str = "{}") -> Settlement:
        carried = {
            name: placed.values[name]
            for name in SettledOrder.__dataclass_fields__
            if name not in ("id", "status", "paid_ms")
        }
        status = OrderStatus.PAID if paid else OrderStatus.CANCELLED
        order = SettledOrder(
            id=placed.order_id, status=status.value, paid_ms=_now_ms() if paid else None, **carried
        )
        event = {"order_id": placed.order_id} if paid else None
        flat_fee = placed.values["flat_fee_minor"]
        return Settlement(order, f"ref-{placed.order_id}", _now_ms(), answer, event, flat_fee)

    async def stock(self) -> int:
        async with self.db.read() as s:
            stock = await s.scalar(
                select(Product.stock).where(Product.id == self.shop.products[0]["id"])
            )
        assert stock is not None
        return stock

    async def row(self, order_id: int) -> Order:
        async with self.db.read() as s:
            order = await s.get(Order, order_id)
        assert order is not None
        return order

    async def ledger_lines(self, order_id: int) -> int:
        async with self.db.read() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.order_id == order_id)
            )
        return int(count or 0)


def _now_ms() -> int:
    return int(time.time() * 1000)


def placed(result: Placed | Earlier | None) -> Placed:
    assert isinstance(result, Placed), result
    return result


async def test_the_twin_matches_the_backend(api: Api) -> None:
    store = api.client.app[orders_key].store
    expected = SqliteOrderStore if api.client.app[db_key].is_sqlite else PostgresOrderStore
    assert type(store) is expected


async def test_take_regular_stock_settle_paid_and_answer_again(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=5, price_minor=2000))
    buyer = await api.signup("viewer")
    order = placed(await s.take(buyer, "k1", quantity=2))
    assert order.values["status"] == "placed" and order.values["flash_sale_id"] is None
    assert order.values["amount_minor"] == 4000
    assert await s.stock() == 3
    assert (await s.row(order.order_id)).status == "placed"
    # Before it is settled, the key names it without an answer.
    again = await s.take(buyer, "k1", quantity=2)
    assert again == Earlier(order.order_id, order.values["request_hash"], None)
    answer = orjson.dumps({"status": 201, "body": {"id": order.order_id}}).decode()
    settled = await s.store.settle(s.settlement(order, paid=True, answer=answer))
    assert settled.earlier_answer is None and len(settled.events) == 1
    row = await s.row(order.order_id)
    assert (row.status, row.payment_ref, row.response_json) == (
        "paid",
        f"ref-{order.order_id}",
        answer,
    )
    assert await s.ledger_lines(order.order_id) == 4
    # Settled once: again writes nothing and gives the stored answer.
    twice = await s.store.settle(s.settlement(order, paid=True, answer="other"))
    assert (twice.earlier_answer, twice.events) == (answer, [])
    assert await s.ledger_lines(order.order_id) == 4
    # The key now names the order with its answer; no second take.
    assert await s.take(buyer, "k1", quantity=2) == Earlier(
        order.order_id, order.values["request_hash"], answer
    )
    assert await s.store.find(buyer.id, "k1") == Earlier(
        order.order_id, order.values["request_hash"], answer
    )
    assert await s.stock() == 3
    got = await s.store.get(order.order_id)
    assert got is not None and got.id == order.order_id
    mine = await s.store.buyer_orders(buyer.id, Page(limit=10))
    assert [o.id for o in mine] == [order.order_id]


async def test_sold_out_takes_nothing(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=2))
    buyer = await api.signup("viewer")
    with pytest.raises(Conflict) as refused:
        await s.take(buyer, "too-many", quantity=3)
    assert refused.value.code == "out_of_stock"
    placed(await s.take(buyer, "two", quantity=2))
    for key in ("a", "b"):  # the second one after the product was seen sold out
        with pytest.raises(Conflict) as refused:
            await s.take(buyer, key)
        assert refused.value.code == "out_of_stock"
    assert await s.stock() == 0
    assert await s.store.find(buyer.id, "a") is None


async def test_concurrent_takes_never_oversell_and_one_key_makes_one_order(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=4))
    buyers = [await api.signup("viewer") for _ in range(8)]
    results = await asyncio.gather(*(s.take(b, "k") for b in buyers), return_exceptions=True)
    assert sum(isinstance(r, Placed) for r in results) == 4
    assert {r.code for r in results if isinstance(r, Conflict)} == {"out_of_stock"}
    assert await s.stock() == 0
    s2 = Store(api, await open_shop(api, stock=10))
    same = await asyncio.gather(*(s2.take(buyers[0], "same") for _ in range(6)))
    made = [r for r in same if isinstance(r, Placed)]
    assert len(made) == 1
    assert all(
        r is None or (isinstance(r, Earlier) and r.order_id == made[0].order_id)
        for r in same
        if r is not made[0]
    )
    assert await s2.stock() == 9


async def test_flash_stock_with_a_per_buyer_limit_and_put_back(api: Api) -> None:
    shop = await open_shop(api, stock=20, price_minor=5000)
    flash = await start_flash_sale(api, shop, price_minor=1999, quantity=3, per_buyer_limit=2)
    s = Store(api, shop)
    buyer, other = await api.signup("viewer"), await api.signup("viewer")
    with pytest.raises(Conflict) as refused:
        await s.take(buyer, "three", quantity=3)
    assert refused.value.code == "flash_limit_reached"
    first = placed(await s.take(buyer, "f1", quantity=2))
    assert first.values["flash_sale_id"] == flash["id"]
    assert first.values["unit_price_minor"] == 1999
    # Units are left, but not in this buyer's allowance: the taking statement refuses.
    with pytest.raises(Conflict) as refused:
        await s.take(buyer, "f2")
    assert refused.value.code == "flash_limit_reached"
    with pytest.raises(Conflict) as refused:
        await s.take(other, "o2", quantity=2)
    assert refused.value.code == "flash_sold_out"
    last = placed(await s.take(other, "o1"))
    with pytest.raises(Conflict) as refused:
        await s.take(await api.signup("viewer"), "late")
    assert refused.value.code == "flash_sold_out"
    # A declined payment puts the units back into the sale and the buyer's allowance.
    cancelled = await s.store.settle(s.settlement(last, paid=False, answer='{"status":402}'))
    assert (cancelled.earlier_answer, cancelled.events) == (None, [])
    assert (await s.row(last.order_id)).status == "cancelled"
    async with s.db.read() as session:
        sale = await session.get(FlashSale, flash["id"])
        bought = await session.scalar(
            select(FlashPurchase.quantity).where(
                FlashPurchase.flash_sale_id == flash["id"], FlashPurchase.buyer_id == other.id
            )
        )
    assert sale is not None and sale.sold == 2 and bought == 0
    placed(await s.take(other, "o3"))
    assert await s.stock() == 17  # 3 reserved for the sale


async def test_refund_puts_units_back(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=5))
    buyer = await api.signup("viewer")
    order = placed(await s.take(buyer, "k", quantity=3))
    await s.store.settle(s.settlement(order, paid=True))
    paid_back: list[tuple[str, str, int]] = []

    async def pay_back(reference: str, refund_id: str, amount: int) -> None:
        paid_back.append((reference, refund_id, amount))

    def refused(_order: Order) -> int:
        raise Unprocessable("invalid_quantity", "no")

    with pytest.raises(Unprocessable):
        await s.store.refund(order.order_id, _now_ms(), refused, pay_back)
    assert paid_back == [] and await s.stock() == 2
    refunded, event = await s.store.refund(order.order_id, _now_ms(), lambda _: 2, pay_back)
    assert (refunded.refunded_quantity, refunded.status) == (2, "paid")
    assert event.type == "order.refunded"
    assert await s.stock() == 4
    refunded, _ = await s.store.refund(order.order_id, _now_ms(), lambda _: 1, pay_back)
    assert (refunded.refunded_quantity, refunded.status) == (3, "refunded")
    assert await s.stock() == 5
    price = order.values["unit_price_minor"]
    ref = f"ref-{order.order_id}"
    assert paid_back == [
        (ref, f"{order.order_id}:0", 2 * price),
        (ref, f"{order.order_id}:2", price),
    ]
    assert await s.ledger_lines(order.order_id) == 12


async def test_half_done_orders_are_found_and_settled(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=5, flat_fee_minor=300))
    buyer = await api.signup("viewer")
    stuck = placed(await s.take(buyer, "stuck"))
    done = placed(await s.take(buyer, "done"))
    await s.store.settle(s.settlement(done, paid=True))
    found = await s.store.placed_before(_now_ms())
    assert [p.order_id for p in found] == [stuck.order_id]
    assert found[0].values == stuck.values
    assert await s.store.placed_before(stuck.values["placed_ms"] - 1) == []
    settled = await s.store.settle(s.settlement(found[0], paid=True))
    assert len(settled.events) == 1
    assert await s.store.placed_before(_now_ms()) == []
    async with s.db.read() as session:
        flat = await session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "flat_fee")
        )
    assert flat == 2  # the flat fee once per session and cooperation, as two lines


async def test_a_missing_session_is_refused_before_anything(api: Api) -> None:
    s = Store(api, await open_shop(api, stock=5))
    buyer = await api.signup("viewer")
    s.shop = Shop(s.shop.brand, s.shop.host, 10**9, s.shop.products, s.shop.cooperation_id)
    with pytest.raises(NotFound) as refused:
        await s.take(buyer, "k")
    assert refused.value.code == "session_not_found"
    assert await s.stock() == 5
