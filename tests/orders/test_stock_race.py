"""No oversell under any concurrency: 500 buyers on separate connections race for 20 units."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from orders_support import Shop, many_viewers, open_shop, start_flash_sale
from sqlalchemy import func, select
from support import Account, Api

from app import db_key
from shelf.order_models import Order

BUYERS = 500


async def race(
    api: Api, shop: Shop, buyers: list[Account], quantity: int, attempts: int = 1
) -> list[tuple[int, int, dict[str, Any]]]:
    """Every buyer sends ``attempts`` orders, each on its own TCP connection."""
    url = str(api.client.make_url(f"/api/sessions/{shop.session_id}/orders"))
    product_id = shop.products[0]["id"]
    start = asyncio.Event()

    async def one(buyer: Account) -> list[tuple[int, int, dict[str, Any]]]:
        out = []
        connector = aiohttp.TCPConnector(force_close=True, limit=1)
        async with aiohttp.ClientSession(connector=connector) as http:
            await start.wait()
            for _ in range(attempts):
                async with http.post(
                    url,
                    json={"product_id": product_id, "quantity": quantity},
                    headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
                ) as res:
                    out.append((buyer.id, res.status, await res.json()))
        return out

    tasks = [asyncio.create_task(one(b)) for b in buyers]
    await asyncio.sleep(0.05)
    start.set()
    return [r for rs in await asyncio.gather(*tasks) for r in rs]


async def sold_units(api: Api) -> int:
    async with api.client.app[db_key].read() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(Order.quantity), 0))) or 0)


async def test_500_buyers_20_units(api: Api) -> None:
    shop = await open_shop(api, stock=20)
    buyers = await many_viewers(api, BUYERS)
    results = await race(api, shop, buyers, quantity=1)
    ok = [r for r in results if r[1] == 201]
    refused = [r for r in results if r[1] != 201]
    assert len(ok) == 20
    assert all(r[1] == 409 and r[2]["error"]["code"] == "out_of_stock" for r in refused), {
        (r[1], r[2].get("error", {}).get("code")) for r in refused
    }
    product = await api.call("GET", f"/api/products/{shop.products[0]['id']}", shop.brand)
    assert product["stock"] == 0
    assert await sold_units(api) == 20


async def test_500_buyers_flash_sale_with_per_buyer_limit(api: Api) -> None:
    shop = await open_shop(api, stock=100)
    await start_flash_sale(api, shop, price_minor=999, quantity=20, per_buyer_limit=2)
    buyers = await many_viewers(api, BUYERS)
    # every buyer tries twice for one unit, and a few try for 3 at once
    results = await race(api, shop, buyers[:480], quantity=1, attempts=2)
    results += await race(api, shop, buyers[480:], quantity=3)
    ok = [r for r in results if r[1] == 201]
    assert sum(r[2]["quantity"] for r in ok) == 20
    assert all(r[2]["unit_price_minor"] == 999 for r in ok)
    per_buyer: dict[int, int] = {}
    for buyer_id, _, body in ok:
        per_buyer[buyer_id] = per_buyer.get(buyer_id, 0) + body["quantity"]
    assert max(per_buyer.values()) <= 2
    codes = {r[2]["error"]["code"] for r in results if r[1] != 201}
    assert codes <= {"flash_sold_out", "flash_limit_reached"}, codes
    assert all(r[1] == 409 for r in results if r[1] != 201)
    # the regular stock was not touched by the flash sale's buyers
    product = await api.call("GET", f"/api/products/{shop.products[0]['id']}", shop.brand)
    assert product["stock"] == 80
