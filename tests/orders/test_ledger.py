"""Refunds and the ledger's invariants, on random mixes of orders and refunds."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orders_support import Shop, open_shop, order
from sqlalchemy import select
from support import Account, Api

from app import db_key, settings_key
from live.ledger_models import LedgerEntry
from shelf.order_models import Order

PLATFORM_BPS = 500  # Settings.platform_fee_bps default


async def ledger_of(api: Api, session_id: int) -> list[LedgerEntry]:
    async with api.client.app[db_key].read() as s:
        return list(
            await s.scalars(select(LedgerEntry).where(LedgerEntry.session_id == session_id))
        )


async def orders_of(api: Api, session_id: int) -> list[Order]:
    async with api.client.app[db_key].read() as s:
        return list(await s.scalars(select(Order).where(Order.session_id == session_id)))


async def check_invariants(api: Api, shop: Shop, initial_stock: int) -> None:
    lines = await ledger_of(api, shop.session_id)
    orders = await orders_of(api, shop.session_id)
    by_txn: dict[str, int] = defaultdict(int)
    for line in lines:
        by_txn[line.txn] += line.amount_minor
    assert all(total == 0 for total in by_txn.values()), by_txn
    assert sum(line.amount_minor for line in lines) == 0

    def account(name: str) -> int:
        return sum(
            line.amount_minor for line in lines if line.account == name and line.kind != "flat_fee"
        )

    sold = [o for o in orders if o.status in ("paid", "refunded")]
    kept = {o.id: o.quantity - o.refunded_quantity for o in sold}
    expected_commission = sum(
        o.unit_price_minor * kept[o.id] * o.commission_bps // 10_000 for o in sold
    )
    expected_platform = sum(o.unit_price_minor * kept[o.id] * PLATFORM_BPS // 10_000 for o in sold)
    expected_paid = sum(o.unit_price_minor * kept[o.id] for o in sold)
    assert account("host_commission") == expected_commission
    assert account("platform_fees") == expected_platform
    assert account("buyer_payments") == -expected_paid
    assert account("brand_revenue") == expected_paid - expected_commission - expected_platform
    product = await api.call("GET", f"/api/products/{shop.products[0]['id']}", shop.brand)
    units_sold = sum(o.quantity for o in sold)
    units_refunded = sum(o.refunded_quantity for o in sold)
    assert product["stock"] + units_sold - units_refunded == initial_stock


async def test_partial_then_full_refund(api: Api) -> None:
    shop = await open_shop(api, stock=10, price_minor=3333, commission_bps=1234)
    buyer = await api.signup("viewer")
    status, placed = await order(api, shop, buyer, quantity=3)
    assert status == 201
    path = f"/api/orders/{placed['id']}/refund"
    first = await api.call("POST", path, shop.brand, json={"quantity": 1}, expect=200)
    assert first["refunded_quantity"] == 1 and first["status"] == "paid"
    await check_invariants(api, shop, 10)
    rest = await api.call("POST", path, shop.brand, json={}, expect=200)
    assert rest["refunded_quantity"] == 3 and rest["status"] == "refunded"
    await check_invariants(api, shop, 10)
    res = await api.call("POST", path, shop.brand, json={}, expect=409)
    assert res["error"]["code"] == "not_refundable"
    lines = await ledger_of(api, shop.session_id)
    assert sum(x.amount_minor for x in lines if x.account == "host_commission") == 0


async def test_refund_refusals(api: Api) -> None:
    shop = await open_shop(api, stock=10)
    buyer = await api.signup("viewer")
    _, placed = await order(api, shop, buyer, quantity=2)
    path = f"/api/orders/{placed['id']}/refund"
    other_brand = await api.signup("brand")
    assert (await api.call("POST", path, other_brand, json={}, expect=403))["error"][
        "code"
    ] == "not_your_order"
    for account in (buyer, shop.host):
        assert (await api.call("POST", path, account, json={}, expect=403))["error"][
            "code"
        ] == "role_not_allowed"
    await api.call("POST", path, json={}, expect=401)
    for body in ({"quantity": 0}, {"quantity": 3}, {"quantity": "1"}, {"units": 1}):
        await api.call("POST", path, shop.brand, json=body, expect=422)
    await api.call("POST", "/api/orders/999999/refund", shop.brand, json={}, expect=404)
    again = await api.call("GET", f"/api/orders/{placed['id']}", buyer, expect=200)
    assert again["refunded_quantity"] == 0
    # a stranger cannot even see it
    await api.call("GET", f"/api/orders/{placed['id']}", other_brand, expect=404)


async def test_flat_fee_is_posted_once_per_session(api: Api) -> None:
    shop = await open_shop(api, stock=10, flat_fee_minor=20_000)
    buyer = await api.signup("viewer")
    for _ in range(3):
        assert (await order(api, shop, buyer))[0] == 201
    lines = [x for x in await ledger_of(api, shop.session_id) if x.kind == "flat_fee"]
    assert sorted((x.account, x.amount_minor) for x in lines) == [
        ("brand_revenue", -20_000),
        ("host_commission", 20_000),
    ]


Op = tuple[str, int, int]
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(0, 2), st.integers(1, 4)),
        st.tuples(st.just("refund"), st.integers(0, 20), st.integers(0, 4)),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=ops_strategy,
    price=st.integers(1, 250_000),
    bps=st.integers(0, 10_000),
)
async def test_ledger_invariants_hold_for_any_mix(
    api: Api, ops: list[Op], price: int, bps: int
) -> None:
    assert api.client.app[settings_key].platform_fee_bps == PLATFORM_BPS
    initial = 12
    shop = await open_shop(api, stock=initial, price_minor=price, commission_bps=bps)
    buyers: list[Account] = [await api.signup("viewer") for _ in range(3)]
    placed: list[dict[str, Any]] = []
    for kind, a, b in ops:
        if kind == "order":
            status, body = await order(api, shop, buyers[a], quantity=b)
            assert status in (201, 409), body
            if status == 201:
                placed.append(body)
        elif placed:
            target = placed[a % len(placed)]
            res = await api.client.post(
                f"/api/orders/{target['id']}/refund",
                json={"quantity": b} if b else {},
                headers=shop.brand.headers,
            )
            assert res.status in (200, 409, 422), await res.text()
    await check_invariants(api, shop, initial)
