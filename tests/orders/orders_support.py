"""A ready-made shop for order tests: brand, host, live session, products on the shelf."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from support import Account, Api

from app import db_key, tokens_key
from live.models import Role, User


@dataclass
class Shop:
    brand: Account
    host: Account
    session_id: int
    products: list[dict[str, Any]]
    cooperation_id: int


async def open_shop(
    api: Api,
    *,
    stock: int = 50,
    price_minor: int = 2500,
    commission_bps: int = 1200,
    flat_fee_minor: int | None = None,
    n_products: int = 1,
) -> Shop:
    brand = await api.signup("brand")
    host = await api.signup("host")
    products = [
        await api.call(
            "POST",
            "/api/products",
            brand,
            json={
                "title": f"Wool hat {i}",
                "price_minor": price_minor + i,
                "currency": "EUR",
                "stock": stock,
                "commission_bps": 900,
            },
            expect=201,
        )
        for i in range(n_products)
    ]
    proposal_body: dict[str, Any] = {
        "host_id": host.id,
        "product_ids": [p["id"] for p in products],
        "commission_bps": commission_bps,
        "flash_min_price_bps": 1,
    }
    if flat_fee_minor is not None:
        proposal_body["flat_fee_minor"] = flat_fee_minor
        proposal_body["flat_fee_currency"] = "EUR"
    proposal = await api.call("POST", "/api/cooperations", brand, json=proposal_body, expect=201)
    await api.call("POST", f"/api/cooperations/{proposal['id']}/accept", host, expect=200)
    session = await api.live_session(host)
    for p in products:
        await api.call(
            "POST",
            f"/api/sessions/{session['id']}/shelf",
            host,
            json={"product_id": p["id"]},
            expect=201,
        )
    return Shop(brand, host, session["id"], products, proposal["id"])


async def many_viewers(api: Api, n: int) -> list[Account]:
    """``n`` viewer accounts made straight in the database (no password hashing)."""
    app = api.client.app
    prefix = uuid.uuid4().hex[:6]
    names = [f"v{prefix}{i}" for i in range(n)]
    async with app[db_key].transaction() as tx:
        await tx.execute(
            insert(User),
            [
                {
                    "username": name,
                    "display_name": name,
                    "role": Role.VIEWER.value,
                    "password_hash": "!",
                    "created_ms": 0,
                    "disabled": False,
                }
                for name in names
            ],
        )
        rows = (await tx.execute(select(User).where(User.username.in_(names)))).scalars().all()
    tokens = app[tokens_key]
    return [
        Account(u.id, u.username, "viewer", tokens.issue(u.id, u.username, u.role, u.display_name))
        for u in rows
    ]


async def order(
    api: Api,
    shop: Shop,
    buyer: Account,
    *,
    product: int = 0,
    quantity: int = 1,
    key: str | None = None,
    **more: Any,
) -> tuple[int, Any]:
    res = await api.client.post(
        f"/api/sessions/{shop.session_id}/orders",
        json={"product_id": shop.products[product]["id"], "quantity": quantity, **more},
        headers={**buyer.headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )
    return res.status, await res.json()


async def start_flash_sale(
    api: Api,
    shop: Shop,
    *,
    price_minor: int,
    quantity: int,
    per_buyer_limit: int,
    lasts_s: float = 600,
) -> dict[str, Any]:
    """A flash sale of the shop's first product that started a second ago; returns once
    the scheduler has it running."""
    now = datetime.now(UTC)
    flash = await api.call(
        "POST",
        f"/api/sessions/{shop.session_id}/flash-sales",
        shop.host,
        json={
            "product_id": shop.products[0]["id"],
            "price_minor": price_minor,
            "quantity": quantity,
            "per_buyer_limit": per_buyer_limit,
            "starts_at": (now - timedelta(seconds=1)).isoformat(),
            "ends_at": (now + timedelta(seconds=lasts_s)).isoformat(),
        },
        expect=201,
    )
    for _ in range(100):
        listed = await api.call("GET", f"/api/sessions/{shop.session_id}/flash-sales")
        if any(f["status"] == "running" for f in listed["flash_sales"]):
            return dict(flash)
        await asyncio.sleep(0.05)
    raise AssertionError("the flash sale never started")


async def wait_flash_status(api: Api, shop: Shop, flash_id: int, status: str) -> None:
    for _ in range(200):
        listed = await api.call("GET", f"/api/sessions/{shop.session_id}/flash-sales")
        if any(f["id"] == flash_id and f["status"] == status for f in listed["flash_sales"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"flash sale {flash_id} never became {status}")
