"""PostgreSQL restarted (``pg_ctl restart -m immediate``) during an order burst
(issue 18): requests during the restart are answered 503 with ``Retry-After``, never
500; and within 15 s of the restart no order is left ``placed`` (no unit stays taken),
without restarting liveshelf. PostgreSQL here is the test's own (tests/own_postgres.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from orders_support import many_viewers, open_shop, order
from own_postgres import OwnPostgres
from sqlalchemy import func, select
from support import Api

from app import Settings, create_app, db_key
from shelf.models import Product
from shelf.order_models import Order


@pytest.fixture
async def own_postgres() -> Any:
    pg = await asyncio.to_thread(OwnPostgres)
    await asyncio.to_thread(pg.start)
    yield pg
    await asyncio.to_thread(pg.stop)


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_orders_through_a_database_restart(
    settings: Settings, aiohttp_client: Any, backend: str, own_postgres: OwnPostgres
) -> None:
    app = create_app(
        replace(
            settings,
            database_url=own_postgres.url,
            database_schema=None,
            db_pool_size=8,
            order_recovery_every_s=1.0,
            order_recovery_after_s=3.0,
        )
    )
    api = Api(await aiohttp_client(app))
    shop = await open_shop(api, stock=10_000)
    buyers = await many_viewers(api, 40)
    statuses: Counter[int] = Counter()
    answers: list[tuple[int, Any]] = []

    async def buyer_loop(n: int, until: float) -> None:
        buyer = buyers[n]
        while time.monotonic() < until:
            status, body = await order(api, shop, buyer, key=uuid.uuid4().hex)
            statuses[status] += 1
            answers.append((status, body))
            await asyncio.sleep(0.02)

    until = time.monotonic() + 6
    burst = [asyncio.create_task(buyer_loop(n, until)) for n in range(8)]
    await asyncio.sleep(1.5)
    await asyncio.to_thread(own_postgres.restart)
    restarted = time.monotonic()
    await asyncio.gather(*burst)

    assert statuses[500] == 0, statuses
    assert statuses[503] > 0, statuses  # the restart was felt ...
    assert set(statuses) <= {201, 503}, statuses  # ... and answered truthfully
    for status, body in answers:
        if status == 503:
            assert body["error"]["code"] in {"database_unavailable", "payment_unavailable"}

    # Within 15 s of the restart, no order stays placed and no unit stays taken.
    db = app[db_key]
    async with asyncio.timeout(15 - (time.monotonic() - restarted)):
        while True:
            try:
                async with db.read() as s:
                    placed = await s.scalar(
                        select(func.count()).select_from(Order).where(Order.status == "placed")
                    )
                    sold = await s.scalar(
                        select(func.coalesce(func.sum(Order.quantity), 0)).where(
                            Order.status == "paid"
                        )
                    )
                    stock = await s.scalar(
                        select(Product.stock).where(Product.id == shop.products[0]["id"])
                    )
            except Exception:  # the pool may still be reconnecting
                await asyncio.sleep(0.2)
                continue
            if placed == 0:
                break
            await asyncio.sleep(0.2)
    assert stock == 10_000 - sold  # every unit taken belongs to a paid order
